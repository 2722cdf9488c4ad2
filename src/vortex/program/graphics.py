"""The program's graphics, each rendered ONCE as RGBA with Pillow in a real installed font: the set
(background), the lower third, the logo, the AI label and the ticker's strip. compose.py blends
them per frame with numpy; nothing here runs per frame.

Layout at W x H (s = H / 720, so 1280x720 is the reference):

    the anchor     a square of round(512 s) (exactly the engine's 512² at 720p: no scaling), its
                   centre at 60% of the width, its top at 6% of the height, with a soft edge
    lower third    from 5% of the width, 74-88% of the height: the name (bold, on white) over the
                   title (on the accent colour); a live insert shows a red BREAKING tab before it
    ticker         a band over the bottom 7.5%: a static tab, then the headlines crawling
    logo           in ``logo_corner``, at most 9% of the height and 18% of the width
    AI label       "AI-generated" in a top corner the logo does not take (EU AI Act Art. 50(4))

``check_program`` does every check that needs the pictures (the files decode, the text fits, the
font exists), so a channel definition or a config is refused up front.
"""

from __future__ import annotations

import functools
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from ..errors import RecipeError
from ..inputs import open_image
from .spec import LowerThird, ProgramError, ProgramSpec

STUDIO = Path(__file__).resolve().parents[1] / "data" / "program" / "studio.png"
WHITE, INK = (248, 248, 250, 255), (16, 20, 32, 255)
ACCENT, BREAKING_RED = (18, 72, 150, 255), (196, 18, 28, 255)
BAND, TAB = (8, 14, 30, 255), (196, 18, 28, 255)
TICKER_TAB = "NEWS"
SEPARATOR = "   \u2022   "  # between headlines
AI_LABEL = "AI-generated"


@dataclass(frozen=True)
class Box:
    x: int
    y: int
    w: int
    h: int


@dataclass(frozen=True)
class Layout:
    width: int
    height: int
    anchor: Box
    lower_third: Box  # where the bar may go; its width is the most the text may take
    band: Box  # the ticker band (full width)
    crawl_x: int  # where the crawl starts in the band (after the tab)
    speed: int  # pixels per frame, even (the chroma planes move by half)
    rule: int  # the band's top rule, even rows (the crawl below it starts on a chroma row)

    @property
    def scale(self) -> float:
        return self.height / 720.0


def layout(spec: ProgramSpec) -> Layout:
    w, h = spec.size
    s = h / 720.0
    side = _even(512 * s)
    anchor = Box(_even(0.60 * w - side / 2), _even(0.06 * h), side, side)
    band_h = _even(0.075 * h)
    band = Box(0, h - band_h, w, band_h)
    lt = Box(_even(0.05 * w), _even(0.74 * h), _even(0.62 * w), _even(0.14 * h))
    # 4 px a frame at 1280 wide (96 px/s at 24 fps: a headline of 40 characters passes in ~6 s)
    speed = 2 * max(1, round(w / 640))
    return Layout(w, h, anchor, lt, band, crawl_x=_even(0.11 * w), speed=speed, rule=max(2, _even(2 * s)))


def _even(v: float) -> int:
    return int(round(v / 2.0)) * 2


# -- fonts -----------------------------------------------------------------------------------------

def installed_families() -> list[str]:
    try:
        out = subprocess.run(["fc-list", ":", "family"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return sorted({f.strip() for line in out.splitlines() for f in line.split(",") if f.strip()})


@functools.lru_cache(maxsize=32)
def font_file(family: str, bold: bool = False) -> Path:
    """The file of ``family`` (bold or regular) as fontconfig resolves it; ProgramError on ``font``
    when fontconfig knows no such family (it would silently substitute another)."""
    pattern = f"{family}:bold" if bold else f"{family}:regular"
    try:
        out = subprocess.run(["fc-match", "-f", "%{family}|%{file}", pattern], capture_output=True, text=True,
                             timeout=10).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise ProgramError("font", f"cannot ask fontconfig (fc-match) for {family!r}: {exc}") from None
    families, _, file = out.partition("|")
    if family.lower() not in (f.strip().lower() for f in families.split(",")) or not Path(file).is_file():
        shown = ", ".join(installed_families()[:30]) or "none (install fonts-dejavu-core)"
        raise ProgramError("font", f"{family!r} is not an installed font family; installed: {shown}")
    return Path(file)


def font(family: str, size: int, bold: bool = False) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(font_file(family, bold)), size=max(6, int(size)))


def _text_width(f: ImageFont.FreeTypeFont, text: str) -> int:
    return int(np.ceil(f.getlength(text)))


# -- the layers ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Layer:
    """An RGBA picture placed at (x, y) of the program."""

    x: int
    y: int
    rgba: np.ndarray  # (h, w, 4) uint8, not premultiplied


def background(spec: ProgramSpec) -> np.ndarray:
    """The set as (H, W, 3) uint8: the image scaled to cover the size and centre-cropped, a colour,
    or the shipped studio."""
    w, h = spec.size
    bg = spec.background
    if isinstance(bg, str) and bg.startswith("#"):
        rgb = tuple(int(bg[k:k + 2], 16) for k in (1, 3, 5))
        return np.broadcast_to(np.array(rgb, np.uint8), (h, w, 3)).copy()
    path, field = (STUDIO, "background (the shipped studio set)") if bg is None else (Path(bg), "background")
    im = _image(path, field).convert("RGB")
    k = max(w / im.width, h / im.height)
    sw, sh = max(w, round(im.width * k)), max(h, round(im.height * k))
    im = im.resize((sw, sh), Image.Resampling.LANCZOS)
    left, top = (sw - w) // 2, (sh - h) // 2
    return np.asarray(im.crop((left, top, left + w, top + h)), np.uint8).copy()


def _image(path: Path, field: str) -> Image.Image:
    try:
        im = open_image(path, field)
        im.load()
        return im
    except RecipeError as exc:
        raise ProgramError(field, exc.problem) from None
    except (OSError, ValueError) as exc:  # truncated or corrupt pixel data
        raise ProgramError(field, f"cannot decode image '{path}': {exc}") from None


def lower_third(spec: ProgramSpec, lt: LowerThird, *, breaking: bool = False,
                where: str = "lower_third") -> Layer:
    """The name over the title; ProgramError on ``<where>.name`` / ``.title`` when one is too wide."""
    lay = layout(spec)
    s, box = lay.scale, lay.lower_third
    name_f, title_f = font(spec.font, 34 * s, bold=True), font(spec.font, 24 * s)
    tag_f = font(spec.font, 24 * s, bold=True)
    pad = round(14 * s)
    tag = "BREAKING" if breaking else ""
    tag_w = _text_width(tag_f, tag) + 2 * pad if tag else 0
    room = box.w - tag_w - 2 * pad
    for field, text, f in (("name", lt.name, name_f), ("title", lt.title, title_f)):
        wide = _text_width(f, text)
        if wide > room:
            per_char = wide / max(1, len(text))
            raise ProgramError(f"{where}.{field}", f"{text!r} is {wide} px wide in {spec.font} at {f.size} px; at "
                               f"most {room} px fit at {lay.width}x{lay.height} (about {int(room / per_char)} "
                               f"characters{' beside the BREAKING tab' if tag else ''})")
    name_h, title_h = round(54 * s), round(38 * s) if lt.title else 0
    bar_w = max(_text_width(name_f, lt.name), _text_width(title_f, lt.title)) + 2 * pad
    im = Image.new("RGBA", (tag_w + bar_w, name_h + title_h), (0, 0, 0, 0))
    d = ImageDraw.Draw(im)
    if tag:
        d.rectangle((0, 0, tag_w - 1, name_h + title_h - 1), fill=BREAKING_RED)
        d.text((tag_w / 2, (name_h + title_h) / 2), tag, font=tag_f, fill=WHITE, anchor="mm")
    d.rectangle((tag_w, 0, tag_w + bar_w - 1, name_h - 1), fill=WHITE)
    d.text((tag_w + pad, name_h / 2), lt.name, font=name_f, fill=INK, anchor="lm")
    if lt.title:
        d.rectangle((tag_w, name_h, tag_w + bar_w - 1, name_h + title_h - 1),
                    fill=BREAKING_RED if breaking else ACCENT)
        d.text((tag_w + pad, name_h + title_h / 2), lt.title, font=title_f, fill=WHITE, anchor="lm")
    return Layer(box.x, box.y + box.h - im.height, _with_shadow(im, round(6 * s)))


def _with_shadow(im: Image.Image, r: int) -> np.ndarray:
    """The picture over a soft drop shadow (the same size: the shadow shows on the right and below)."""
    a = np.asarray(im, np.uint8)
    if r <= 0:
        return a.copy()
    shadow = Image.new("L", im.size, 0)
    shadow.paste(Image.fromarray(a[..., 3]).crop((0, 0, im.width - r, im.height - r)), (r, r))
    shadow = np.asarray(shadow.filter(ImageFilter.GaussianBlur(r)), np.float32) * 0.45
    out = np.zeros_like(a)
    out[..., 3] = shadow.astype(np.uint8)
    return _over(a, out)


def _over(top: np.ndarray, under: np.ndarray) -> np.ndarray:
    """Porter-Duff "over" of two RGBA arrays of one size."""
    return np.asarray(Image.alpha_composite(Image.fromarray(under, "RGBA"), Image.fromarray(top, "RGBA")))


def logo(spec: ProgramSpec) -> Optional[Layer]:
    if spec.logo is None:
        return None
    lay = layout(spec)
    im = _image(Path(spec.logo), "logo").convert("RGBA")
    k = min(0.09 * lay.height / im.height, 0.18 * lay.width / im.width)
    im = im.resize((max(1, round(im.width * k)), max(1, round(im.height * k))), Image.Resampling.LANCZOS)
    x, y = _corner(lay, spec.logo_corner, im.width, im.height)
    return Layer(x, y, np.asarray(im, np.uint8).copy())


def _corner(lay: Layout, corner: str, w: int, h: int) -> tuple[int, int]:
    m = round(0.03 * lay.height)
    x = m if corner.endswith("left") else lay.width - m - w
    y = m if corner.startswith("top") else lay.band.y - m - h  # never over the ticker
    return x, y


def ai_label(spec: ProgramSpec) -> Optional[Layer]:
    if not spec.ai_label:
        return None
    lay = layout(spec)
    s = lay.scale
    f = font(spec.font, 20 * s, bold=True)
    pad_x, pad_y = round(12 * s), round(6 * s)
    tw, th = _text_width(f, AI_LABEL), round(20 * s)
    im = Image.new("RGBA", (tw + 2 * pad_x, th + 2 * pad_y), (0, 0, 0, 0))
    d = ImageDraw.Draw(im)
    d.rounded_rectangle((0, 0, im.width - 1, im.height - 1), radius=round(8 * s), fill=(0, 0, 0, 150))
    d.text((im.width / 2, im.height / 2), AI_LABEL, font=f, fill=WHITE, anchor="mm")
    corner = "top-left" if spec.logo is None or spec.logo_corner != "top-left" else "top-right"
    x, y = _corner(lay, corner, im.width, im.height)
    return Layer(x, y, np.asarray(im, np.uint8).copy())


def ticker_band(spec: ProgramSpec) -> Optional[Layer]:
    """The band's static part: its colour, a top rule and the tab."""
    if not spec.ticker:
        return None
    lay = layout(spec)
    b = lay.band
    im = Image.new("RGBA", (b.w, b.h), BAND)
    d = ImageDraw.Draw(im)
    d.rectangle((0, 0, b.w, lay.rule - 1), fill=BREAKING_RED)
    d.rectangle((0, 0, lay.crawl_x - 1, b.h - 1), fill=TAB)
    d.text((lay.crawl_x / 2, b.h / 2), TICKER_TAB, font=font(spec.font, 24 * lay.scale, bold=True), fill=WHITE,
           anchor="mm")
    return Layer(b.x, b.y, np.asarray(im, np.uint8).copy())


def ticker_strip(spec: ProgramSpec) -> Optional[np.ndarray]:
    """The headlines as one opaque RGB strip of the band's height (the band colour behind), one
    period long and of even width, repeated until a period covers the crawl window; compose.py
    shows the window starting at (frame x speed) mod period. None without headlines."""
    if not spec.ticker:
        return None
    lay = layout(spec)
    b = lay.band
    f = font(spec.font, 26 * lay.scale)
    text = SEPARATOR.join(spec.ticker) + SEPARATOR
    window = b.w - lay.crawl_x
    reps = max(1, int(np.ceil(window / max(1, _text_width(f, text)))))
    text = text * reps
    period = _even(_text_width(f, text) + 1)
    im = Image.new("RGB", (period, b.h - lay.rule), BAND[:3])
    ImageDraw.Draw(im).text((0, im.height / 2), text, font=f, fill=WHITE[:3], anchor="lm")
    return np.asarray(im, np.uint8).copy()


def anchor_mask(spec: ProgramSpec) -> np.ndarray:
    """(side, side) float32 in [0, 1]: 1 inside, falling off smoothly over ~5% of the side at the edges."""
    side = layout(spec).anchor.w
    feather = max(2.0, 0.05 * side)
    d = np.minimum(np.arange(side), np.arange(side)[::-1]).astype(np.float32) + 0.5
    ramp = np.clip(d / feather, 0.0, 1.0)
    ramp = ramp * ramp * (3 - 2 * ramp)  # smoothstep
    return np.outer(ramp, ramp).astype(np.float32)


@dataclass(frozen=True)
class Graphics:
    """Everything the compositor needs, rendered once for one text (lower third, ticker)."""

    layout: Layout
    background: np.ndarray  # (H, W, 3)
    overlays: tuple[Layer, ...]  # bottom to top: band, lower third, logo, AI label
    strip: Optional[np.ndarray]  # the ticker's crawl, or None
    mask: np.ndarray  # the anchor's soft edge


def render(spec: ProgramSpec, *, lower: Optional[LowerThird] = None, breaking: bool = False,
           bg: Optional[np.ndarray] = None, logo_layer: Optional[Layer] = None, strip: bool = True) -> Graphics:
    """The layers of ``spec`` with ``lower`` (else the program's lower third); a live insert
    (``breaking``) shows BREAKING with its own lower third, or "Breaking news" when it has none.
    ``bg``/``logo_layer`` reuse ones already decoded (a text change does not read files again);
    ``strip=False`` leaves the ticker's strip out (the compositor keeps its own per ticker)."""
    lt = lower or spec.lower_third
    if breaking and lt is None:
        lt = LowerThird("Breaking news")
    layers = [ticker_band(spec), lower_third(spec, lt, breaking=breaking) if lt else None,
              logo_layer if logo_layer is not None else logo(spec), ai_label(spec)]
    return Graphics(layout(spec), background(spec) if bg is None else bg, tuple(x for x in layers if x is not None),
                    ticker_strip(spec) if strip else None, anchor_mask(spec))


def check_program(spec: ProgramSpec) -> None:
    """Every check that needs pictures or fonts, before anything airs: the font exists (regular and
    bold), the background and logo decode, the lower third fits (plain and BREAKING). Raises
    ProgramError naming the field."""
    font_file(spec.font)
    font_file(spec.font, bold=True)
    background(spec)
    logo(spec)
    if spec.lower_third is not None:
        lower_third(spec, spec.lower_third)
        lower_third(spec, spec.lower_third, breaking=True)
    ticker_strip(spec)


def check_lower_third(spec: ProgramSpec, lt: Optional[LowerThird], where: str) -> None:
    """A lower third from elsewhere (a recipe's, a PATCH's) fits this program: ProgramError on ``<where>.name``."""
    if lt is not None:
        lower_third(spec, lt, where=where)
        lower_third(spec, lt, breaking=True, where=where)


def slot_lower_third(recipe) -> Optional[LowerThird]:
    """A recipe's ``visual_track.lower_third`` as the program's LowerThird (None when it has none)."""
    lt = getattr(getattr(recipe, "visual_track", None), "lower_third", None)
    return None if lt is None else LowerThird(lt.name.strip(), (lt.title or "").strip())
