"""A channel runner's fence: when a service runs channels on several nodes, the runner asks it before
each write to the channel's folder, and once it refuses (the node lost the channel's lease:
service/channel_lease.py) the runner writes nothing more.

The runner asks before each append, before saving channel.json and before closing the playlist
(scheduler.py). A realtime append lasts the slot's whole air time (the pacer hands each frame over
one part before it airs), so `fenced_pace` also asks before each frame, and once more when the
pacer ends the slot early. When the fence refuses there, the appender thread parks for good:
returning, even by raising, would let the writer fit the slot's audio to the frames it has and
publish its last part, after another node may have taken the channel over and written its own.
A parked thread holds its slot's frames and encoder until the process exits; it happens only to
a node that was frozen or cut off from the store for longer than its lease.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator

import numpy as np

from ..errors import VortexError

log = logging.getLogger("vortex.channel")


class ChannelFenced(VortexError):
    """The runner's fence refused (the service's channel lease is lost): it writes nothing more."""


def fenced_pace(pace: Callable[[Iterable[np.ndarray]], Iterable[np.ndarray]], holds: Callable[[], bool],
                on_park: Callable[[], None] = lambda: None) -> Callable[[Iterable[np.ndarray]], Iterable[np.ndarray]]:
    """`pace` (the writer's pacing of a slot's frames), asking `holds()` before each frame is handed
    over and when the frames end; a refusal calls `on_park()` and blocks the thread for good."""

    def wrap(frames: Iterable[np.ndarray]) -> Iterable[np.ndarray]:
        paced = pace(frames)
        return _FencedSized(paced, holds, on_park) if hasattr(paced, "__len__") else _Fenced(paced, holds, on_park)

    return wrap


class _Fenced:
    def __init__(self, frames: Iterable[np.ndarray], holds: Callable[[], bool], on_park: Callable[[], None]):
        self._frames, self._holds, self._on_park = frames, holds, on_park

    def _check(self) -> None:
        if not self._holds():
            log.warning("the channel's fence refused mid-slot: this append writes nothing more and its thread "
                        "parks until the process exits", extra={"event": "channel_fenced_mid_slot"})
            self._on_park()
            threading.Event().wait()  # never set: see the module note

    def __iter__(self) -> Iterator[np.ndarray]:
        for frame in self._frames:
            self._check()
            yield frame
        self._check()  # the pacer ended the slot (a stop, a cut): the writer closes it next


class _FencedSized(_Fenced):
    def __len__(self) -> int:  # a known length stays known: the writer checks it against the audio
        return len(self._frames)  # type: ignore[arg-type]
