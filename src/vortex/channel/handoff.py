"""What the runner's generator (scheduler.py) and the appender thread (appender.py) hand each other.

The generator puts decided slots (``Ready``) and finally ``END`` on the queue; the appender takes
them in order. Both read the stop, the first error (the generator re-raises it once the appender
is done), whether the generator reached its end (a stop is no end), and the fence (asked before
every write to the channel's folder: fencing.py). Neither reaches into the other's fields.
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass
from typing import Callable, Optional

from .fencing import ChannelFenced
from .records import SlotRecord


@dataclass
class Ready:
    record: SlotRecord
    kind: str  # "aired" | "last_good" | "standby"
    source: Optional[int]  # the slot index whose media are read (aired: itself; last_good: the re-aired one)


END = object()  # the generator's last item


class Handoff:
    def __init__(self, maxsize: int = 0, fence: Optional[Callable[[], None]] = None) -> None:
        self.queue: queue.Queue = queue.Queue(maxsize=maxsize)  # 0: unbounded
        self.stop = threading.Event()
        self.ended = False  # the generator reached the end of the list or max_slots
        self.error: Optional[BaseException] = None  # the appender's failure, re-raised by the generator
        self._fence = fence  # raises ChannelFenced once another node may own the channel
        self.fenced: Optional[ChannelFenced] = None
        # The fence's question and a state save share this lock: a save another thread began before a
        # refusal ends before the refusal counts, and none starts after (CI at 459536e: channel.json
        # renamed into place just after the fence refused, its .tmp in the snapshot taken then).
        self._writing = threading.RLock()

    def put(self, item) -> None:
        """Queue `item`; once stopped, a full queue drops what the appender has not started (END always goes in)."""
        while True:
            try:
                self.queue.put(item, timeout=0.2)
                return
            except queue.Full:
                if self.stop.is_set() and item is not END:
                    return
                if self.stop.is_set():
                    try:
                        self.queue.get_nowait()
                    except queue.Empty:
                        pass

    def get(self, timeout: float):
        """The next item, or None when none came within `timeout`."""
        try:
            return self.queue.get(timeout=timeout)
        except queue.Empty:
            return None

    def drain(self) -> None:
        """Take everything up to END (the appender failed: the generator must not block on a full queue)."""
        while self.queue.get() is not END:
            pass

    def fail(self, exc: BaseException) -> None:
        if self.error is None:
            self.error = exc
        self.stop.set()

    def fence_holds(self) -> bool:
        """False once the fence refused: from then on nothing is written to the folder."""
        with self._writing:
            if self._fence is not None and self.fenced is None:
                try:
                    self._fence()
                except ChannelFenced as exc:
                    self.fenced = exc
            return self.fenced is None

    def write_if_held(self, write: Callable[[], None]) -> bool:
        """`write()` while the fence holds, never beside its refusal (see `_writing`); False if refused."""
        with self._writing:
            if not self.fence_holds():
                return False
            write()
            return True
