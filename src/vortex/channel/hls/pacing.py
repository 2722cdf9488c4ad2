"""Hand media to the channel's writer with the wall clock: at most ``lead_sec`` ahead of air time.

A realtime channel used to append a made slot whole, one segment before its air time, so the
published stream ran up to a segment ahead of the clock and nothing could cut in before that.
The writer now publishes each part as soon as it is encoded, so the appender hands over every
frame only ``lead_sec`` (one part, 0.5 s) before its air time: published media stay within about
a part of the wall clock, and a live insert can take over at the next frame not yet handed over.
The writer's encode and publish take milliseconds a frame (benchmarks/bench_hls.py), well inside
the lead.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timedelta, timezone

import numpy as np

from .writer import HlsChannelWriter


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


class WallClockPacer:
    """Wraps a slot's frames so each one reaches ``writer`` ``lead_sec`` before its air time.

    Used as ``writer.append_mp4(path, pace=pacer)`` or ``writer.append_slot(pacer(frames), wave)``.
    When ``stop`` is set the frames end there: the writer fits the slot's audio to the frames it
    got, and the stream stays consistent, merely shorter.
    """

    def __init__(self, writer: HlsChannelWriter, lead_sec: float, stop: threading.Event,
                 clock: Callable[[], datetime] = _utc_now) -> None:
        if lead_sec < 0:
            raise ValueError(f"lead_sec must be >= 0, got {lead_sec}")
        self.writer, self.lead, self.stop, self.clock = writer, timedelta(seconds=lead_sec), stop, clock

    def __call__(self, frames: Iterable[np.ndarray]) -> _Paced:
        # A known length stays known: the writer checks it against the audio before encoding.
        return _PacedSized(self, frames) if hasattr(frames, "__len__") else _Paced(self, frames)

    def wait_for(self, frame: int) -> bool:
        """Block until frame ``frame`` may be handed over; False if stopped first (or already).

        ``stop`` may be the run's stop or a cut of this one slot (a live insert taking over at the
        first frame not yet handed over: ``writer.frames_appended``, airing at
        ``writer.air_time_at(writer.frames_appended)``)."""
        if self.stop.is_set():
            return False
        due = self.writer.air_time_at(frame) - self.lead
        wait = (due - self.clock()).total_seconds()
        return wait <= 0 or not self.stop.wait(wait)


class _Paced:
    def __init__(self, pacer: WallClockPacer, frames: Iterable[np.ndarray]) -> None:
        self._pacer, self._frames = pacer, frames

    def __iter__(self) -> Iterator[np.ndarray]:
        for frame in self._frames:
            if not self._pacer.wait_for(self._pacer.writer.frames_appended):
                return
            yield frame


class _PacedSized(_Paced):
    def __len__(self) -> int:
        return len(self._frames)
