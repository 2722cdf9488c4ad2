"""What airs when a slot could not be made in time: exactly the failed slot's duration, never a gap.

- ``last_good``: the channel's last good slot re-aired from its spool (hls/spool.py; a remote
  engine's: its MP4), trimmed to the failed slot's frames, or padded with its last frame frozen and silence.
- ``standby``: a still card (the channel name on a dark background, drawn with PIL) with silence.

A last-good filler's audio is normalised again to the channel's loudness target, whole (it is
known at once: vortex.program.loudness.normalize; its slot was, but a trim moves the figure).
The card's silence stays silence: the gated meter finds nothing to raise.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Optional

import numpy as np

from ..program.loudness import normalize
from .hls.spool import read_mp4_slot, read_spool

BACKGROUND = (18, 22, 34)  # a dark blue-grey: reads as "stand by", not as a black (dead) screen
TEXT = (235, 235, 240)


class FillerFrames:
    """Exactly ``n`` frames, lazily (a 45 s slot at 512² is 850 MB): a known length for the writer."""

    def __init__(self, source: Iterator[np.ndarray], n: int, still: Optional[np.ndarray] = None):
        self._source, self._n, self._last = source, n, still

    def __len__(self) -> int:
        return self._n

    def __iter__(self) -> Iterator[np.ndarray]:
        for _ in range(self._n):
            frame = next(self._source, None)
            if frame is not None:
                self._last = frame
            if self._last is None:
                raise ValueError("the filler source has no frame at all")
            yield self._last


def standby_card(name: str, width: int, height: int) -> np.ndarray:
    from PIL import Image, ImageDraw, ImageFont

    img = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(img)
    big = ImageFont.load_default(size=max(12, width // 12))
    small = ImageFont.load_default(size=max(10, width // 28))
    for text, font, y in ((name, big, 0.42), ("please stand by", small, 0.58)):
        box = draw.textbbox((0, 0), text, font=font)
        draw.text(((width - (box[2] - box[0])) / 2, height * y - (box[3] - box[1]) / 2), text, font=font, fill=TEXT)
    return np.asarray(img, dtype=np.uint8).copy()


def standby(name: str, n_frames: int, width: int, height: int, fps: int, sample_rate: int):
    """(frames, waveform) of the stand-by card for ``n_frames``, with silence."""
    card = standby_card(name, width, height)
    return FillerFrames(iter(()), n_frames, still=card), np.zeros(n_frames * sample_rate // fps, np.float32)


def last_good(media: Path, n_frames: int, fps: int, sample_rate: int, width: int, height: int, loudness=None):
    """(frames, waveform) of a good slot's spool (.yuv) or MP4 fitted to ``n_frames``: trimmed, or frozen + silence."""
    if Path(media).suffix == ".yuv":
        frames, waveform, _ = read_spool(media, width, height)
    else:
        frames, waveform, _ = read_mp4_slot(media, rgb=False)  # decoded frames go to the encoder as they are
    n_samples = n_frames * sample_rate // fps
    if waveform.size >= n_samples:
        waveform = waveform[:n_samples]
    else:
        waveform = np.concatenate([waveform, np.zeros(n_samples - waveform.size, np.float32)])
    if loudness is not None:  # vortex.config.LoudnessConfig
        waveform = normalize(waveform, sample_rate, loudness.target_lufs, loudness.true_peak_dbtp)
    return FillerFrames(frames, n_frames), np.ascontiguousarray(waveform, dtype=np.float32)
