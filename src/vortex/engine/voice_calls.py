"""The voice's calls: `pipeline.voice_calls` Kokoro calls at once, shared by every slot in flight,
and each slot's chunks of speech spoken through them in order.

Who speaks next: a slot first has its turn (vortex.engine.scheduling), then one of the calls. A
thread that got a call while a higher priority entered meanwhile gives it back and waits for its
turn again: with channel slots in flight, a waiting one's chunk would otherwise speak before a
live insert's.

Look-ahead: a slot speaks its chunks in order, and takes a second call for its next chunk only
when one is free at that moment, nobody waits for one, nothing outranks the slot and no other
slot of its priority or higher still has speech to make; it never waits for such a call. Two
channel slots speaking therefore keep one call each, as before; a slot that speaks alone (a live
insert while its channel's slots pause, a job, a bench slot, a channel slot whose partner has
made all its speech) speaks its next chunk on the idle core while its current one is made. A chunk's audio depends only on its own tokens, speed and seed
(vortex.models.kokoro.voice), so chunks made side by side are the same speech.

Stopping: a slot that waits for a call stops the calls of lower priorities that are running
(`call_handle`: onnxruntime ends a run at its next node, ~10 ms); each stopped chunk is spoken
again, whole, once its slot has its turn back. A live insert then waits for no channel slot's
sentence (up to ~1.5 s of one Kokoro call on a core of the 2-core box), only for the ~10 ms.

The first chunk, wide: a slot's first frame waits for its first chunk's audio, so where every call
is free when it begins and nobody waits, the first chunk takes them all and runs on all their
threads (`speak(0, wide=True)`: onnxruntime's graph with more intra-op threads).
"""

from __future__ import annotations

import contextlib
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, Callable, Iterator

from ..contracts.cancel import VoiceCallStopped
from .scheduling import TICK_S, RequestScheduler


STOPPED = object()  # what a stopped call returns: its chunk is spoken again


class VoiceCalls:
    def __init__(self, calls: int, scheduler: RequestScheduler, call_handle: Callable[[], Any] | None = None):
        """`call_handle()`: a fresh handle per call, whose `stop()` ends it (None: calls run to their end)."""
        if calls < 1:
            raise ValueError(f"voice calls must be at least 1 (got {calls})")
        self.calls = calls
        self.scheduler = scheduler
        self._free = threading.BoundedSemaphore(calls)
        self._waiting = 0  # threads waiting in `_take` for a call: a look-ahead leaves the next free one to them
        self._speakers: dict[int, Any] = {}  # id -> slot, for the slots in `speak_in_order`
        self._running: dict[int, tuple[Any, Any]] = {}  # id(handle) -> (slot, handle), the calls that can stop
        self._call_handle = call_handle
        self._count = threading.Lock()
        # One thread a call: a chunk is submitted only once its call is held, so none ever queues.
        self._pool = ThreadPoolExecutor(max_workers=calls, thread_name_prefix="vortex-voice")

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    @contextlib.contextmanager
    def turn(self, slot: Any) -> Iterator[None]:
        """The slot's turn and one call, held over the block (the speech plan)."""
        self._take(slot)
        try:
            yield
        finally:
            self._free.release()

    def speak_in_order(self, slot: Any, count: int, speak: Callable[[int, bool, Any], Any],
                       deliver: Callable[[Any], None], *, wide_first: bool = False) -> None:
        """`speak(k, wide, handle)` for every k < count, each on a call of its own (the look-ahead
        above), the first on every call where `wide_first` and all are free; where `speak` raises
        VoiceCallStopped (its handle was stopped), that chunk is spoken again. `deliver` gets the chunks in order, on this
        thread, as each is ready. Raises what `speak` raised, or SlotCancelled."""
        with self._count:
            self._speakers[id(slot)] = slot
        try:
            self._speak(slot, count, speak, deliver, wide_first)
        finally:
            with self._count:
                self._speakers.pop(id(slot), None)

    def _speak(self, slot, count, speak, deliver, wide_first) -> None:
        pending: deque[tuple[int, Future]] = deque()
        nxt = 0
        if count and wide_first and self.calls > 1 and self._take_all(slot):
            pending.append((0, self._start(slot, speak, 0, held=self.calls)))
            nxt = 1
        while nxt < count or pending:
            slot.token.raise_if_cancelled()
            if not pending:  # the slot's next chunk: wait for a call like any other slot
                self._take(slot)
                pending.append((nxt, self._start(slot, speak, nxt)))
                nxt += 1
            while nxt < count and self._take_free(slot):
                pending.append((nxt, self._start(slot, speak, nxt)))
                nxt += 1
            index, head = pending[0]
            try:
                chunk = head.result(timeout=TICK_S)
            except FutureTimeout:
                continue  # and look again for a free call
            if chunk is STOPPED:  # a higher priority took the call: again, once the slot has its turn
                self._take(slot)
                pending[0] = (index, self._start(slot, speak, index))
                continue
            pending.popleft()
            deliver(chunk)
        # A chunk begun ahead of a failure runs on: its call frees itself (`_start`), nothing waits.

    def _take(self, slot: Any) -> None:
        while True:
            if slot.flight is not None:
                self.scheduler.turn(slot.flight)
            self._stop_below(slot)
            with self._count:
                self._waiting += 1
            try:
                self._free.acquire()
            finally:
                with self._count:
                    self._waiting -= 1
            if slot.flight is None or not self.scheduler.outranked(slot.flight):
                return
            self._free.release()

    def _take_free(self, slot: Any) -> bool:
        """A call for a chunk ahead: only one free now that no other thread waits for, and only while
        nothing outranks the slot and no other slot of its priority or higher is speaking."""
        if self._waiting or self._others_speaking(slot) or (
                slot.flight is not None and self.scheduler.outranked(slot.flight)):
            return False
        if not self._free.acquire(blocking=False):
            return False
        if slot.flight is not None and self.scheduler.outranked(slot.flight):
            self._free.release()
            return False
        return True

    def _stop_below(self, slot: Any) -> None:
        """Stop the running calls of every slot this one outranks (they are spoken again later)."""
        if slot.flight is None:
            return
        with self._count:
            below = [h for s, h in self._running.values()
                     if s.flight is not None and s.flight.priority > slot.flight.priority]
        for handle in below:
            handle.stop()

    def _others_speaking(self, slot: Any) -> bool:
        mine = slot.flight.priority if slot.flight is not None else None
        with self._count:
            others = [s for k, s in self._speakers.items() if k != id(slot)]
        return any(mine is None or s.flight is None or s.flight.priority <= mine for s in others)

    def _take_all(self, slot: Any) -> bool:
        """Every call at once, only where all are free now and nobody waits (the wide first chunk)."""
        taken = 0
        while taken < self.calls and self._take_free(slot):
            taken += 1
        if taken < self.calls:
            for _ in range(taken):
                self._free.release()
            return False
        return True

    def _start(self, slot: Any, speak: Callable[[int, bool, Any], Any], index: int, held: int = 1) -> Future:
        """Chunk `index` on the `held` calls this thread holds (more than one: wide); they are
        freed when it ends. A call whose handle was stopped returns STOPPED."""
        handle = self._call_handle() if self._call_handle is not None else None

        def call():
            if handle is not None:
                with self._count:
                    self._running[id(handle)] = (slot, handle)
            try:
                slot.token.raise_if_cancelled()
                return speak(index, held > 1, handle)
            except VoiceCallStopped:
                return STOPPED
            finally:
                if handle is not None:
                    with self._count:
                        self._running.pop(id(handle), None)
                self._free.release(held)

        try:
            return self._pool.submit(call)
        except BaseException:  # the pool is shut down: the engine is closing
            self._free.release(held)
            raise
