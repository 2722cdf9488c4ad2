"""Channel slots in flight (channel/generator.py), without models: a stand-in engine paints each slot
one colour and takes as long as the test says, so these run in seconds.

- Slots made side by side air in schedule order, whichever ends first: the records, the frames'
  colours on the stream, the hand-over.
- A slot that fails and is retried while the next one is made holds the next one back; one that
  never succeeds is filled, in its place.
- stop() with two slots in flight cancels both and ends the run; neither is decided.
- Realtime: the slots in flight count against the lookahead (lookahead 1: one at a time).
- The setting is refused out of range, naming the field; an engine with too few places leaves one
  for a live insert.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from vortex.channel.definition import ChannelDefinition, ChannelError
from vortex.channel.generator import SLOT_THREAD, slots_in_flight
from vortex.channel.hls.playlist import read_playlist
from vortex.channel.scheduler import ChannelRunner, RunOptions
from vortex.config import VortexConfig
from vortex.media import write_mp4
from vortex.result import GenerationResult

from streams import decode

W = H = 64
FPS, SR = 24, 24000


def colour(index: int) -> int:
    return 40 + 50 * (index % 4)  # far apart after the encode: 40, 90, 140, 190


class TimedPaintEngine:
    """Paints slot k in colour(k) after `seconds[k]` (default 0.05 s), failing the attempts listed in
    `fails` ({slot: attempts that fail}); several requests run at once, each cancellable. Slot k's
    first attempt ends only after the slots in `after[k]` have ended (an order, not a race against
    the clock: CI's loaded cores made a 0.5 s head start lose)."""

    def __init__(self, seconds=None, fails=None, config=None, after=None):
        self.seconds, self.fails, self.config = dict(seconds or {}), dict(fails or {}), config
        self.after = {k: tuple(v) for k, v in (after or {}).items()}
        self.lock = threading.Lock()
        self.done = threading.Condition(self.lock)
        self.cancels: dict[str, threading.Event] = {}
        self.tries: dict[int, int] = {}
        self.running = 0
        self.most = 0  # the most requests in flight at once
        self.ended: list[int] = []  # slot indices in the order their attempts ended

    def run(self, request, on_event=None):
        k = request.slot_id
        with self.lock:
            cancel = self.cancels[request.id] = threading.Event()
            self.tries[k] = self.tries.get(k, 0) + 1
            attempt = self.tries[k]
            self.running += 1
            self.most = max(self.most, self.running)
        try:
            with self.done:
                first = self.after.get(k, ()) if attempt == 1 else ()
                assert self.done.wait_for(lambda: all(j in self.ended for j in first), timeout=30), (k, first)
            if cancel.wait(self.seconds.get(k, 0.05)):
                return GenerationResult(slot_id=k, seed=request.seed, success=False, error_kind="cancelled",
                                        error_msg="cancelled by the caller")
            if attempt <= self.fails.get(k, 0):
                return GenerationResult(slot_id=k, seed=request.seed, success=False, error_kind="render",
                                        error_msg=f"attempt {attempt} of slot {k} fails (the test says so)")
            n = round(request.recipe.slot_params.duration_sec * FPS)
            t = np.arange(round(n * SR / FPS)) / SR
            write_mp4(request.output, np.full((n, H, W, 3), colour(k), np.uint8),
                      (0.1 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), fps=FPS, sample_rate=SR)
            return GenerationResult(slot_id=k, seed=request.seed, success=True)
        finally:
            with self.lock:
                self.running -= 1
                self.ended.append(k)
                self.done.notify_all()

    def cancel(self, request_id):
        with self.lock:
            event = self.cancels.get(request_id)
        if event is not None:
            event.set()
        return event is not None

    def waiting(self) -> int:
        with self.lock:
            return self.running


def definition(in_flight=2, seconds=1.0, **extra) -> ChannelDefinition:
    recipe = {"slot_params": {"duration_sec": seconds, "fps": FPS, "seed": 3},
              "audio_track": {"script": "Hello.", "voice_id": "anchor"}, "visual_track": {"prompt": "a presenter"}}
    fields = {"name": "flight", "loop": True, "lookahead": 2, "margin_sec": 0.5, "slots_in_flight": in_flight,
              "slots": [{"recipe": recipe}]}
    return ChannelDefinition.from_dict({**fields, **extra})


def runner(out, engine, max_slots=None, in_flight=2, **extra) -> ChannelRunner:
    return ChannelRunner(definition(in_flight, **extra), engine,
                         RunOptions(out=out, width=W, height=H, sample_rate=SR, pace="asap", max_slots=max_slots),
                         generation_timeout_sec=30, say=lambda line: None)


def colours_on_air(out, state) -> list[int]:
    """The colour of each slot's middle frame on the listed stream."""
    frames = decode(out)[4]
    return [int(round(frames[s.first_frame + s.n_frames // 2].mean())) for s in state.slots]


def assert_in_order(out, state, sources, seconds=1):
    """Slots 0..n-1 (of `seconds` each) on air one after another, each showing `sources[k]`'s colour."""
    assert [s.index for s in state.slots] == list(range(len(sources)))
    assert [s.first_frame for s in state.slots] == [FPS * seconds * k for k in range(len(sources))]
    seen = colours_on_air(out, state)
    assert all(abs(c - colour(k)) <= 6 for c, k in zip(seen, sources)), (seen, sources)
    assert read_playlist(out).ended


def test_slots_made_side_by_side_air_in_schedule_order(tmp_path):
    # Slot 0 takes longest: slots 1 and 2 end before it, and still air after it.
    engine = TimedPaintEngine(seconds={4: 0.4}, after={0: (1, 2)})
    r = runner(tmp_path / "ch", engine, max_slots=6, in_flight=3)
    state = r.run()
    assert engine.most == 3  # three requests were in flight at once
    assert engine.ended.index(1) < engine.ended.index(0)  # slot 1 ended first ...
    assert [s.decision for s in state.slots] == ["aired"] * 6
    assert_in_order(tmp_path / "ch", state, [0, 1, 2, 3, 4, 5])  # ... and aired second
    air = [s.air_time for s in state.slots]
    assert air == sorted(air) and len(set(air)) == 6
    assert not [t for t in threading.enumerate() if t.name.startswith(SLOT_THREAD)]  # the workers are gone


def test_a_retried_slot_in_flight_holds_back_the_next_and_a_lost_one_is_filled_in_place(tmp_path):
    # Slot 1 fails its first attempt (slowly) while slot 2 is made; slot 3 never succeeds.
    engine = TimedPaintEngine(fails={1: 1, 3: 2}, after={1: (2,)})
    state = runner(tmp_path / "ch", engine, max_slots=5).run()
    assert engine.ended.index(2) < engine.ended.index(1)  # slot 2 was made before slot 1's first attempt failed
    assert [len(s.attempts) for s in state.slots] == [1, 2, 1, 2, 1]
    assert [a.outcome for a in state.slots[1].attempts] == ["failed", "ok"]
    assert [s.decision for s in state.slots] == ["aired", "aired", "aired", "filler:last_good", "aired"]
    assert state.slots[3].filler_of == 2
    assert_in_order(tmp_path / "ch", state, [0, 1, 2, 2, 4])  # slot 3's air time shows slot 2 again


def test_stop_with_two_slots_in_flight_cancels_both_and_ends(tmp_path):
    engine = TimedPaintEngine(seconds={0: 0.05, 1: 60, 2: 60})
    r = runner(tmp_path / "ch", engine)
    t = threading.Thread(target=r.run)
    t.start()
    deadline = time.monotonic() + 20
    while not (engine.waiting() == 2 and r.appended == 1) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert engine.waiting() == 2  # slots 1 and 2 are being made
    began = time.monotonic()
    r.stop()
    t.join(10)
    assert not t.is_alive() and time.monotonic() - began < 5
    assert engine.waiting() == 0 and engine.tries == {0: 1, 1: 1, 2: 1}  # cancelled: not retried
    state = r.snapshot()
    assert [s.decision for s in state.slots] == ["aired", None, None]  # the two in flight were not decided
    assert not state.ended and not read_playlist(tmp_path / "ch").ended  # a stop is no end
    assert not [t for t in threading.enumerate() if t.name.startswith(SLOT_THREAD)]


def test_one_in_flight_makes_slots_one_after_another(tmp_path):
    engine = TimedPaintEngine(seconds={0: 0.3})
    state = runner(tmp_path / "ch", engine, max_slots=3, in_flight=1).run()
    assert engine.most == 1 and engine.ended == [0, 1, 2]
    assert_in_order(tmp_path / "ch", state, [0, 1, 2])


def test_realtime_counts_the_slots_in_flight_against_the_lookahead(tmp_path):
    # lookahead 1: one slot ahead of the air, made or being made, so one request at a time (3 s
    # slots: the next one starts as this one airs, with 3 s - margin_sec left to be made; at 2 s a
    # loaded CI core made a 0.3 s stand-in look too slow and the deadline policy skipped slot 1).
    engine = TimedPaintEngine(seconds={k: 0.2 for k in range(3)})
    r = ChannelRunner(definition(2, seconds=3.0, lookahead=1), engine,
                      RunOptions(out=tmp_path / "ch", width=W, height=H, sample_rate=SR, pace="realtime", max_slots=3),
                      generation_timeout_sec=30, say=lambda line: None)
    state = r.run()
    assert engine.most == 1 and engine.ended == [0, 1, 2]
    assert [s.decision for s in state.slots] == ["aired"] * 3
    assert_in_order(tmp_path / "ch", state, [0, 1, 2], seconds=3)


@pytest.mark.parametrize("value", [0, 9, "two", 1.5, True])
def test_a_bad_slots_in_flight_is_refused_naming_the_field(value):
    with pytest.raises(ChannelError, match=r"field 'slots_in_flight': must be an integer from 1 to 8") as err:
        definition(value)
    assert err.value.field == "slots_in_flight"


def test_an_engine_with_two_places_makes_one_slot_at_a_time_leaving_one_for_a_live_insert():
    cfg = VortexConfig.load("cpu-miniature")
    assert slots_in_flight(2, TimedPaintEngine(config=cfg)) == 2  # max_in_flight 4
    narrow = cfg.with_changes({"pipeline": {"max_in_flight": 2}})
    assert slots_in_flight(3, TimedPaintEngine(config=narrow)) == 1
    assert slots_in_flight(1, TimedPaintEngine(config=narrow.with_changes({"pipeline": {"max_in_flight": 1}}))) == 1
    assert slots_in_flight(2, TimedPaintEngine()) == 2  # a remote engine: its replicas bound it
