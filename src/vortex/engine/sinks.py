"""Where a slot's frames and audio go: the video stage writes to sinks without knowing which.

A sink is opened once per slot with the media's shape, receives the whole audio track once and
every frame in order, and is then finished (the slot's media are complete) or aborted (the slot
failed: nothing of it may remain). Implementations: `ArraySink` (frames in memory, which the
verification samples), `Mp4Sink` (an H.264 + AAC file at a temporary name that vortex.engine.outputs
publishes), and, for a channel, an HLS segmenter.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Protocol

import numpy as np

from ..media import Mp4Writer


@dataclass(frozen=True)
class MediaShape:
    width: int
    height: int
    fps: int
    sample_rate: int
    n_frames: int


class FrameSink(Protocol):
    def open(self, shape: MediaShape) -> None: ...

    def write_audio(self, waveform: np.ndarray) -> None: ...

    def write_frame(self, index: int, frame: np.ndarray) -> None: ...

    def finish(self) -> None: ...

    def abort(self) -> None: ...


class ArraySink:
    """Every frame in one (n, H, W, 3) uint8 array (the verification samples it)."""

    def __init__(self) -> None:
        self.frames: Optional[np.ndarray] = None

    def open(self, shape: MediaShape) -> None:
        self.frames = np.empty((shape.n_frames, shape.height, shape.width, 3), dtype=np.uint8)

    def write_audio(self, waveform: np.ndarray) -> None:
        pass

    def write_frame(self, index: int, frame: np.ndarray) -> None:
        self.frames[index] = frame

    def finish(self) -> None:
        pass

    def abort(self) -> None:
        self.frames = None


class Mp4Sink:
    """The slot's MP4, muxed while later frames render, at `path` (a temporary name of the caller's)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._writer: Optional[Mp4Writer] = None

    def open(self, shape: MediaShape) -> None:
        self._writer = Mp4Writer(self.path, width=shape.width, height=shape.height, fps=shape.fps,
                                 sample_rate=shape.sample_rate, atomic=False)

    def write_audio(self, waveform: np.ndarray) -> None:
        self._writer.write_audio(waveform)

    def write_frame(self, index: int, frame: np.ndarray) -> None:
        self._writer.write_frame(frame)

    def finish(self) -> None:
        self._writer.close()

    def abort(self) -> None:
        if self._writer is not None:
            self._writer.abort()


def open_all(sinks: list[FrameSink], shape: MediaShape, waveform: np.ndarray) -> list[FrameSink]:
    """Open every sink and hand it the slot's audio; on a failure the ones opened are aborted."""
    opened: list[FrameSink] = []
    try:
        for s in sinks:
            s.open(shape)
            opened.append(s)
            s.write_audio(waveform)
    except BaseException:
        for s in opened:
            s.abort()
        raise
    return opened
