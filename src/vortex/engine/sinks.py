"""Where a slot's media go as they are made: the engine's sinks (the `FrameSink` protocol and
`MediaShape` are contracts: vortex.contracts.sinks).

Implementations: `Mp4Sink` (an H.264 + AAC file at a temporary name that vortex.engine.outputs
publishes), `ArraySink` (every frame in memory, for callers that ask: 0.85 GB at 45 s), the
channel's HLS sinks (vortex.channel.hls: the spool and the live sink), and the proof (`ProofSink`).
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from collections.abc import Sequence
from typing import Callable, Optional

import numpy as np

from ..contracts.captions import Cue
from ..contracts.sinks import FrameSink, MediaShape
from ..media import Mp4Writer
from ..program.captions import add_mov_text
from ..result import ProofHasher
from .cpu import CpuLedger

log = logging.getLogger("vortex.engine")


class ArraySink:
    """Every frame in one (n, H, W, 3) uint8 array, and the audio joined."""

    def __init__(self) -> None:
        self.frames: Optional[np.ndarray] = None
        self._audio: list[np.ndarray] = []

    def open(self, shape: MediaShape) -> None:
        self.frames = np.empty((shape.n_frames, shape.height, shape.width, 3), dtype=np.uint8)

    def write_audio(self, chunk: np.ndarray) -> None:
        self._audio.append(np.array(chunk, dtype=np.float32, copy=True))

    def write_frame(self, index: int, frame: np.ndarray) -> None:
        self.frames[index] = frame

    @property
    def waveform(self) -> np.ndarray:
        return np.concatenate(self._audio) if self._audio else np.zeros(0, np.float32)

    def finish(self) -> None:
        pass

    def abort(self) -> None:
        self.frames, self._audio = None, []


class Mp4Sink:
    """The slot's MP4, muxed as the slot streams, at `path` (a temporary name of the caller's)."""

    cpu_stage = "encode"

    def __init__(self, path: Path, captions: Sequence[Cue] = (),
                 mark: Optional[Callable[[int, np.ndarray], np.ndarray]] = None,
                 audio_mark: Optional[Callable[[np.ndarray], np.ndarray]] = None):
        self.path = Path(path)
        self.captions = tuple(captions)  # muxed as a mov_text track
        self._writer: Optional[Mp4Writer] = None
        self._mark = mark  # vortex.provenance.watermark.Marker: the file's frames only, not the proof's
        self._audio_mark = audio_mark  # vortex.provenance.audio_mark.AudioMarker: the file's audio, likewise

    def open(self, shape: MediaShape) -> None:
        self._writer = Mp4Writer(self.path, width=shape.width, height=shape.height, fps=shape.fps,
                                 sample_rate=shape.sample_rate, atomic=False)
        if self.captions:
            add_mov_text(self._writer.container, self.captions)

    def write_audio(self, chunk: np.ndarray) -> None:
        chunk = np.asarray(chunk, dtype=np.float32)
        self._writer.write_audio(chunk if self._audio_mark is None else self._audio_mark(chunk))

    def write_frame(self, index: int, frame: np.ndarray) -> None:
        self._writer.write_frame(frame if self._mark is None else self._mark(index, frame))

    def finish(self) -> None:
        self._writer.close()

    def abort(self) -> None:
        if self._writer is not None:
            self._writer.abort()


class ProofSink:
    """The determinism proof's media hashes, kept as the slot streams (vortex.result.ProofHasher)."""

    cpu_stage = "proof"

    def __init__(self) -> None:
        self.hasher: Optional[ProofHasher] = None

    def open(self, shape: MediaShape) -> None:
        self.hasher = ProofHasher((shape.n_frames, shape.height, shape.width, 3))

    def write_audio(self, chunk: np.ndarray) -> None:
        self.hasher.add_audio(chunk)

    def write_frame(self, index: int, frame: np.ndarray) -> None:
        self.hasher.add_frame(frame)

    def finish(self) -> None:
        pass

    def abort(self) -> None:
        self.hasher = None


class SinkSet:
    """Every sink of one slot, written together: all finish, or all are aborted. With `cpu` (the
    slot's vortex.engine.cpu.CpuLedger) each sink's work is counted to its `cpu_stage` ("sinks" if
    it names none)."""

    def __init__(self, sinks: list[FrameSink], cpu: Optional[CpuLedger] = None):
        self.sinks = list(sinks)
        self.cpu = cpu
        self._opened: list[FrameSink] = []
        self.shape: Optional[MediaShape] = None
        self.frames_written = 0
        self.samples_written = 0

    def open(self, shape: MediaShape) -> None:
        self.shape = shape
        try:
            for s in self.sinks:
                s.open(shape)
                self._opened.append(s)
        except BaseException:
            self.abort()
            raise

    def add(self, sink: FrameSink) -> None:
        """A sink that joins before the first frame (it misses the audio written so far: for
        sinks that only look at frames, such as the checks)."""
        if self.frames_written:
            raise RuntimeError("a sink joins before the first frame")
        self.sinks.append(sink)
        sink.open(self.shape)
        self._opened.append(sink)

    def write_audio(self, chunk: np.ndarray) -> None:
        for s in self._opened:
            with self._stage(s):
                s.write_audio(chunk)
        self.samples_written += len(chunk)

    def write_frame(self, index: int, frame: np.ndarray) -> None:
        if index != self.frames_written:
            raise ValueError(f"frames must arrive in order: expected frame {self.frames_written}, got {index}")
        for s in self._opened:
            with self._stage(s):
                s.write_frame(index, frame)
        self.frames_written += 1

    def finish(self) -> None:
        try:
            for s in self._opened:
                with self._stage(s):
                    s.finish()
        except BaseException:
            self.abort()
            raise

    def _stage(self, sink: FrameSink):
        if self.cpu is None:
            return contextlib.nullcontext()
        return self.cpu.stage(getattr(sink, "cpu_stage", "sinks"))

    def abort(self) -> None:
        for s in self._opened:
            try:
                s.abort()
            except Exception:  # noqa: BLE001 - one sink's failure to clean up must not keep the others' files
                log.exception("a sink failed to abort", extra={"event": "sink_abort_failed", "sink": type(s).__name__})
        self._opened = []
