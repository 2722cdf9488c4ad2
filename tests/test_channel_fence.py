"""The channel runner's fence and this node's channel leases, without models: a stand-in engine
writes small MP4s, so these run in seconds.

- A runner whose fence refuses appends nothing more, writes no more state, and does not close the
  playlist: what another node takes over is exactly what was listed when the fence refused.
- `ChannelLease.fence` refuses once the lease is lost, or when less than the guard is left by the
  local monotonic clock (renewals failing); the keeper renews, notices losses and takes orphans.
"""

from __future__ import annotations

import hashlib
import threading
import time

import numpy as np
import pytest

from vortex.channel.definition import ChannelDefinition
from vortex.channel.hls.playlist import read_playlist
from vortex.channel.fencing import ChannelFenced
from vortex.channel.scheduler import ChannelRunner, RunOptions
from vortex.media import write_mp4
from vortex.result import GenerationResult
from vortex.service.channels.lease import ChannelKeeper
from vortex.service.store.channels import ChannelLeases
from vortex.service.store.jobs import open_store
from vortex.service.store.lease import ChannelLease

W = H = 64
FPS, SR = 24, 24000


class PaintEngine:
    """Makes each slot as flat frames of one colour (by slot index) and a quiet tone: an MP4 in no time."""

    def run(self, request, on_event=None):
        n = round(request.recipe.slot_params.duration_sec * FPS)
        colour = (37 * request.slot_id) % 256
        frames = np.full((n, H, W, 3), colour, np.uint8)
        t = np.arange(round(n * SR / FPS)) / SR
        write_mp4(request.output, frames, (0.1 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), fps=FPS,
                  sample_rate=SR)
        return GenerationResult(slot_id=request.slot_id, seed=request.seed, success=True)

    def cancel(self, request_id):
        return False


def definition(name: str = "fenced") -> ChannelDefinition:
    recipe = {"slot_params": {"duration_sec": 1.0, "fps": FPS, "seed": 3},
              "audio_track": {"script": "Hello.", "voice_id": "anchor"}, "visual_track": {"prompt": "a presenter"}}
    return ChannelDefinition.from_dict({"name": name, "loop": True, "lookahead": 2, "margin_sec": 0.5,
                                        "slots": [{"recipe": recipe}]})


def runner(out, fence=None, max_slots=None) -> ChannelRunner:
    return ChannelRunner(definition(), PaintEngine(), RunOptions(out=out, width=W, height=H, sample_rate=SR,
                                                                 pace="asap", max_slots=max_slots),
                         generation_timeout_sec=30, say=lambda line: None, fence=fence)


def folder_bytes(out) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in out.iterdir() if p.is_file()}


def test_a_fenced_runner_writes_nothing_more(tmp_path):
    out = tmp_path / "ch"
    refused = threading.Event()
    seen: dict[str, str] = {}

    def fence():
        # Refuse from the first check after 3 appends (an append or a state save); snapshot the folder then.
        if refused.is_set():
            raise ChannelFenced("lease lost")
        if r.appended == 3:
            seen.update(folder_bytes(out))
            refused.set()
            raise ChannelFenced("lease lost")

    r = runner(out, fence)
    with pytest.raises(ChannelFenced):
        r.run()
    assert r.appended == 3
    after = folder_bytes(out)
    assert after == seen  # no segment, playlist or channel.json written after the fence refused
    playlist = read_playlist(out)
    assert not playlist.ended and len(playlist.segments) >= 1

    # Another node resumes from exactly that: the listed segments stay, then a DISCONTINUITY.
    listed = [(s.uri, after[s.uri]) for s in playlist.segments]
    runner(out, max_slots=6).run()
    again = read_playlist(out)
    assert [(s.uri, folder_bytes(out)[s.uri]) for s in again.segments[:len(listed)]] == listed
    assert any(s.discontinuity for s in again.segments[len(listed):]) and again.ended  # after the parts it listed


def test_a_fence_refusing_mid_slot_parks_the_appender_before_the_writer_writes_again(tmp_path):
    """A realtime append lasts the slot's air time: the fence is asked before each frame, and a
    refusal there parks the appender for good instead of letting the writer close the slot."""
    out = tmp_path / "ch"
    calls, seen = [], {}
    refused = threading.Event()

    def fence():
        if refused.is_set():
            raise ChannelFenced("lease lost")
        if threading.current_thread().name == "channel-appender" and r.appended >= 1:
            calls.append(1)
            if len(calls) == 10:  # the 2nd slot: its pre-append check, its record's save, then frames
                seen.update(folder_bytes(out))
                refused.set()
                raise ChannelFenced("lease lost")

    r = runner(out, fence)
    raised = []

    def run():
        try:
            r.run()
        except ChannelFenced as exc:
            raised.append(exc)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    assert refused.wait(60)
    t.join(30)  # the run ends as fenced; its appender stays parked, for good (it ends with the test process)
    assert not t.is_alive() and raised and r._stop.is_set() and r.appended == 1
    appender = [th for th in threading.enumerate() if th.name == "channel-appender"]
    assert appender and r._appender.parked
    time.sleep(1.0)
    assert folder_bytes(out) == seen  # nothing written since: no part, no playlist, no channel.json


def test_the_lease_fence_refuses_when_lost_or_too_little_is_left():
    lease = ChannelLease("c", term=3, lease_s=8.0, guard_s=2.0, sent=time.monotonic())
    lease.fence()  # 8 s left
    lease.valid_until = time.monotonic() + 1.5  # renewals failed: 1.5 s left, under the 2 s guard
    with pytest.raises(ChannelFenced, match="term 3"):
        lease.fence()
    lease.renewed(time.monotonic())  # too late: a refusal is final
    with pytest.raises(ChannelFenced):
        lease.fence()
    other = ChannelLease("d", term=1, lease_s=8.0, guard_s=2.0, sent=time.monotonic())
    assert other.lose("taken over") and not other.lose("again")
    with pytest.raises(ChannelFenced, match="taken over"):
        other.fence()


def test_the_keeper_renews_notices_a_loss_and_takes_orphans(tmp_path):
    store_a, store_b = open_store(tmp_path / "s.sqlite3", owner="a"), open_store(tmp_path / "s.sqlite3", owner="b")
    a, b = ChannelLeases(store_a, "http://a", lease_s=1.0), ChannelLeases(store_b, "http://b", lease_s=1.0)
    events: list[tuple] = []

    def keeper(leases, who):
        return ChannelKeeper(leases, 0.5, on_lost=lambda name, lease: events.append((who, "lost", name)),
                             on_stop=lambda name: events.append((who, "stop", name)),
                             take=lambda row, how, sent: events.append((who, how, row.name, row.term)),
                             may_take=lambda: True, busy=set)

    ka, kb = keeper(a, "a"), keeper(b, "b")
    sent = time.monotonic()
    lease = ka.hold(a.start("ch", {"name": "ch"}, "realtime", None), sent)
    ka.tick()
    kb.tick()
    assert events == [] and lease.left() > 0.5  # renewed; b finds nothing to take
    b.request_stop("ch")
    ka.tick()
    assert events == [("a", "stop", "ch")]
    time.sleep(1.1)  # a stalls past its lease
    kb.tick()
    assert events[-1] == ("b", "takeover", "ch", 2)
    ka.tick()
    assert events[-1] == ("a", "lost", "ch") and lease.lost.is_set()
    a.start("stray", {"name": "stray"}, "realtime", None)  # acquired, but no runner holds it (a failed release)
    ka.tick()
    assert a.get("stray").owner == "a"  # one round may be a POST between acquiring and holding
    ka.tick()
    assert events[-1] == ("a", "resume", "stray", 2)  # let go, then taken properly (a runner would hold it)
    store_a.close()
    store_b.close()
