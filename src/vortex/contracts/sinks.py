"""Where a slot's media go as they are made: the engine writes to sinks without knowing which.

A sink is opened once per slot with the media's shape, then receives the audio chunk by chunk
(in order, `n_samples` in all) and every frame in order, interleaved as the slot streams; it is
then finished (the slot's media are complete; publishing is the owner's business, after the
checks passed) or aborted (the slot failed: nothing of it may remain).

The engine's own sinks (MP4, array, proof) are in vortex.engine.sinks; the channel's HLS sinks in
vortex.channel.hls.spool and vortex.channel.hls.feed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class MediaShape:
    width: int
    height: int
    fps: int
    sample_rate: int
    n_frames: int
    n_samples: int = 0  # 0: not given (a sink that needs it reads n_frames / fps instead)


@runtime_checkable
class FrameSink(Protocol):
    def open(self, shape: MediaShape) -> None: ...

    def write_audio(self, chunk: np.ndarray) -> None:
        """The slot's next samples (float32 mono in [-1, 1]), in order."""

    def write_frame(self, index: int, frame: np.ndarray) -> None:
        """Frame `index` ((H, W, 3) uint8 RGB), in order."""

    def finish(self) -> None: ...

    def abort(self) -> None: ...
