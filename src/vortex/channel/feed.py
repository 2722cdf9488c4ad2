"""Ways a slot reaches the channel's encoders: a ``SlotFeed`` (what ``HlsChannelWriter.open_slot``
returns, and what ``append_slot`` uses), fed with frames and audio chunks as they come.

Nothing of a slot may be encoded before the slot is known to air: an encoded frame cannot be
taken back out of a continuous stream. So a made-ahead slot is buffered whole, then appended:

- ``read_mp4_slot(path)``: the slot's finished MP4 (what the engine publishes), decoded with PyAV.
  The channel's default: the MP4 exists anyway and the slot's checks ran on it.
- ``HlsSlotSink``: a ``vortex.contracts.sinks.FrameSink`` for the engine's video stage that spools raw RGB
  frames to a temporary file in the channel folder (a 45 s slot at 512² is 1080 x 786 KB = 850 MB:
  too much for memory, fine for disk) and keeps the waveform. ``finish()`` only completes the
  spool; ``commit()`` appends it once the slot passed its checks; ``abort()`` deletes it.

A slot that airs while it is made (a live insert) goes through ``HlsLiveSink``: the same FrameSink
protocol, straight into a ``SlotFeed``, so its parts are published while later frames are rendered.
"""

from __future__ import annotations

import os
import secrets
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Optional

import av
import numpy as np
from av.video.reformatter import ColorRange, Colorspace

from ..contracts.sinks import MediaShape
from .hls import AppendedSlot, HlsChannelWriter, checked_audio


def read_mp4_slot(path: str | Path, *, rgb: bool = True) -> tuple[Iterator, np.ndarray, int]:
    """(frames, waveform, n_frames) of a slot MP4: frames lazily, the presented PCM whole.

    Frames are RGB arrays, or with ``rgb=False`` the decoded yuv420p ``av.VideoFrame`` s, which the
    channel's encoder takes as they are (at 512² that saves the two colour conversions, 3 ms a
    frame). The waveform is what a player presents: the mov demuxer drops the AAC priming, and the
    tail is cut at the track's duration (the last AAC frame is decoded whole, padding included).
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
                if not rgb:
                    yield frame if frame.format.name == "yuv420p" else frame.reformat(format="yuv420p")
                    continue
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
        self._chunks: list[np.ndarray] = []
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

    def write_audio(self, chunk: np.ndarray) -> None:
        """The slot's next samples (the engine streams them chunk by chunk)."""
        self._chunks.append(np.array(chunk, dtype=np.float32, copy=True).reshape(-1))

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
        if not self._chunks:
            raise ValueError("the slot has no audio: write_audio was never called")
        self.waveform, self._chunks = np.concatenate(self._chunks), []
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


class SlotFeed:
    """One slot going into the channel's encoders as it is made (``HlsChannelWriter.open_slot``).

    ``write_frame`` encodes at once; ``write_audio`` keeps the samples until the video has got
    that far (audio never runs past the video, module note of hls.py), so the two may come in any
    interleaving. ``close`` fits the slot's audio to its video end (pads silence or drops the
    rest) and says what was appended; what was encoded has aired: there is no abort.
    """

    def __init__(self, writer: HlsChannelWriter) -> None:
        self.writer = writer
        self.first_frame = writer.frames_appended
        self.air_time = writer.air_time_at(self.first_frame)
        self._pending: deque[np.ndarray] = deque()
        self._given = self._fed = 0
        self._report: Optional[AppendedSlot] = None

    @property
    def n_frames(self) -> int:
        return self.writer.frames_appended - self.first_frame

    def write_frame(self, frame: np.ndarray) -> None:
        self._check_open()
        self.writer._encode_frame(frame)
        self._drain()
        self.writer._publish_ready()

    def write_audio(self, chunk: np.ndarray) -> None:
        self._check_open()
        chunk = checked_audio(chunk, f"audio chunk at sample {self._given} of the slot")
        if chunk.size:
            self._pending.append(chunk)
            self._given += chunk.size
            self._drain()
            self.writer._publish_ready()

    def close(self) -> AppendedSlot:
        """End the slot (idempotent): its audio fitted to its frames."""
        if self._report is not None:
            return self._report
        try:
            self._drain()
            room = self.writer._audio_room()
            if room > 0:  # the audio came short: silence to the video's end
                self.writer._encode_audio(np.zeros(room, np.float32))
                self._fed += room
            self._pending.clear()  # beyond the video's end: trimmed
            self.writer._publish_ready()
        finally:
            self.writer._slot_closed()
            self._report = AppendedSlot(self.first_frame, self.n_frames, self._fed, self._fed - self._given,
                                        self.air_time)
        return self._report

    def _drain(self) -> None:
        room, take = self.writer._audio_room(), []
        while room > 0 and self._pending:
            head = self._pending[0]
            if head.size <= room:
                take.append(self._pending.popleft())
                room -= head.size
            else:
                take.append(head[:room])
                self._pending[0] = head[room:]
                room = 0
        if take:
            pcm = take[0] if len(take) == 1 else np.concatenate(take)
            self.writer._encode_audio(pcm)
            self._fed += pcm.size

    def _check_open(self) -> None:
        if self._report is not None:
            raise RuntimeError("this slot feed is closed")


class HlsLiveSink:
    """A ``FrameSink`` that airs a slot while it is made: every frame and chunk goes straight to the
    channel's encoders. ``finish`` and ``abort`` both close the slot (what was encoded has aired).
    With ``pacer`` (pacing.WallClockPacer) a frame that comes early waits until one part before its
    air time, so the published stream keeps within a part of the wall clock."""

    def __init__(self, writer: HlsChannelWriter, pacer=None) -> None:
        self.writer, self.pacer = writer, pacer
        self.feed: Optional[SlotFeed] = None
        self.report: Optional[AppendedSlot] = None

    def open(self, shape: MediaShape) -> None:
        w = self.writer
        if (shape.width, shape.height, shape.fps, shape.sample_rate) != (w.width, w.height, w.fps, w.sample_rate):
            raise ValueError(f"slot media {shape.width}x{shape.height} at {shape.fps} fps, {shape.sample_rate} Hz do not "
                             f"match the channel's {w.width}x{w.height} at {w.fps} fps, {w.sample_rate} Hz")
        self.feed = w.open_slot()

    def write_audio(self, chunk: np.ndarray) -> None:
        self.feed.write_audio(np.clip(np.asarray(chunk, dtype=np.float32).reshape(-1), -1.0, 1.0))

    def write_frame(self, index: int, frame: np.ndarray) -> None:
        if index != self.feed.n_frames:
            raise ValueError(f"frames must arrive in order: expected frame {self.feed.n_frames}, got {index}")
        if self.pacer is not None:
            self.pacer.wait_for(self.writer.frames_appended)
        self.feed.write_frame(np.ascontiguousarray(frame, dtype=np.uint8))

    def finish(self) -> None:
        self.report = self.feed.close()

    def abort(self) -> None:
        if self.feed is not None:
            self.report = self.feed.close()
