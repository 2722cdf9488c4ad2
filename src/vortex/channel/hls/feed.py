"""How a slot goes into the channel's encoders: a ``SlotFeed`` (what ``HlsChannelWriter.open_slot``
returns, and what every append uses), fed with frames and audio chunks as they come, and what an
append reports (``AppendedSlot``).

Nothing of a slot may be encoded before the slot is known to air: an encoded frame cannot be taken
back out of a continuous stream. A made-ahead slot is therefore spooled whole (spool.py) and
appended once it passed its checks; a slot that airs while it is made (a live insert) goes through
``HlsLiveSink``: the engine's FrameSink protocol straight into a ``SlotFeed``, so its parts are
published while later frames are rendered.

The writer is passed in and used through the few methods a feed drives (``_encode_frame``,
``_encode_audio``, ``_audio_room``, ``_publish_ready``, ``_slot_closed``): this module imports no
writer, so writer.py builds on it and not the other way round.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Optional

import numpy as np

from ...contracts.sinks import MediaShape


@dataclass(frozen=True)
class AppendedSlot:
    """What appending one slot did."""

    first_frame: int  # global frame index of the slot's first frame
    n_frames: int
    n_samples: int  # samples fed to the AAC encoder (the waveform, fitted)
    fitted_samples: int  # fed minus given: > 0 silence padded, < 0 tail trimmed
    air_time: datetime  # program date-time of the slot's first frame


class SlotFeed:
    """One slot going into the channel's encoders as it is made (``HlsChannelWriter.open_slot``).

    ``write_frame`` encodes at once; ``write_audio`` keeps the samples until the video has got
    that far (audio never runs past the video, module note of hls.py), so the two may come in any
    interleaving. ``close`` fits the slot's audio to its video end (pads silence or drops the
    rest) and says what was appended; what was encoded has aired: there is no abort.
    """

    def __init__(self, writer: Any) -> None:
        self.writer = writer  # an HlsChannelWriter (writer.py)
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

    def __init__(self, writer: Any, pacer=None) -> None:
        self.writer, self.pacer = writer, pacer
        self.feed: Optional[SlotFeed] = None
        self.report: Optional[AppendedSlot] = None

    def open(self, shape: MediaShape) -> None:
        w = self.writer
        iw, ih = w.input_size  # the anchor's size where the writer composes a program picture
        if (shape.width, shape.height, shape.fps, shape.sample_rate) != (iw, ih, w.fps, w.sample_rate):
            raise ValueError(f"slot media {shape.width}x{shape.height} at {shape.fps} fps, {shape.sample_rate} Hz do not "
                             f"match the channel's {iw}x{ih} at {w.fps} fps, {w.sample_rate} Hz")
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


def checked_audio(samples: np.ndarray, what: str) -> np.ndarray:
    """A 1-D float32 mono array of finite samples in [-1, 1], or a ValueError naming ``what``."""
    if not isinstance(samples, np.ndarray) or samples.dtype != np.float32 or samples.ndim != 1:
        got = f"{samples.dtype} array of shape {samples.shape}" if isinstance(samples, np.ndarray) else type(samples).__name__
        raise ValueError(f"{what}: expected a 1-D float32 mono array, got {got}")
    if not np.all(np.isfinite(samples)):
        raise ValueError(f"{what}: holds NaN/infinite samples")
    peak = float(np.max(np.abs(samples))) if samples.size else 0.0
    if peak > 1.0:
        raise ValueError(f"{what} peaks at {peak:.3f}, outside [-1, 1]: normalise or limit it first")
    return samples
