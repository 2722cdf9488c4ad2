"""Requests in flight, and who runs next: the engine's priority policy.

Several requests may be in flight at once (at most `pipeline.max_in_flight`; more wait to enter,
the highest priority first). Each slot streams in chunks (a sentence of speech, a batch of frames,
a window of the speech check) and asks for its `turn` before each one. The policy:

- priorities are live, then channel, then job (`Priority`);
- a request runs its next chunk only while no request of a higher priority is in flight: a job
  pauses between two chunks while a channel slot is being made, and resumes after it. It is
  paused, not failed: a job's deadline moves on by the time it waited (a channel slot's deadline
  is its air time and does not);
- requests of the same priority run side by side; the render queue (vortex.engine.render) serves
  their frames by priority and, where the animator renders batches (LivePortrait on a GPU),
  batches frames of several streams into one call.

This is vLLM's step-boundary scheduling with slots for sequences: a high-priority slot waits at
most for the chunk that is running when it arrives.
"""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass, field
from ..contracts.cancel import CancelToken
from ..contracts.requests import Priority

TICK_S = 0.05  # how often a waiting thread looks at its cancel token and deadline


@dataclass
class Flight:
    """One request in flight."""

    request_id: str
    priority: Priority
    seq: int
    token: CancelToken
    paused_s: float = 0.0  # wall time during which any of its threads waited for higher priorities
    _paused_until: float = 0.0  # the end of the pause already counted (its threads pause together)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def paused(self, since: float, now: float) -> None:
        """A thread of this request waited from `since` to `now`: count what no other thread counted.
        A job's deadline moves on by as much: a job's time limit catches a stuck slot, and waiting
        behind on-air work is not that. A channel slot's or a live insert's deadline is its air time."""
        with self._lock:
            gain = now - max(since, self._paused_until)
            if gain <= 0:
                return
            self.paused_s += gain
            self._paused_until = now
            if self.priority == Priority.JOB and self.token.deadline is not None:
                self.token.deadline += gain


class RequestScheduler:
    def __init__(self, max_in_flight: int):
        if max_in_flight < 1:
            raise ValueError(f"max_in_flight must be at least 1 (got {max_in_flight})")
        self.max_in_flight = max_in_flight
        self._cond = threading.Condition()
        self._active: dict[str, Flight] = {}
        self._waiting: list[Flight] = []
        self._seq = itertools.count()

    def enter(self, request_id: str, priority: Priority, token: CancelToken) -> Flight:
        """Wait for a place in flight (the highest priority, then the earliest, enters first)."""
        flight = Flight(request_id, priority, next(self._seq), token)
        with self._cond:
            self._waiting.append(flight)
            try:
                while len(self._active) >= self.max_in_flight or min(self._waiting, key=_order) is not flight:
                    self._cond.wait(TICK_S)
                    token.raise_if_cancelled()
            except BaseException:
                self._waiting.remove(flight)
                self._cond.notify_all()
                raise
            self._waiting.remove(flight)
            self._active[request_id] = flight
            self._cond.notify_all()
        return flight

    def leave(self, flight: Flight) -> None:
        with self._cond:
            self._active.pop(flight.request_id, None)
            self._cond.notify_all()

    def turn(self, flight: Flight) -> None:
        """Return when `flight` may run its next chunk (see the policy above); raises SlotCancelled."""
        flight.token.raise_if_cancelled()
        with self._cond:
            if not self._outranked(flight):
                return
            started = time.monotonic()
            while self._outranked(flight):
                self._cond.wait(TICK_S)
                flight.paused(started, time.monotonic())  # before the deadline is looked at
                flight.token.raise_if_cancelled()

    def outranked(self, flight: Flight) -> bool:
        """Whether a request of a higher priority than `flight`'s is in flight now."""
        with self._cond:
            return self._outranked(flight)

    def _outranked(self, flight: Flight) -> bool:
        return any(other.priority < flight.priority for other in self._active.values())

    def in_flight(self) -> list[tuple[str, str]]:
        """(request id, priority) of every request in flight, the highest priority first."""
        with self._cond:
            return [(f.request_id, str(f.priority)) for f in sorted(self._active.values(), key=_order)]


def _order(flight: Flight) -> tuple[int, int]:
    return int(flight.priority), flight.seq
