"""The program picture per frame: the engine's anchor placed in the set under the graphics, in
yuv420p planes with numpy/OpenCV (graphics.py drew every layer once; nothing is drawn here).

Why YUV: the channel's spool keeps the anchor as yuv420p (hls/spool.py) and x264 takes yuv420p,
so compositing in the planes costs no colour conversion of the program-sized frame (swscale's
RGB->YUV at 1280x720 took 7.2 ms CPU against 1.2 ms at 512², and the whole composite from a spooled
frame takes 0.7 ms: benchmarks/bench_program.py). Alpha blending is linear and BT.709's
RGB->YUV is affine, so blending the planes equals blending RGB (chroma alpha: the 2x2 mean).

Only two regions change from frame to frame; the rest is a plate made once (the set with every
layer on it) kept in the output buffer:
- the anchor box: out = G * anchor + K, with K = O_p + (1-A)(1-m) set and G = (1-A) m precomputed
  (m the anchor's soft edge, A and O_p the alpha and premultiplied colour of the layers over it,
  e.g. the lower third), one cv2.blendLinear per plane;
- the ticker's crawl window: a copy of the pre-rendered strip from x = (frame x speed) mod period,
  where frame is the GLOBAL frame index of the stream. The crawl's position is a function of the
  frame index alone, so it moves the same number of pixels every frame across slot boundaries,
  inserts, fillers and restarts (a resumed stream continues its frame index).

``ProgramCompositor.begin_slot`` sets the slot's lower third (a recipe's wins) and the BREAKING
variant for a live insert; ``update`` (PATCH .../program) swaps the ticker and lower third from
the next frame. Plates are cached per (lower third, breaking). An ad break (``full_frame``) is
the slate over the whole picture: no set, no graphics (see begin_slot).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Optional, Union

import av
import cv2
import numpy as np
from av.video.reformatter import ColorRange, Colorspace
from PIL import Image

from ..media import SWS_THREADS, YUV_INTERPOLATION
from . import graphics
from .spec import LowerThird, ProgramSpec

Frame = Union[np.ndarray, av.VideoFrame]
# x264's preset for a program picture (the channel's CRF 25 stays). At 1280x720 on the 2-core box
# (benchmarks/bench_program.py, an 8 s slot, CPU): veryfast 4.49 ms/frame 466 kbps PSNR-Y 49.1 dB,
# superfast 3.34 ms/frame 496 kbps 49.3 dB, ultrafast 2.17 ms 767 kbps; 512² veryfast was 1.30 ms.
# superfast: a quarter less CPU for 6% more bits at the same quality (docs/program.md).
PROGRAM_PRESET = "superfast"
MAX_PLATES = 8  # plates kept per compositor: (lower third, breaking) variants in use


def rgb_to_yuv420p(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) RGB as the stream's yuv420p planes (BT.709, limited range), (H*3/2, W) uint8."""
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
    return frame.reformat(format="yuv420p", dst_colorspace=Colorspace.ITU709, dst_color_range=ColorRange.MPEG,
                          interpolation=YUV_INTERPOLATION, threads=SWS_THREADS).to_ndarray()


def planes(buf: np.ndarray, w: int, h: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Views (Y, U, V) into a (H*3/2, W) yuv420p buffer."""
    q = h // 4
    return buf[:h], buf[h:h + q].reshape(h // 2, w // 2), buf[h + q:h + 2 * q].reshape(h // 2, w // 2)


def _half(a: np.ndarray) -> np.ndarray:
    return a.reshape(a.shape[0] // 2, 2, a.shape[1] // 2, 2).mean(axis=(1, 3))


@dataclass
class _Plate:
    """One text's precomputed picture: the output buffer (the plate), the anchor blend, the strip."""

    buf: np.ndarray
    views: tuple[np.ndarray, np.ndarray, np.ndarray]
    kimg: tuple[np.ndarray, ...]  # per plane: K / (1 - G), uint8 (cv2.blendLinear's second picture)
    g: tuple[np.ndarray, ...]  # per plane: G, float32
    g_inv: tuple[np.ndarray, ...]  # 1 - G
    strip: Optional[tuple[np.ndarray, ...]]  # per plane: the period plus one window (no wrap per frame)
    period: int


class ProgramCompositor:
    """``compositor(anchor_frame, global_index)`` -> the program frame (yuv420p ``av.VideoFrame``)."""

    def __init__(self, spec: ProgramSpec, anchor_size: tuple[int, int] = (512, 512)):
        graphics.check_program(spec)
        self.anchor_size = anchor_size
        self.lay = graphics.layout(spec)
        self.width, self.height = spec.size
        self._bg = graphics.background(spec)  # decoded once; a text change reuses them
        self._bg_yuv = rgb_to_yuv420p(self._bg)
        self._logo = graphics.logo(spec)
        self._lock = threading.Lock()
        self._spec = spec
        self._slot: tuple[Optional[LowerThird], bool] = (None, False)
        self._cues: tuple = ()  # `captions: burn`: the slot's cues, seconds from frame _cue_origin
        self._cue_origin, self._fps = 0, 24
        self._keep = None  # a live insert's verdict per cue (LiveInsert.caption_verdict): False is not burned
        self._full = False  # an ad break: the frame is the whole picture
        self._still: Optional[tuple[np.ndarray, np.ndarray]] = None  # (a still slate, its yuv420p), made once
        self._cue_planes: dict[tuple, tuple] = {}  # (cue text, over a lower third) -> its planes, x, y; made once
        self._cache: dict[tuple[Optional[LowerThird], bool], _Plate] = {}
        self._strip: Optional[tuple] = None  # (ticker, planes, period) of the current ticker
        self._plate = self._plate_for(spec, *self._slot)

    @property
    def spec(self) -> ProgramSpec:
        return self._spec

    # -- control (any thread) ----------------------------------------------------------------------
    def begin_slot(self, *, lower_third: Optional[LowerThird] = None, breaking: bool = False,
                   cues: tuple = (), first_frame: int = 0, fps: int = 24, keep: Any = None,
                   full_frame: bool = False) -> None:
        """The next frames belong to a slot with this lower third (None: the program's) and, for a live
        insert, the BREAKING variant; with `captions: burn`, `cues` (slot seconds, vortex.contracts.captions)
        are drawn into the picture, the slot starting at global frame `first_frame`, each one unless
        `keep(cue)` says False (a live insert's cue whose chunk aired as the card).

        `full_frame` (an ad break): each frame is the whole picture (RGB at the program's size, else
        scaled to it): no set, lower third, ticker, logo or AI label. The slate is not AI-made, and a
        break is what ad insertion replaces, so it stays clean, as a playout server's break would."""
        with self._lock:
            burn = self._spec.captions == "burn" and not full_frame
            self._cues, self._cue_origin, self._fps = (tuple(cues) if burn else ()), first_frame, fps
            self._keep, self._full = keep, full_frame
            if len(self._cue_planes) > 64:  # a slot's cues are a handful; keep the cache small
                self._cue_planes.clear()
            self._slot = (lower_third, breaking)
            self._plate = self._plate_for(self._spec, lower_third, breaking)

    def update(self, *, ticker: Any = ..., lower_third: Any = ...) -> ProgramSpec:
        """New ticker and/or program lower third (spec.with_text's values), from the next frame made.
        Raises ProgramError (nothing changes) when a value is bad or does not fit."""
        spec = self._spec.with_text(ticker=ticker, lower_third=lower_third)
        graphics.check_lower_third(spec, spec.lower_third, "lower_third")
        with self._lock:
            old_cache, self._cache = self._cache, {}
            try:
                plate = self._plate_for(spec, *self._slot)
            except BaseException:
                self._cache = old_cache
                raise
            self._spec, self._plate = spec, plate  # the next __call__ reads the new plate
        return spec

    # -- per frame (the channel's appender thread) ------------------------------------------------
    def __call__(self, frame: Frame, index: int) -> av.VideoFrame:
        if self._full:
            return self._whole(frame)
        p = self._plate
        self._anchor(p, frame)
        if p.strip is not None:
            self._crawl(p, index)
        cue = self._cue_on_screen(index) if self._cues else None
        if cue is not None and self._keep is not None and self._keep(cue) is False:
            cue = None
        if cue is None:
            return av.VideoFrame.from_ndarray(p.buf, format="yuv420p")
        return av.VideoFrame.from_ndarray(self._burn(p.buf.copy(), cue), format="yuv420p")  # the plate stays clean

    def _cue_on_screen(self, index: int):
        from .captions import cue_at

        return cue_at(self._cues, (index - self._cue_origin) / self._fps)

    def _whole(self, frame: Frame) -> av.VideoFrame:
        """An ad break's frame as the whole picture; a still (the same array every frame, as the break's
        FillerFrames yields it) is converted once (RGB->yuv420p at 720p: 7 ms a frame otherwise)."""
        if isinstance(frame, av.VideoFrame):
            return frame.reformat(width=self.width, height=self.height, format="yuv420p", threads=SWS_THREADS)
        if self._still is not None and self._still[0] is frame:
            return av.VideoFrame.from_ndarray(self._still[1], format="yuv420p")
        rgb = frame
        if rgb.shape[:2] != (self.height, self.width):
            rgb = cv2.resize(rgb, (self.width, self.height), interpolation=cv2.INTER_AREA)
        self._still = (frame, rgb_to_yuv420p(rgb))
        return av.VideoFrame.from_ndarray(self._still[1], format="yuv420p")

    def _burn(self, buf: np.ndarray, cue) -> np.ndarray:
        """The cue's box blended into a copy of the frame (yuv420p), its image rendered once per text.
        Over a lower third the box moves up to sit just above it: captions never hide the graphics."""
        lower = self._slot[1] or (self._slot[0] or self._spec.lower_third) is not None
        key = (cue.text, lower)
        cached = self._cue_planes.get(key)
        if cached is None:
            from .captions import cue_image

            img = cue_image(cue.text, self.width, self.height, str(graphics.font_file(self._spec.font)))
            # 4:2:0 wants even sides and corners; PyAV's (H*3/2, W) layout wants H a multiple of 4
            h, w = img.rgba.shape[0] // 4 * 4, img.rgba.shape[1] // 2 * 2
            rgba = img.rgba[:h, :w]
            yuv = rgb_to_yuv420p(np.ascontiguousarray(rgba[..., :3]))
            alpha = rgba[..., 3].astype(np.float32) / 255.0
            top = min(img.y, self.lay.lower_third.y - h - self.height // 90) if lower else img.y  # 8 px at 720
            cached = self._cue_planes[key] = (*[c.astype(np.float32) for c in planes(yuv, w, h)], alpha,
                                              _half(alpha), img.x // 2 * 2, max(0, top) // 2 * 2)
        cy, cu, cv, alpha, alpha2, x, y = cached
        Y, U, V = planes(buf, self.width, self.height)
        for dst, src, a, (px, py) in ((Y, cy, alpha, (x, y)), (U, cu, alpha2, (x // 2, y // 2)),
                                      (V, cv, alpha2, (x // 2, y // 2))):
            region = dst[py:py + src.shape[0], px:px + src.shape[1]]
            region[...] = (src * a + region * (1.0 - a) + 0.5).astype(np.uint8)
        return buf

    def compose_rgb(self, frame: Frame, index: int) -> np.ndarray:
        """The same program frame as (H, W, 3) RGB (for a writer that takes RGB)."""
        yuv = self(frame, index)
        return yuv.reformat(format="rgb24", src_colorspace=Colorspace.ITU709,
                            src_color_range=ColorRange.MPEG, threads=SWS_THREADS).to_ndarray()

    def _anchor(self, p: _Plate, frame: Frame) -> None:
        a = self._anchor_planes(frame)
        box = self.lay.anchor
        for k, (view, src) in enumerate(zip(p.views, a)):
            f = 1 if k == 0 else 2
            y, x, s = box.y // f, box.x // f, box.w // f
            if src.shape != (s, s):
                src = cv2.resize(src, (s, s), interpolation=cv2.INTER_AREA if src.shape[0] > s else cv2.INTER_LINEAR)
            view[y:y + s, x:x + s] = cv2.blendLinear(src, p.kimg[k], p.g[k], p.g_inv[k])

    def _anchor_planes(self, frame: Frame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if isinstance(frame, av.VideoFrame):
            if frame.format.name != "yuv420p":
                frame = frame.reformat(format="yuv420p", threads=SWS_THREADS)
            w, h = frame.width, frame.height
            buf = frame.to_ndarray()
        else:
            if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
                got = f"{frame.dtype} {frame.shape}" if isinstance(frame, np.ndarray) else type(frame).__name__
                raise ValueError(f"the anchor frame must be (H, W, 3) uint8 RGB or a yuv420p av.VideoFrame, got {got}")
            h, w = frame.shape[:2]
            buf = rgb_to_yuv420p(frame)
        if w == h:
            return planes(buf, w, h)
        out = []  # the engine's picture is square; a frame of another shape is centre-cropped
        for pl, f in zip(planes(buf, w, h), (1, 2, 2)):
            side = min(w, h) // f
            top, left = (pl.shape[0] - side) // 2, (pl.shape[1] - side) // 2
            out.append(np.ascontiguousarray(pl[top:top + side, left:left + side]))
        return tuple(out)

    def _crawl(self, p: _Plate, index: int) -> None:
        lay = self.lay
        x0 = (index * lay.speed) % p.period  # even: speed and period are
        top, window = lay.band.y + lay.rule, lay.width - lay.crawl_x
        for k, (view, strip) in enumerate(zip(p.views, p.strip)):
            f = 1 if k == 0 else 2
            view[top // f:top // f + strip.shape[0], lay.crawl_x // f:] = strip[:, x0 // f:(x0 + window) // f]

    # -- building a plate ---------------------------------------------------------------------------
    def _plate_for(self, spec: ProgramSpec, lower: Optional[LowerThird], breaking: bool) -> _Plate:
        key = (lower, breaking)
        plate = self._cache.pop(key, None)
        if plate is None:
            plate = self._build(graphics.render(spec, lower=lower, breaking=breaking, bg=self._bg,
                                                logo_layer=self._logo, strip=False), self._strip_for(spec))
        self._cache[key] = plate  # the most recent last
        while len(self._cache) > MAX_PLATES:  # ~5 MB each at 720p: a schedule of many names stays bounded
            self._cache.pop(next(iter(self._cache)))
        return plate

    def _strip_for(self, spec: ProgramSpec) -> tuple[Optional[tuple[np.ndarray, ...]], int]:
        """The ticker's strip planes, made once per ticker (50 long headlines at 1080p take ~1 s)."""
        if self._strip is None or self._strip[0] != spec.ticker:
            self._strip = (spec.ticker, *self._strip_planes(graphics.ticker_strip(spec)))
        return self._strip[1], self._strip[2]

    def _strip_planes(self, strip: Optional[np.ndarray]) -> tuple[Optional[tuple[np.ndarray, ...]], int]:
        if strip is None:
            return None, 0
        period, window = strip.shape[1], self.width - self.lay.crawl_x
        reps = 1 + int(np.ceil(window / period))
        ext = np.tile(strip, (1, reps, 1))[:, :period + window]
        ext = ext[:, :ext.shape[1] // 2 * 2]
        return tuple(np.ascontiguousarray(pl) for pl in planes(rgb_to_yuv420p(ext), ext.shape[1], ext.shape[0])), period

    def _build(self, g: graphics.Graphics, strip: tuple[Optional[tuple[np.ndarray, ...]], int]) -> _Plate:
        w, h, box = self.width, self.height, self.lay.anchor
        over = Image.new("RGBA", (w, h), (0, 0, 0, 0))
        for layer in g.overlays:
            over.alpha_composite(Image.fromarray(layer.rgba, "RGBA"), (layer.x, layer.y))
        over_a = np.asarray(over, np.uint8)
        plate_rgb = Image.fromarray(g.background).convert("RGBA")
        plate_rgb.alpha_composite(over)
        buf = rgb_to_yuv420p(np.asarray(plate_rgb.convert("RGB")))
        # The anchor box: K = O_p + (1-A)(1-m) set, G = (1-A) m, per plane (chroma at half size).
        crop = over_a[box.y:box.y + box.h, box.x:box.x + box.w]
        alpha = crop[..., 3].astype(np.float32) / 255.0
        o_yuv = planes(rgb_to_yuv420p(crop[..., :3]), box.w, box.h)
        bg_yuv = planes(self._bg_yuv, w, h)
        kimg, gs, ginv = [], [], []
        for k in range(3):
            f = 1 if k == 0 else 2
            a_k = alpha if f == 1 else _half(alpha)
            m_k = g.mask if f == 1 else _half(g.mask)
            y, x, s = box.y // f, box.x // f, box.w // f
            under = bg_yuv[k][y:y + s, x:x + s].astype(np.float32)
            big_k = o_yuv[k].astype(np.float32) * a_k + (1 - a_k) * (1 - m_k) * under
            g_k = ((1 - a_k) * m_k).astype(np.float32)
            inv = (1.0 - g_k).astype(np.float32)
            kimg.append(np.clip(np.where(inv > 1e-4, big_k / np.maximum(inv, 1e-4), 0) + 0.5, 0, 255).astype(np.uint8))
            gs.append(g_k)
            ginv.append(inv)
        views = planes(buf, w, h)
        return _Plate(buf, views, tuple(kimg), tuple(gs), tuple(ginv), strip[0], strip[1])

