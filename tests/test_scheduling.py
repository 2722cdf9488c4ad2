"""The engine's priority policy (vortex.engine.scheduling), on real threads: a lower priority waits
between chunks while a higher one is in flight; a job's deadline moves on by the time it waited
(counted once however many of its threads waited), a channel slot's does not."""

from __future__ import annotations

import threading
import time

import pytest

from vortex.contracts.cancel import CancelToken, SlotCancelled
from vortex.contracts.requests import Priority
from vortex.engine.scheduling import RequestScheduler
from vortex.engine.voice_calls import VoiceCalls


def test_a_paused_job_keeps_its_time_limit_and_a_paused_channel_slot_does_not():
    sched = RequestScheduler(max_in_flight=4)
    job_token = CancelToken(deadline=time.monotonic() + 0.4)
    slot_token = CancelToken(deadline=time.monotonic() + 0.4)
    job = sched.enter("job", Priority.JOB, job_token)
    slot = sched.enter("slot", Priority.CHANNEL, slot_token)
    live = sched.enter("live", Priority.LIVE, CancelToken())
    errors: list[BaseException] = []

    def chunk(flight) -> None:  # a thread of the request asking for its next chunk
        try:
            sched.turn(flight)
        except SlotCancelled as exc:
            errors.append(exc)

    threads = [threading.Thread(target=chunk, args=(f,)) for f in (job, job, slot)]  # two threads of the job
    for t in threads:
        t.start()
    time.sleep(0.8)  # the live request runs past both deadlines
    sched.leave(live)
    threads[2].join(5)
    assert [str(e) for e in errors] == ["deadline exceeded"]  # the channel slot's: its air time does not move
    sched.leave(slot)  # as the engine does with a slot that failed
    for t in threads[:2]:
        t.join(5)
    assert len(errors) == 1
    assert 0.7 < job.paused_s < 1.0  # wall time, counted once for its two threads
    assert job_token.deadline - time.monotonic() > 0.2 and not job_token.cancelled
    sched.leave(job)


def test_requests_of_one_priority_run_side_by_side():
    sched = RequestScheduler(max_in_flight=2)
    a = sched.enter("a", Priority.JOB, CancelToken())
    b = sched.enter("b", Priority.JOB, CancelToken())
    started = time.monotonic()
    sched.turn(a)
    sched.turn(b)
    assert time.monotonic() - started < 0.05 and a.paused_s == b.paused_s == 0
    with pytest.raises(SlotCancelled):
        sched.enter("c", Priority.LIVE, CancelToken(deadline=time.monotonic() + 0.2))  # no place in flight


def test_a_live_request_speaks_before_a_channel_slot_that_was_already_waiting_for_the_voice():
    """Two channel slots in flight: one speaks, the other waits for the voice (one call at a time); a
    live insert that enters then speaks next (VoiceCalls.turn, on the real scheduler)."""
    from types import SimpleNamespace

    sched = RequestScheduler(max_in_flight=4)
    voice_turn = VoiceCalls(1, sched).turn
    a, b = (SimpleNamespace(flight=sched.enter(n, Priority.CHANNEL, CancelToken())) for n in ("a", "b"))
    spoke: list[str] = []
    speaking, go_on = threading.Event(), threading.Event()

    def speak(name, slot, hold=None):
        with voice_turn(slot):
            spoke.append(name)
            if hold is not None:
                speaking.set()
                go_on.wait(5)

    first = threading.Thread(target=speak, args=("a", a, True))
    first.start()
    assert speaking.wait(5)
    second = threading.Thread(target=speak, args=("b", b))
    second.start()
    time.sleep(0.2)  # b has its turn and waits for the voice
    live = SimpleNamespace(flight=sched.enter("live", Priority.LIVE, CancelToken()))
    third = threading.Thread(target=speak, args=("live", live))
    third.start()
    time.sleep(0.2)
    go_on.set()
    third.join(5)
    assert spoke == ["a", "live"]  # b gave the voice back: a live request had entered
    sched.leave(live.flight)
    second.join(5)
    assert spoke == ["a", "live", "b"] and not sched.outranked(b.flight)


def test_two_voice_calls_let_two_slots_speak_at_once_and_a_live_insert_takes_the_next_free_one():
    """`pipeline.voice_calls: 2` (a CPU node): two channel slots speak at once and a third waits; a
    live insert that enters meanwhile takes the first call that ends, before the waiting slot
    (VoiceCalls.turn, on the real scheduler)."""
    from types import SimpleNamespace

    sched = RequestScheduler(max_in_flight=4)
    voice_turn = VoiceCalls(2, sched).turn
    slots = {n: SimpleNamespace(flight=sched.enter(n, Priority.CHANNEL, CancelToken())) for n in ("a", "b", "c")}
    speaking = {n: threading.Event() for n in ("a", "b", "c", "live")}
    go_on = {n: threading.Event() for n in ("a", "b", "c", "live")}

    def speak(name, slot):
        with voice_turn(slot):
            speaking[name].set()
            go_on[name].wait(5)

    threads = {}

    def start(name):
        threads[name] = threading.Thread(target=speak, args=(name, slots[name]))
        threads[name].start()

    start("a")
    start("b")
    assert speaking["a"].wait(5) and speaking["b"].wait(5)  # side by side
    start("c")
    time.sleep(0.2)
    assert not speaking["c"].is_set()  # both calls taken: c waits for one
    slots["live"] = SimpleNamespace(flight=sched.enter("live", Priority.LIVE, CancelToken()))
    start("live")
    time.sleep(0.2)
    assert not speaking["live"].is_set()
    go_on["a"].set()
    assert speaking["live"].wait(5)  # a's call went to the live insert
    time.sleep(0.2)
    assert not speaking["c"].is_set()
    go_on["live"].set()
    threads["live"].join(5)
    sched.leave(slots["live"].flight)
    assert speaking["c"].wait(5)
    for n in ("b", "c"):
        go_on[n].set()
        threads[n].join(5)


def _speaker(sched: RequestScheduler, name: str, priority: Priority):
    """A slot as VoiceCalls sees one: its place in the scheduler and its cancel token."""
    from types import SimpleNamespace

    return SimpleNamespace(flight=sched.enter(name, priority, CancelToken()), token=CancelToken())


def _chunks_log(calls: VoiceCalls, slot, count: int, release: dict, log: list, wide_first: bool = False):
    """speak_in_order on a thread; speak(k) logs its start and waits for release[k]."""
    delivered: list[int] = []
    errors: list[BaseException] = []

    def speak(k, wide, handle):
        log.append(("start", slot.flight.request_id, k) + (("wide",) if wide else ()))
        assert release[k].wait(5)
        if k == "boom":
            raise AssertionError
        return k

    def run():
        try:
            calls.speak_in_order(slot, count, speak, delivered.append, wide_first=wide_first)
        except BaseException as exc:  # noqa: BLE001 - the test looks at it
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, delivered, errors


def test_a_slot_alone_speaks_its_next_chunk_on_the_free_call_and_delivers_in_order():
    sched = RequestScheduler(max_in_flight=4)
    calls = VoiceCalls(2, sched)
    slot = _speaker(sched, "a", Priority.JOB)
    release = {k: threading.Event() for k in range(3)}
    log: list = []
    thread, delivered, errors = _chunks_log(calls, slot, 3, release, log)
    time.sleep(0.3)
    assert log == [("start", "a", 0), ("start", "a", 1)]  # two calls, two chunks at once; never a third
    release[1].set()  # chunk 1 ends first: it waits for chunk 0, and its call goes to chunk 2
    time.sleep(0.3)
    assert delivered == [] and log[-1] == ("start", "a", 2)
    release[0].set()
    release[2].set()
    thread.join(5)
    assert delivered == [0, 1, 2] and not errors
    assert calls._free.acquire(blocking=False) and calls._free.acquire(blocking=False)  # both calls free again
    calls.close()


def test_a_call_freed_goes_to_the_slot_waiting_for_one_and_an_outranked_slot_takes_none_ahead():
    sched = RequestScheduler(max_in_flight=4)
    calls = VoiceCalls(2, sched)
    a, b = (_speaker(sched, n, Priority.CHANNEL) for n in ("a", "b"))
    ra, rb = {k: threading.Event() for k in range(3)}, {k: threading.Event() for k in range(2)}
    log: list = []
    ta, da, _ = _chunks_log(calls, a, 3, ra, log)
    time.sleep(0.2)
    assert log == [("start", "a", 0), ("start", "a", 1)]  # a alone holds both calls
    tb, db, _ = _chunks_log(calls, b, 2, rb, log)
    time.sleep(0.2)
    assert len(log) == 2  # b waits for a call
    ra[1].set()  # a's chunk ahead ends: its call goes to b, not to a's next chunk
    time.sleep(0.3)
    assert log[2:] == [("start", "b", 0)]
    ra[0].set()  # a delivers 0 and 1, then waits for a call like b: neither takes one ahead
    rb[0].set()
    time.sleep(0.3)
    assert sorted(log[3:]) == [("start", "a", 2), ("start", "b", 1)]
    ra[2].set()
    rb[1].set()
    ta.join(5)
    tb.join(5)
    assert da == [0, 1, 2] and db == [0, 1]
    # a live insert in flight: a channel slot speaking starts no chunk ahead on a call that frees
    log.clear()
    ra, rb = {k: threading.Event() for k in range(2)}, {0: threading.Event()}
    tb, db, _ = _chunks_log(calls, b, 1, rb, log)
    time.sleep(0.1)
    ta, da, _ = _chunks_log(calls, a, 2, ra, log)
    time.sleep(0.2)
    assert log == [("start", "b", 0), ("start", "a", 0)]
    live = sched.enter("live", Priority.LIVE, CancelToken())
    rb[0].set()
    time.sleep(0.3)
    assert log == [("start", "b", 0), ("start", "a", 0)]  # b's call is free, a is outranked
    sched.leave(live)
    time.sleep(0.3)
    assert log[2:] == [("start", "a", 1)]
    ra[0].set()
    ra[1].set()
    ta.join(5)
    tb.join(5)
    assert da == [0, 1] and db == [0]
    calls.close()


def test_a_chunk_that_fails_fails_the_slot_and_frees_every_call():
    sched = RequestScheduler(max_in_flight=4)
    calls = VoiceCalls(2, sched)
    slot = _speaker(sched, "a", Priority.JOB)

    def speak(k, wide, handle):
        if k == 1:
            raise RuntimeError("chunk 1 broke")
        time.sleep(0.1)
        return k

    delivered: list = []
    with pytest.raises(RuntimeError, match="chunk 1 broke"):
        calls.speak_in_order(slot, 4, speak, delivered.append)
    assert delivered == [0]
    time.sleep(0.3)
    assert calls._free.acquire(blocking=False) and calls._free.acquire(blocking=False)
    calls.close()


def test_a_slots_first_chunk_takes_every_call_only_where_all_are_free():
    sched = RequestScheduler(max_in_flight=4)
    calls = VoiceCalls(2, sched)
    a, b = (_speaker(sched, n, Priority.CHANNEL) for n in ("a", "b"))
    ra, rb = {k: threading.Event() for k in range(3)}, {k: threading.Event() for k in range(2)}
    log: list = []
    ta, da, _ = _chunks_log(calls, a, 3, ra, log, wide_first=True)
    time.sleep(0.2)
    assert log == [("start", "a", 0, "wide")]  # both calls: nothing else speaks meanwhile
    tb, db, _ = _chunks_log(calls, b, 2, rb, log, wide_first=True)
    time.sleep(0.2)
    assert len(log) == 1
    ra[0].set()  # both calls free: b's first chunk is not wide (a waits for one too), and a goes on
    time.sleep(0.3)
    assert sorted(log[1:]) == [("start", "a", 1), ("start", "b", 0)]
    for e in list(ra.values()) + list(rb.values()):
        e.set()
    ta.join(5)
    tb.join(5)
    assert da == [0, 1, 2] and db == [0, 1]
    assert calls._free.acquire(blocking=False) and calls._free.acquire(blocking=False)
    calls.close()


def test_a_live_insert_speaks_two_chunks_at_once_while_its_channels_slot_pauses():
    sched = RequestScheduler(max_in_flight=4)
    calls = VoiceCalls(2, sched)
    a = _speaker(sched, "a", Priority.CHANNEL)
    ra = {k: threading.Event() for k in range(4)}
    log: list = []
    ta, da, _ = _chunks_log(calls, a, 4, ra, log)
    time.sleep(0.2)
    assert log == [("start", "a", 0), ("start", "a", 1)]
    live = _speaker(sched, "live", Priority.LIVE)
    rl = {k: threading.Event() for k in range(2)}
    tl, dl, _ = _chunks_log(calls, live, 2, rl, log)
    ra[0].set()
    ra[1].set()
    time.sleep(0.3)  # the channel slot pauses; its calls go to the live insert's two chunks
    assert sorted(log[2:]) == [("start", "live", 0), ("start", "live", 1)]
    rl[0].set()
    rl[1].set()
    tl.join(5)
    sched.leave(live.flight)
    ra[2].set()
    ra[3].set()
    ta.join(5)
    assert dl == [0, 1] and da == [0, 1, 2, 3] and sorted(log[4:]) == [("start", "a", 2), ("start", "a", 3)]
    calls.close()


class _Handle:
    """A stoppable call, as onnxruntime's RunOptions.terminate gives one."""

    def __init__(self) -> None:
        self.stopped = threading.Event()

    def stop(self) -> None:
        self.stopped.set()


def test_a_live_insert_stops_the_channel_slots_running_calls_which_speak_those_chunks_again():

    from vortex.contracts.cancel import VoiceCallStopped

    sched = RequestScheduler(max_in_flight=4)
    calls = VoiceCalls(2, sched, call_handle=_Handle)
    a = _speaker(sched, "a", Priority.CHANNEL)
    log: list = []
    go_on = threading.Event()
    delivered: list = []

    def speak(k, wide, handle):
        log.append(("start", k))
        while not go_on.is_set():  # a long sentence, until stopped
            if handle.stopped.wait(0.01):
                log.append(("stopped", k))
                raise VoiceCallStopped
        return k

    ta = threading.Thread(target=calls.speak_in_order, args=(a, 3, speak, delivered.append))
    ta.start()
    time.sleep(0.2)
    assert log == [("start", 0), ("start", 1)]  # alone: both calls
    live = _speaker(sched, "live", Priority.LIVE)
    began = time.monotonic()
    with calls.turn(live):  # the live insert's plan: it waits for no channel sentence
        waited = time.monotonic() - began
    time.sleep(0.1)  # the second stop is logged just after the first call freed
    assert sorted(log[2:4]) == [("stopped", 0), ("stopped", 1)]
    assert waited < 0.3
    sched.leave(live.flight)
    go_on.set()
    ta.join(5)
    assert delivered == [0, 1, 2]  # each chunk once, in order: the stopped ones spoken again whole
    assert sorted(log[4:]) == [("start", 0), ("start", 1), ("start", 2)]
    calls.close()
