"""The `program` block: what a channel (or a slot's config) airs around the engine's picture and sound.

```yaml
program:
  size: 1280x720                 # even, at most 1920x1080; default for a channel: 1280x720
  background: studio.png         # an image (relative to the file) or a colour (#RRGGBB); default: the shipped set
  lower_third: {name: "Ada Reyes", title: "Evening News"}   # a recipe's visual_track.lower_third wins
  ticker: ["Comet seen over the harbor", "Markets close higher"]   # crawls; PATCH .../program replaces it
  logo: logo.png                 # PNG with alpha, in a corner (logo_corner)
  ai_label: true                 # "AI-generated" on screen (EU AI Act Art. 50(4)); on by default
  captions: true                 # true | false | burn (also drawn into the picture)
  font: DejaVu Sans              # a font family installed on the machine (fc-list)
  loudness: {target_lufs: -23, true_peak_dbtp: -1}
```

`parse_program` checks types and ranges here (each problem a `ProgramError(field, problem)`,
which the channel definition reports as `program.<field>` and a config as a config field); the
checks that need the pictures (a file that must decode, a lower third that must fit the width, a
font that must exist) are the graphics module's, called from the same place.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, Optional, Union

from .. import config
from ..errors import VortexError

MAX_WIDTH, MAX_HEIGHT = 1920, 1080  # 1080p: what distribution takes; more is not a broadcast size
MIN_WIDTH, MIN_HEIGHT = 320, 180  # below this no text is legible
DEFAULT_SIZE = (1280, 720)
LUFS_RANGE, TRUE_PEAK_RANGE = config.LUFS_RANGE, config.TRUE_PEAK_RANGE  # one range for a config and a channel
MAX_TICKER_ITEMS, MAX_TEXT = 50, 200
CORNERS = ("top-left", "top-right", "bottom-left", "bottom-right")
Captions = Union[bool, Literal["burn"]]
_COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$")
KEYS = ("size", "background", "lower_third", "ticker", "logo", "logo_corner", "ai_label", "captions", "font",
        "loudness")


class ProgramError(VortexError):
    """A `program` field is of the wrong type or out of range; `field` is relative to the block."""

    def __init__(self, field: str, problem: str):
        self.field, self.problem = field, problem
        super().__init__(f"program field '{field}': {problem}")


@dataclass(frozen=True)
class Loudness:
    target_lufs: float = -23.0  # EBU R128; ATSC A/85 (the CALM Act): -24
    true_peak_dbtp: float = -1.0


@dataclass(frozen=True)
class LowerThird:
    name: str
    title: str = ""


@dataclass(frozen=True)
class ProgramSpec:
    width: int = DEFAULT_SIZE[0]
    height: int = DEFAULT_SIZE[1]
    background: Union[Path, str, None] = None  # a Path (image), a "#RRGGBB" colour, None: the shipped set
    lower_third: Optional[LowerThird] = None
    ticker: tuple[str, ...] = ()
    logo: Optional[Path] = None
    logo_corner: str = "top-right"
    ai_label: bool = True
    captions: Captions = True
    font: str = "DejaVu Sans"
    loudness: Loudness = field(default_factory=Loudness)

    @property
    def size(self) -> tuple[int, int]:
        return self.width, self.height

    def with_text(self, *, lower_third: Any = ..., ticker: Any = ...) -> "ProgramSpec":
        """The same program with a new lower third and/or ticker (PATCH /v1/channels/{name}/program)."""
        changes: dict[str, Any] = {}
        if lower_third is not ...:
            changes["lower_third"] = _lower_third(lower_third, "lower_third")
        if ticker is not ...:
            changes["ticker"] = _ticker(ticker)
        return replace(self, **changes)


def parse_program(data: Any, base_dir: Optional[Path] = None) -> ProgramSpec:
    """A `ProgramSpec` from the block as written (None or {} gives the defaults)."""
    if data is None:
        return ProgramSpec()
    if not isinstance(data, dict):
        raise ProgramError("(block)", f"must be a mapping with {', '.join(KEYS)}; got {type(data).__name__}")
    unknown = sorted(str(k) for k in data if k not in KEYS)
    if unknown:
        raise ProgramError(unknown[0], f"is not a program field; allowed: {', '.join(KEYS)}")
    base = base_dir or Path(".")
    width, height = _size(data.get("size", DEFAULT_SIZE))
    corner = data.get("logo_corner", "top-right")
    if corner not in CORNERS:
        raise ProgramError("logo_corner", f"must be one of {', '.join(CORNERS)}, got {corner!r}")
    ai_label = data.get("ai_label", True)
    if not isinstance(ai_label, bool):
        raise ProgramError("ai_label", f"must be true or false, got {ai_label!r}")
    captions = data.get("captions", True)
    if not (isinstance(captions, bool) or captions == "burn"):
        raise ProgramError("captions", f"must be true, false or burn, got {captions!r}")
    font = data.get("font", "DejaVu Sans")
    if not isinstance(font, str) or not 0 < len(font) <= 100:
        raise ProgramError("font", f"must be a font family name (fc-list shows them), got {font!r}")
    logo = data.get("logo")
    if logo is not None:
        if not isinstance(logo, str) or not logo:
            raise ProgramError("logo", f"must be the path of a PNG with alpha, got {logo!r}")
        logo = _path(logo, base)
    return ProgramSpec(width=width, height=height, background=_background(data.get("background"), base),
                       lower_third=_lower_third(data.get("lower_third"), "lower_third"),
                       ticker=_ticker(data.get("ticker", [])), logo=logo, logo_corner=corner, ai_label=ai_label,
                       captions=captions, font=font, loudness=parse_loudness(data.get("loudness"), "loudness"))


def parse_loudness(data: Any, where: str = "loudness") -> Loudness:
    if data is None:
        return Loudness()
    if not isinstance(data, dict) or set(data) - {"target_lufs", "true_peak_dbtp"}:
        raise ProgramError(where, f"must be a mapping {{target_lufs, true_peak_dbtp}}, got {data!r}"[:300])
    target = _number(data.get("target_lufs", -23.0), f"{where}.target_lufs", *LUFS_RANGE, "LUFS")
    peak = _number(data.get("true_peak_dbtp", -1.0), f"{where}.true_peak_dbtp", *TRUE_PEAK_RANGE, "dBTP")
    return Loudness(target_lufs=target, true_peak_dbtp=peak)


def _number(value: Any, field: str, low: float, high: float, unit: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise ProgramError(field, f"must be a number from {low:g} to {high:g} {unit}, got {value!r}")
    return float(value)


def _size(value: Any) -> tuple[int, int]:
    if isinstance(value, str):
        m = re.fullmatch(r"\s*(\d{1,5})\s*[xX]\s*(\d{1,5})\s*", value)
        pair = (int(m.group(1)), int(m.group(2))) if m else None
    elif isinstance(value, (list, tuple)) and len(value) == 2 and all(type(v) is int for v in value):
        pair = (value[0], value[1])
    else:
        pair = None
    allowed = f"WIDTHxHEIGHT, both even, from {MIN_WIDTH}x{MIN_HEIGHT} to {MAX_WIDTH}x{MAX_HEIGHT} (e.g. 1280x720)"
    if pair is None:
        raise ProgramError("size", f"must be {allowed}; got {value!r}")
    w, h = pair
    if w % 2 or h % 2:
        raise ProgramError("size", f"{w}x{h} has an odd side (H.264 4:2:0 needs even ones); allowed: {allowed}")
    if not (MIN_WIDTH <= w <= MAX_WIDTH and MIN_HEIGHT <= h <= MAX_HEIGHT):
        raise ProgramError("size", f"{w}x{h} is out of range; allowed: {allowed}")
    return w, h


def _path(value: str, base: Path) -> Path:
    p = Path(value).expanduser()
    return p if p.is_absolute() else base / p


def _background(value: Any, base: Path) -> Union[Path, str, None]:
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise ProgramError("background", f"must be an image path or a colour #RRGGBB, got {value!r}")
    return value.lower() if _COLOUR.match(value) else _path(value, base)


def _text(value: Any, field: str, allow_empty: bool = False) -> str:
    if not isinstance(value, str) or (not value.strip() and not allow_empty) or len(value) > MAX_TEXT:
        raise ProgramError(field, f"must be text of 1 to {MAX_TEXT} characters, got {value!r}"[:300])
    if any(ord(c) < 32 for c in value):
        raise ProgramError(field, "must be one line of text (no control characters or line breaks)")
    return value.strip()


def _lower_third(value: Any, field: str) -> Optional[LowerThird]:
    if value is None:
        return None
    if not isinstance(value, dict) or "name" not in value or set(value) - {"name", "title"}:
        raise ProgramError(field, f"must be a mapping {{name, title}} (title optional), got {value!r}"[:300])
    title = value.get("title", "")
    return LowerThird(_text(value["name"], f"{field}.name"),
                      _text(title, f"{field}.title", allow_empty=True) if title else "")


def _ticker(value: Any) -> tuple[str, ...]:
    if not isinstance(value, (list, tuple)) or len(value) > MAX_TICKER_ITEMS:
        raise ProgramError("ticker", f"must be a list of at most {MAX_TICKER_ITEMS} headlines, got {value!r}"[:300])
    return tuple(_text(item, f"ticker[{i}]") for i, item in enumerate(value))
