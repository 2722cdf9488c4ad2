"""Ways a slot reaches the channel's encoders, all ending in ``HlsChannelWriter.append_slot``.

Nothing of a slot may be encoded before the slot is known to air: an encoded frame cannot be
taken back out of a continuous stream. So a slot is buffered whole, then appended:

- ``read_mp4_slot(path)``: the slot's finished MP4 (what the engine publishes), decoded with PyAV.
  The channel's default: the MP4 exists anyway and the slot's checks ran on it.
- ``HlsSlotSink``: a ``vortex.engine.sinks.FrameSink`` for the engine's video stage that spools raw RGB
  frames to a temporary file in the channel folder (a 45 s slot at 512² is 1080 x 786 KB = 850 MB:
  too much for memory, fine for disk) and keeps the waveform. ``finish()`` only completes the
  spool; ``commit()`` appends it once the slot passed its checks; ``abort()`` deletes it.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
from av.video.reformatter import ColorRange, Colorspace

from ..engine.sinks import MediaShape
from .hls import AppendedSlot, HlsChannelWriter


def read_mp4_slot(path: str | Path) -> tuple[Iterator[np.ndarray], np.ndarray, int]:
    """(frames, waveform, n_frames) of a slot MP4: RGB frames lazily, the presented PCM whole.

    The waveform is what a player presents: the mov demuxer drops the AAC priming, and the tail is
    cut at the track's duration (the last AAC frame is decoded whole, padding included).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no slot MP4 at {path}")
    with av.open(str(path)) as container:
        if not container.streams.audio or not container.streams.video:
            raise ValueError(f"{path} needs one video and one audio stream")
        stream = container.streams.audio[0]
        rate = stream.codec_context.sample_rate
        end = int(stream.duration * stream.time_base * rate) if stream.duration else None
        chunks = [frame.to_ndarray().reshape(-1) for frame in container.decode(stream)]
        n_frames = container.streams.video[0].frames
    waveform = np.clip(np.concatenate(chunks).astype(np.float32), -1.0, 1.0)
    if end is not None:
        waveform = waveform[:end]

    def frames() -> Iterator[np.ndarray]:
        with av.open(str(path)) as video:
            for frame in video.decode(video.streams.video[0]):
                # Decode with the BT.709 limited-range matrix that vortex.media encodes with.
                yield frame.reformat(format="rgb24", src_colorspace=Colorspace.ITU709,
                                     src_color_range=ColorRange.MPEG).to_ndarray()

    return frames(), waveform, n_frames


class HlsSlotSink:
    """One slot's FrameSink: frames spooled to disk, handed to the channel only by ``commit()``."""

    def __init__(self, writer: HlsChannelWriter) -> None:
        self.writer = writer
        self.shape: MediaShape | None = None
        self.waveform: np.ndarray | None = None
        self.frames_written = 0
        self._spool = writer.folder / f".slot-{secrets.token_hex(6)}.rgb.tmp"  # resume() removes leftovers
        self._file = None
        self._finished = False

    def open(self, shape: MediaShape) -> None:
        w = self.writer
        if (shape.width, shape.height, shape.fps, shape.sample_rate) != (w.width, w.height, w.fps, w.sample_rate):
            raise ValueError(f"slot media {shape.width}x{shape.height} at {shape.fps} fps, {shape.sample_rate} Hz do not "
                             f"match the channel's {w.width}x{w.height} at {w.fps} fps, {w.sample_rate} Hz")
        self.shape = shape
        self._file = open(self._spool, "wb")

    def write_audio(self, waveform: np.ndarray) -> None:
        self.waveform = np.array(waveform, dtype=np.float32, copy=True)

    def write_frame(self, index: int, frame: np.ndarray) -> None:
        if self._file is None:
            raise RuntimeError("write_frame before open (or after finish/abort)")
        if index != self.frames_written:
            raise ValueError(f"frames must arrive in order: expected frame {self.frames_written}, got {index}")
        self._file.write(np.ascontiguousarray(frame, dtype=np.uint8).tobytes())
        self.frames_written += 1

    def finish(self) -> None:
        """The slot's media are complete (still not aired: see ``commit``)."""
        if self._file is None:
            raise RuntimeError("finish before open")
        if self.waveform is None:
            raise ValueError("the slot has no audio: write_audio was never called")
        self._file.close()
        self._file = None
        self._finished = True

    def commit(self) -> AppendedSlot:
        """Append the finished slot to the channel's stream, then delete the spool."""
        if not self._finished:
            raise RuntimeError("commit needs a finished slot (finish() first; an aborted slot cannot air)")
        frames = None
        try:
            frames = np.memmap(self._spool, dtype=np.uint8, mode="r",
                               shape=(self.frames_written, self.shape.height, self.shape.width, 3))
            return self.writer.append_slot(frames, self.waveform)
        finally:
            self._finished = False
            del frames  # unmap before unlinking
            self._remove()

    def abort(self) -> None:
        """Drop the slot: nothing of it reached the encoders."""
        if self._file is not None:
            self._file.close()
            self._file = None
        self._finished = False
        self._remove()

    def _remove(self) -> None:
        try:
            os.unlink(self._spool)
        except FileNotFoundError:
            pass
