"""Two `vortex serve` nodes (real processes, real cpu-preview engines) sharing one PostgreSQL store
(`--db`, a fresh schema) and one media folder (`--media`), each with its own `--data`:

- a job run on one node is served by the other (its MP4 and result.json);
- kill -9 of the node running a realtime channel: the other takes the channel over within the lease
  plus one slot; its playlist keeps every segment listed before the kill byte for byte, then a
  DISCONTINUITY, then new segments, and the decoded stream is continuous on each side;
- a paused owner (SIGSTOP past its lease, then SIGCONT) appends nothing after the other node took
  the channel over (its fence refuses), and DELETE on the node that does not run it stops it;
- a --media folder that is not writable, or that belongs to another job store, is refused (exit 2).

Leases here are the defaults, 4 s renewed every second, so a takeover costs
seconds; slots are 2 s (one segment).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import av
import httpx
import numpy as np
import pytest

from vortex.channel.hls import parse_playlist
from support.harness import Server, free_port, start_all
from support.recipes import short_recipe

from postgres_server import fresh_schema, pg_server  # noqa: F401 - the fixture
from streams import FPS, TS, post, status, wait_for

LEASE_S, RENEW_S, SLOT_S = 4.0, 1.0, 2.0
NAME = "relay-1"


@pytest.fixture(scope="module")
def cluster(pg_server, tmp_path_factory):  # noqa: F811
    root = tmp_path_factory.mktemp("failover")
    with fresh_schema(pg_server) as url:
        args = ["--db", url, "--media", str(root / "media"), "--channel-lease-sec", str(LEASE_S),
                "--channel-renew-sec", str(RENEW_S)]
        nodes = [Server(data=root / f"node-{n}", port=free_port(), args=[*args, "--log-file", str(root / f"node-{n}.jsonl")])
                 for n in "ab"]
        try:
            start_all(nodes)
            yield {"url": url, "media": root / "media", "nodes": nodes, "root": root}
        finally:
            for n in nodes:
                if n.proc is not None and n.proc.poll() is None:
                    n.proc.send_signal(signal.SIGCONT)  # a node a failed test left paused
                n.stop()


def node_name(server: Server) -> str:
    """The node's name as a channel's owner shows it (host:pid)."""
    return f"{socket.gethostname()}:{server.proc.pid}"


def playlist(server: Server) -> str:
    r = httpx.get(f"{server.url}/v1/channels/{NAME}/index.m3u8", timeout=30)
    return r.text if r.status_code == 200 else ""


def listed(server: Server) -> list:
    text = playlist(server)
    return parse_playlist(text).segments if text else []


def segment(server: Server, uri: str) -> bytes:
    r = httpx.get(f"{server.url}/v1/channels/{NAME}/{uri}", timeout=30)
    assert r.status_code == 200, (uri, r.text)
    return r.content


def continuous(server: Server, segments: list) -> int:
    """Decode segments (fMP4, after their init segment) as one stream; assert +1 frame and +1 AAC
    frame all the way; the number of frames."""
    maps = {g.map_uri for g in segments}
    assert len(maps) == 1, maps
    data = segment(server, maps.pop()) + b"".join(segment(server, g.uri) for g in segments)
    with av.open(io.BytesIO(data), format="mp4") as c:
        vpts = [f.pts for f in c.decode(c.streams.video[0])]
    with av.open(io.BytesIO(data), format="mp4") as c:
        apts = [f.pts for f in c.decode(c.streams.audio[0])]  # in samples
    assert set(np.diff(vpts)) == {TS // FPS}, sorted(set(np.diff(vpts)))
    assert set(np.diff(apts)) == {1024}, sorted(set(np.diff(apts)))
    return len(vpts)


def named(text: str) -> list[str]:
    """Every file a playlist names: segments, their parts, the open segment's parts, init segments."""
    pl = parse_playlist(text)
    uris = [g.uri for g in pl.segments] + [q.uri for g in pl.segments for q in g.parts]
    uris += [q.uri for q in pl.open.parts] if pl.open else []
    return uris + sorted({g.map_uri for g in pl.segments if g.map_uri})


def fetched(server: Server, uris: list[str]) -> dict[str, bytes]:
    """The files a playlist named, read now; a part whose tags left the playlist meanwhile may be
    gone (channel/publish.py removes it then: CI saw one go between the read and the GET)."""
    out = {}
    for uri in uris:
        r = httpx.get(f"{server.url}/v1/channels/{NAME}/{uri}", timeout=30)
        if not part_gone(server, uri, r):
            assert r.status_code == 200, (uri, r.text)
            out[uri] = r.content
    return out


def part_gone(server: Server, uri: str, r: httpx.Response) -> bool:
    """A 404 for a part whose tags are no longer in the playlist: removed by design, not lost."""
    return r.status_code == 404 and uri.startswith("part-") and uri not in named(playlist(server))


def unchanged(server: Server, before: dict[str, bytes]) -> None:
    """Every file named before is served with the same bytes; a part may be gone once its tags left
    the playlist (channel/publish.py removes it then), never rewritten."""
    for uri, data in before.items():
        r = httpx.get(f"{server.url}/v1/channels/{NAME}/{uri}", timeout=30)
        if part_gone(server, uri, r):
            continue
        assert r.status_code == 200 and hashlib.sha256(r.content).digest() == hashlib.sha256(data).digest(), uri


def channel_body() -> dict:
    return {"name": NAME, "loop": True, "lookahead": 2, "margin_sec": 0.5,
            "slots": [{"recipe": short_recipe(slot_id=1, seed=3, duration=SLOT_S, script="Still on air.")},
                      {"recipe": short_recipe(slot_id=2, seed=4, duration=SLOT_S, script="Back to the desk.")}]}


def test_a_bad_media_folder_is_refused(cluster, tmp_path):
    base = [sys.executable, "-m", "vortex.service", "--port", str(free_port())]
    if os.geteuid() == 0:  # root writes through any mode bits: a folder of sysfs takes no new file
        locked = Path("/sys/kernel")
    else:
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o555)
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    p = subprocess.run(base + ["--data", str(tmp_path / "d1"), "--media", str(locked)], capture_output=True,
                       text=True, timeout=60, env=env)
    assert p.returncode == 2 and "--media" in p.stderr and "not writable" in p.stderr, p.stderr
    # The cluster's media folder belongs to its PostgreSQL store: a node on its own SQLite store is refused.
    p = subprocess.run(base + ["--data", str(tmp_path / "d2"), "--media", str(cluster["media"])], capture_output=True,
                       text=True, timeout=60, env=env)
    assert p.returncode == 2 and "--media" in p.stderr and "another job store" in p.stderr, p.stderr
    # One error line, no traceback (before it, the start-up says whose key signs: vortex.provenance)
    errors = [line for line in p.stderr.splitlines() if not line.startswith("  signing as ")]
    assert len(errors) == 1 and errors[0].startswith("vortex: error: "), p.stderr


def test_bad_lease_settings_and_advertise_urls_are_refused(tmp_path):
    base = [sys.executable, "-m", "vortex.service", "--data", str(tmp_path / "d"), "--port", str(free_port())]
    for extra, flag in ((["--channel-renew-sec", "3"], "--channel-renew-sec"),  # over half the 4 s lease
                        (["--channel-lease-sec", "0.5"], "--channel-lease-sec"),
                        (["--advertise-url", "ftp://node-a"], "--advertise-url"),
                        (["--advertise-url", "http://node-a:8321/?x=1"], "--advertise-url")):
        p = subprocess.run(base + extra, capture_output=True, text=True, timeout=60,
                           env={**os.environ, "HF_HUB_OFFLINE": "1"})
        assert p.returncode == 2 and p.stderr.startswith(f"vortex: error: {flag}"), (extra, p.stderr)
    assert not (tmp_path / "d").exists()  # refused before anything was made


def test_a_job_run_on_one_node_is_served_by_the_other(cluster):
    a, b = cluster["nodes"]
    job = a.submit(short_recipe(slot_id=7, seed=17, duration=1.5)).json()
    done = a.wait_state(job["id"], {"succeeded"}, timeout=180)
    ran_on = a if done["replica"]["pid"] == a.proc.pid else b
    other = b if ran_on is a else a
    for route in ("video.mp4", "result.json"):
        mine = httpx.get(f"{ran_on.url}/v1/slots/{job['id']}/{route}", timeout=30)
        theirs = httpx.get(f"{other.url}/v1/slots/{job['id']}/{route}", timeout=30)
        assert mine.status_code == theirs.status_code == 200, (route, theirs.text)
        assert mine.content == theirs.content and len(theirs.content) > 100
    assert (cluster["media"] / "jobs" / job["id"] / "attempt-1" / "video.mp4").is_file()


def test_kill9_of_the_owner_hands_the_channel_to_the_other_node(cluster):
    a, b = cluster["nodes"]
    assert post(a, channel_body(), pace="realtime").status_code == 201
    owner = wait_for(b, NAME, lambda s: s["owner"] is not None and len(listed(b)) >= 3,
                     timeout=240)["owner"]
    assert owner["node"] == node_name(a) and owner["url"] == a.url and not owner["this_node"]
    # A live insert sent to B goes to A, the owner (forward.py), which answers it
    insert = short_recipe(slot_id=9, seed=9, duration=SLOT_S, script="Breaking news from the harbour.")
    r = httpx.post(f"{b.url}/v1/channels/{NAME}/live", json={"recipe": insert}, timeout=60)
    assert r.status_code == 202 and r.headers["x-vortex-node"] == node_name(a), r.text
    assert any(i["id"] == r.json()["id"] for i in wait_for(b, NAME, lambda s: s["inserts"], timeout=30)["inserts"])
    before_text = playlist(b)
    listed_before = parse_playlist(before_text).segments
    before = {uri: segment(b, uri) for uri in named(before_text)}
    a.kill9()  # the engine runs in that process: it dies with it
    killed = time.time()

    st = wait_for(b, NAME, lambda s: s["owner"] is not None and s["owner"]["this_node"], timeout=60)
    took = st["takeovers"][-1]
    assert took["from"] == owner["node"] and took["to"] == node_name(b)
    taken_at = datetime.fromisoformat(took["at"]).timestamp()  # the store's clock: this machine's here
    print(f"takeover {taken_at - killed:.2f} s after the kill; lease {LEASE_S:g} s, renewed every {RENEW_S:g} s")
    assert taken_at - killed <= LEASE_S + SLOT_S, (taken_at - killed, took)

    def resumed(s):
        now = listed(b)
        cut = [i for i, g in enumerate(now) if g.discontinuity]
        return bool(cut) and len(now) - cut[0] >= 2
    wait_for(b, NAME, resumed, timeout=120)
    after = listed(b)
    cut = next(i for i, g in enumerate(after) if g.discontinuity)
    assert [g.uri for g in after[:len(listed_before)]] == [g.uri for g in listed_before]
    unchanged(b, before)  # nothing named before the kill lost or rewritten: segments, parts, init
    assert cut >= len(listed_before) and not any(g.discontinuity for g in after[cut + 1:])
    continuous(b, after[:cut])  # A's stream, to its last listed part
    continuous(b, after[cut:])  # B's, from its first
    metrics = httpx.get(b.url + "/metrics", timeout=30).text
    assert f'vortex_channel_takeovers_total{{channel="{NAME}"}} 1.0' in metrics
    assert st["counts"]["takeovers"] == 1
    shown = httpx.get(f"{b.url}/v1/channels/{NAME}", timeout=30).json()["inserts"][-1]
    assert shown["state"] in ("aired", "failed"), shown  # one A was making is recorded interrupted by B
    # The markers survive the takeover (tests/test_markers.py): A's tags byte for byte, the range A
    # left open closed by B, one opening and at most one closing tag per ID.
    from dateranges import by_id, read_ranges

    old, new = read_ranges(before_text), read_ranges(playlist(b))
    assert [r["line"] for r in new[:len(old)]] == [r["line"] for r in old]
    items = by_id(new)
    assert all(["DURATION" in r for r in tags] in ([False], [False, True]) for tags in items.values()), items
    open_ids = [i for i, tags in items.items() if len(tags) == 1]
    assert len(open_ids) <= 1 and all(r["next_pdt"] is not None for r in new if "PLANNED-DURATION" in r)


def test_a_paused_owner_does_not_append_after_the_takeover(cluster):
    """A realtime append lasts the slot's air time, so the pause lands mid-slot: the fence is asked
    before every frame handed to the writer, and the woken owner's appender parks before its writer
    writes again (channel/fencing.py)."""
    a, b = cluster["nodes"]
    a.start()  # back after the kill -9: the channel stays with b
    st = status(b, NAME)
    assert st["owner"]["this_node"], st
    wait_for(a, NAME, lambda s: s["counts"]["epochs"] == 2 and len(s["recent"]) >= 2, timeout=120)
    b.proc.send_signal(signal.SIGSTOP)
    paused = time.monotonic()
    listed_at_pause = listed(a)
    try:
        wait_for(a, NAME, lambda s: s["owner"] is not None and s["owner"]["this_node"], timeout=60)
        assert time.monotonic() - paused >= LEASE_S - RENEW_S  # b kept it until its lease ran out
        wait_for(a, NAME, lambda s: len(listed(a)) > len(listed_at_pause) + 1, timeout=120)
    finally:
        b.proc.send_signal(signal.SIGCONT)
    seen: dict[str, bytes] = {}
    last: list = []
    watch_until = time.monotonic() + 4 * SLOT_S  # b's threads wake now: its fence must refuse every write
    while time.monotonic() < watch_until:
        text = playlist(a)
        now = parse_playlist(text).segments
        assert [(g.uri, g.discontinuity) for g in now[:len(last)]] == [(g.uri, g.discontinuity) for g in last]
        fresh = [uri for uri in named(text) if uri not in seen]
        unchanged(a, {uri: seen[uri] for uri in named(text) if uri in seen and uri.startswith("part-")})
        seen.update(fetched(a, fresh))
        last = now
        time.sleep(0.1)
    unchanged(a, seen)  # written once each: b overwrote none of a's segments, parts or init
    cuts = [i for i, g in enumerate(last) if g.discontinuity]
    assert len(cuts) == 2 and cuts[-1] >= len(listed_at_pause)
    assert status(a, NAME)["counts"]["epochs"] == 3  # b's stale records were not written over a's
    metrics = httpx.get(b.url + "/metrics", timeout=30).text
    assert f'vortex_channel_leases_lost_total{{channel="{NAME}"}} 1.0' in metrics
    events = [json.loads(line) for line in (cluster["root"] / "node-b.jsonl").read_text().splitlines()]
    assert any(e.get("event") == "channel_lease_lost" for e in events)
    print("b, woken:", [e["msg"] for e in events if e.get("event") in ("channel_lease_lost", "channel_fenced_mid_slot")])

    # DELETE on the node that does not run the channel: its owner stops it.
    r = httpx.delete(f"{b.url}/v1/channels/{NAME}", timeout=120)
    assert r.status_code == 200 and r.json()["status"] == "stopped" and r.json()["owner"] is None, r.json()
    assert status(a, NAME)["status"] == "stopped"
    assert not parse_playlist(playlist(a)).ended  # stopped, not ended: a POST continues it
