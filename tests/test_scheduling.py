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
    live insert that enters then speaks next (VortexPipeline._voice_turn, on the real scheduler)."""
    from types import MethodType, SimpleNamespace

    from vortex.engine.pipeline import VortexPipeline

    sched = RequestScheduler(max_in_flight=4)
    engine = SimpleNamespace(scheduler=sched, _voice_lock=threading.Lock())
    engine._turn = MethodType(VortexPipeline._turn, engine)
    voice_turn = MethodType(VortexPipeline._voice_turn, engine)
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
    (VortexPipeline._voice_turn with the engine's semaphore, on the real scheduler)."""
    from types import MethodType, SimpleNamespace

    from vortex.engine.pipeline import VortexPipeline

    sched = RequestScheduler(max_in_flight=4)
    engine = SimpleNamespace(scheduler=sched, _voice_lock=threading.BoundedSemaphore(2))
    engine._turn = MethodType(VortexPipeline._turn, engine)
    voice_turn = MethodType(VortexPipeline._voice_turn, engine)
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
