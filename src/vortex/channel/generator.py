"""The channel's generator: it makes the schedule's slots, up to ``slots_in_flight`` at once, and
hands them to the appender decided and in schedule order.

Slot k's request starts while slot k-1 is still being made (its render, its checks): the engine
runs requests of one priority side by side (engine/scheduling.py), so the next slot's voice uses
the core the slot before leaves idle. Measured on the 2-core CPU, default profile (docs/performance.md
§12.2): examples/channel.yaml's voice-heavy 4-6 s slots kept one core busy for their voice, one
slot after another.

What stays as it was with one in flight:
- the decisions (aired, filler, break), the records' air times and the hand-over are made in
  schedule order by this thread (the caller's), whatever order the attempts end in; a slot that
  is retried holds back the ones after it;
- each attempt's deadline, skip and retry (policy.py); the deadline is the record's, so a live
  insert that pushes the schedule later gives a slot being made its later deadline;
- realtime: at most ``lookahead`` slots are ahead of the air, the ones being made counted: a slot
  starts when the made ones waiting for air plus those in flight are fewer (lookahead 1: one at a
  time). A slot starts early only once its air time is known (not beside a "now" epoch's first);
- ``stop()`` cancels every request in flight; none is decided after it.

Each slot's attempts run on a worker thread of this module's pool; ``ChannelRunner`` (scheduler.py,
not imported: it builds on this module) is used through its members definition, options, engine,
lock, state, save, timeout, spools, spool, mp4, next_air, decide and source_of.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Optional

from . import policy
from .handoff import Handoff, Ready
from .hls.spool import SlotSpool
from .records import Attempt, SlotRecord, iso, parse_iso
from ..engine.outputs import write_text_atomic
from ..program.loudness import channel_target, figures as loudness_figures

SLOT_THREAD = "channel-slot"  # the workers' thread name prefix


@dataclass
class _Item:
    """A schedule item in flight: a slot being made (``made`` its future: True once made) or a break."""

    record: SlotRecord
    made: Optional[Future] = None  # None: a break, nothing to make

    def done(self) -> bool:
        return self.made is None or self.made.done()


class Generator:
    def __init__(self, runner: Any, handoff: Handoff):
        self.runner, self.handoff = runner, handoff
        self.in_flight = slots_in_flight(runner.definition.slots_in_flight, runner.engine)
        self.lock = threading.RLock()  # the requests in flight, the costs (stop() may come in a signal handler)
        self._requests: set[str] = set()  # request ids in flight (stop cancels them)
        self.costs: list[float] = []  # attempt seconds / slot seconds of recent successes
        self._wake = threading.Event()  # a slot ended, or a stop
        self._closed = threading.Event()  # the loop has ended (a stop, or an error): no new attempt starts

    # -- control (any thread) ---------------------------------------------------------------------
    def cancel(self) -> None:
        """Cancel every request in flight (the stop is already set: no new one starts)."""
        with self.lock:
            requests = list(self._requests)
        for request_id in requests:
            self.runner.engine.cancel(request_id)
        self._wake.set()

    # -- the loop (the caller's thread) -----------------------------------------------------------
    def run(self, index: int) -> None:
        stop = self.handoff.stop
        flight: deque[_Item] = deque()
        pool = ThreadPoolExecutor(max_workers=self.in_flight, thread_name_prefix=SLOT_THREAD)
        try:
            while True:
                self._wake.clear()  # before looking: a slot that ends from here on wakes the wait
                if stop.is_set():
                    break
                if flight and flight[0].done():
                    self._hand_over(flight.popleft())
                    continue
                wait: Optional[float] = None  # None: until a slot ends or a stop
                if len(flight) < self.in_flight:
                    started = self._start(index, flight, pool)
                    if started is True:
                        index += 1
                        continue
                    if started is False and not flight:
                        break  # the list is done (or max_slots): nothing left in flight
                    wait = started if isinstance(started, float) else None
                self._wake.wait(1.0 if wait is None else wait)  # woken at once when a slot ends
        finally:  # a stop or an error: what is still in flight is cancelled, and not decided
            self._closed.set()
            self.cancel()
            pool.shutdown(wait=True)  # no attempt writes to the folder after run() returns
        self.handoff.ended = not stop.is_set()

    def _start(self, index: int, flight: deque[_Item], pool: ThreadPoolExecutor):
        """Start schedule item ``index``: True started; False: there is none (the end of the list or
        of ``max_slots``); a float: seconds to wait before the lookahead allows it; None: wait until
        a slot in flight ends (its successor's air time is not known yet)."""
        r, d, o = self.runner, self.runner.definition, self.runner.options
        slot = d.slot_at(index)
        if slot is None or not policy.more_to_air(index, o.max_slots):
            return False
        making = sum(1 for item in flight if item.made is not None)
        if o.pace == "realtime":
            with r.lock:
                aired = [parse_iso(s.air_time) for s in r.state.slots if s.decision == "aired"]
            wait = policy.lookahead_wait(aired, _now(), d.lookahead, making)
            if wait is not None:  # inf: until a slot in flight ends (the wait wakes then anyway)
                return None if math.isinf(wait) else max(wait, 0.0)
        with r.lock:  # the air time and the record together: an insert's shift moves both or neither
            if flight:
                last = flight[-1].record
                air = None if last.air_time is None else policy.air_after(parse_iso(last.air_time), last.duration_sec)
                if air is None and o.pace == "realtime":
                    return None  # a "now" epoch's first slot sets the timetable once it is decided
            else:
                air = r.next_air
            record = SlotRecord(index, slot.position, slot.source, slot.duration_sec, slot.n_frames, air_time=iso(air))
            record.deadline = iso(policy.deadline_for(air, d.margin_sec, o.pace))
            r.state.slots.append(record)
        if slot.is_break:  # the slate airs: nothing to make (breaks.py)
            flight.append(_Item(record))
            return True
        made = pool.submit(self._make, slot.recipe, record)
        made.add_done_callback(lambda _: self._wake.set())
        flight.append(_Item(record, made))
        return True

    def _hand_over(self, item: _Item) -> None:
        """Decide the oldest item in flight and queue it for the appender (a failed worker raises here)."""
        r = self.runner
        if item.made is None:
            r.decide(item.record, False, decision="break")
            self.handoff.put(Ready(item.record, "break", None))
            return
        ok = item.made.result()
        r.decide(item.record, ok)
        self.handoff.put(Ready(item.record, *r.source_of(item.record)))

    # -- one slot's attempts (a worker thread) ------------------------------------------------------
    def _make(self, recipe, record: SlotRecord) -> bool:
        from ..contracts.requests import Priority, SlotRequest

        r, d, o = self.runner, self.runner.definition, self.runner.options
        stop = self.handoff.stop
        closed = self._closed
        seed = policy.slot_seed(d.name, record.index, recipe.slot_params.seed)
        for _ in range(d.max_attempts):
            with r.lock:  # the record's: later by any live insert since the slot started
                deadline = parse_iso(record.deadline)
            left = policy.seconds_left(deadline, _now())
            with self.lock:
                need = policy.expected_seconds(self.costs, record.duration_sec)
            verdict = policy.attempt_verdict(left, need)
            if verdict == "too_late":
                break
            if verdict == "skip":
                with r.lock:
                    record.attempts.append(Attempt(seed, "skipped", "deadline", policy.skip_reason(need, left), 0.0))
                    r.save()
                break
            spool = SlotSpool(r.spool(record.index), width=o.width, height=o.height, fps=d.fps,
                              sample_rate=o.sample_rate) if r.spools else None
            request = SlotRequest(recipe=recipe, slot_id=record.index, seed=seed, priority=Priority.CHANNEL,
                                  deadline_s=r.timeout if left is None else left,
                                  output=None if spool else r.mp4(record.index), sinks=(spool,) if spool else (),
                                  loudness=channel_target(d.program))
            with self.lock:
                self._requests.add(request.id)
            if stop.is_set() or closed.is_set():  # after registering: a stop from here on cancels it
                break
            began = time.monotonic()
            try:
                result = r.engine.run(request, on_event=None)
            finally:
                with self.lock:
                    self._requests.discard(request.id)
            replica = result.replica  # a RayEngine's result says which replica ran it
            attempt = Attempt(int(result.seed), "ok" if result.success else "failed", result.error_kind,
                              result.error_msg, round(time.monotonic() - began, 3),
                              replica.get("id") if isinstance(replica, dict) else None,
                              getattr(result, "cpu_s", None) or None,  # the cost accounting's hook
                              loudness_figures(getattr(result, "loudness", None)))
            with r.lock:
                record.attempts.append(attempt)
                r.save()
            if result.success:
                with self.lock:
                    self.costs = policy.remember_cost(self.costs, attempt.seconds, record.duration_sec)
                if spool is not None:  # the sidecar the engine writes beside an MP4: what the checks said
                    write_text_atomic(r.mp4(record.index).with_suffix(".json"),
                                      json.dumps(result.metadata(), indent=2) + "\n")
                return True
            if not policy.may_retry(result.error_kind) or stop.is_set() or closed.is_set():
                break
            seed = policy.retry_seed(result.seed)
        return False


def slots_in_flight(wanted: int, engine: Any) -> int:
    """The slots made at once: ``wanted``, but with one place in the engine left for a live insert
    (it must enter to pre-empt them: an engine's ``pipeline.max_in_flight`` of 2 allows one slot)."""
    cfg = getattr(engine, "config", None)
    places = getattr(getattr(cfg, "pipeline", None), "max_in_flight", None)
    if wanted <= 1 or not isinstance(places, int):
        return wanted
    return max(1, min(wanted, places - 1))


def _now() -> datetime:
    return datetime.now(timezone.utc)
