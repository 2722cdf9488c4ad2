"""Per-job event fan-out: the worker thread publishes, each SSE client's event loop consumes.

The engine calls back from its own threads, so `publish` takes a lock and hands each event to a
subscriber's loop with `call_soon_threadsafe`; no asyncio primitive is touched off its loop. A
late subscriber first gets the job's history, then the live events, then the end. Histories are
bounded: progress events replace each other (a 45 s slot would otherwise keep 1080 of them) and
only the last `keep_finished` finished jobs keep theirs, so memory stays flat under load.
"""

from __future__ import annotations

import asyncio
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Optional

END = "end"


@dataclass(frozen=True)
class Event:
    id: int  # per job, from 1: the SSE id, so a client can resume with Last-Event-ID
    kind: str
    data: dict[str, Any]


@dataclass
class _Channel:
    history: list[Event] = field(default_factory=list)
    subscribers: list[tuple[asyncio.AbstractEventLoop, asyncio.Queue]] = field(default_factory=list)
    next_id: int = 1
    ended: bool = False


class EventHub:
    def __init__(self, keep_finished: int = 64):
        self._lock = threading.Lock()
        self._channels: OrderedDict[str, _Channel] = OrderedDict()
        self._keep_finished = keep_finished

    def publish(self, job_id: str, kind: str, data: dict[str, Any]) -> None:
        """From any thread. kind END closes the job's stream."""
        with self._lock:
            ch = self._channels.get(job_id)
            if ch is None:
                ch = self._channels[job_id] = _Channel()
            elif ch.ended:  # a requeued job starts a new attempt: a fresh stream
                ch.ended = False
            event = Event(ch.next_id, kind, data)
            ch.next_id += 1
            if kind == "progress" and ch.history and ch.history[-1].kind == "progress":
                ch.history[-1] = event
            else:
                ch.history.append(event)
            if kind == END:
                ch.ended = True
                self._channels.move_to_end(job_id)
                self._trim()
            subscribers = list(ch.subscribers)
        for loop, queue in subscribers:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, event)
            except RuntimeError:  # that client's loop has closed
                pass

    def subscribe(self, job_id: str) -> tuple[list[Event], asyncio.Queue, bool]:
        """On the caller's loop: (history so far, a queue of what follows, whether it already ended)."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()
        with self._lock:
            ch = self._channels.get(job_id)
            if ch is None:
                ch = self._channels[job_id] = _Channel()
            ch.subscribers.append((loop, queue))
            return list(ch.history), queue, ch.ended

    def unsubscribe(self, job_id: str, queue: asyncio.Queue) -> None:
        with self._lock:
            ch = self._channels.get(job_id)
            if ch is not None:
                ch.subscribers = [(lp, q) for lp, q in ch.subscribers if q is not queue]

    def last_progress(self, job_id: str) -> Optional[dict[str, Any]]:
        with self._lock:
            ch = self._channels.get(job_id)
            if ch is None:
                return None
            for ev in reversed(ch.history):
                if ev.kind == "progress":
                    return ev.data
        return None

    def _trim(self) -> None:
        ended = [k for k, ch in self._channels.items() if ch.ended and not ch.subscribers]
        for k in ended[: max(0, len(ended) - self._keep_finished)]:
            del self._channels[k]
