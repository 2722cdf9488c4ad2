"""Ad breaks: a schedule entry ``{break: SECONDS}`` airs a slate for that long, with silence.

```yaml
slate: slate.png          # the channel's slate (optional; default: the stand-by card)
slots:
  - recipe: news.json
  - break: 30             # 0 < SECONDS <= 600
  - {break: 15, slate: sponsor.png}   # this break's own slate
```

A break needs no engine: the appender airs the slate's frames (like the stand-by filler) and marks
the break with SCTE35-OUT / SCTE35-IN (channel/marking.py) so that server-side ad insertion can
replace it. It counts as one schedule item (``--max-slots``). The slate is read when the channel
file is, so an unreadable one is an error naming its field before anything airs. On a channel with
a ``program`` the slate is made at the program's size and airs as the whole picture, with no
graphics (ProgramCompositor.begin_slot(full_frame=True)).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

MAX_BREAK_SEC = 600.0  # ten minutes: longer than any ad pod; more is a mistake in the schedule
BREAK_KEYS = ("break", "slate")


def break_seconds(value: Any, field: str, fail: Callable[[str, str], None]) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= MAX_BREAK_SEC:
        fail(field, f"must be a number of seconds over 0 and at most {MAX_BREAK_SEC:g}, got {value!r}")
    return float(value)


def break_frames(seconds: float, fps: int) -> int:
    """Whole frames (at least one): the break's exact duration is frames / fps."""
    return max(1, round(seconds * fps))


def slate_path(value: Any, base_dir: Path, field: str, fail: Callable[[str, str], None]) -> Optional[Path]:
    """A slate image, relative to the channel file, checked to decode now (None: the stand-by card)."""
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        fail(field, f"must be the path of an image (PNG, JPEG) relative to the channel file, got {value!r}")
    path = Path(value) if Path(value).is_absolute() else base_dir / value
    try:
        from PIL import Image

        with Image.open(path) as img:
            img.load()
    except Exception as exc:  # PIL raises OSError, ValueError, SyntaxError... for what it cannot read
        fail(field, f"cannot read the image '{path}' ({type(exc).__name__}: {exc}); give a PNG or JPEG file")
    return path


def slate_frame(path: Optional[Path], name: str, width: int, height: int) -> np.ndarray:
    """The slate as one (H, W, 3) uint8 frame: the image fitted inside the frame (its aspect kept, on
    the card's background), or the stand-by card."""
    from PIL import Image

    from .filler import BACKGROUND, standby_card

    if path is None:
        return standby_card(name, width, height)
    with Image.open(path) as img:
        img = img.convert("RGB")
        scale = min(width / img.width, height / img.height)
        size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
        fitted = img.resize(size, Image.LANCZOS)
    canvas = Image.new("RGB", (width, height), BACKGROUND)
    canvas.paste(fitted, ((width - size[0]) // 2, (height - size[1]) // 2))
    return np.asarray(canvas, dtype=np.uint8).copy()


def slate(path: Optional[Path], name: str, n_frames: int, width: int, height: int, fps: int, sample_rate: int):
    """(frames, waveform) of a break: the slate for ``n_frames``, with silence."""
    from .filler import FillerFrames

    still = slate_frame(path, name, width, height)
    return FillerFrames(iter(()), n_frames, still=still), np.zeros(n_frames * sample_rate // fps, np.float32)
