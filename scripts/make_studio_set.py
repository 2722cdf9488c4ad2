"""Draws studio.png, the default set of the program picture (`program.background` unset): a dark
newsroom blue with a soft key light behind the anchor, a row of out-of-focus window panels and a
desk edge. Run it to change the set: python scripts/make_studio_set.py (1920x1080;
the program scales it to its size)."""

from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

W, H = 1920, 1080


def studio() -> Image.Image:
    y, x = np.mgrid[0:H, 0:W].astype(np.float32)
    top, bottom = np.array([10, 24, 52], np.float32), np.array([4, 10, 24], np.float32)
    img = top + (bottom - top) * (y / H)[..., None]  # vertical gradient, lighter on top
    # The key light behind the anchor (the program places it at 60% of the width).
    glow = np.exp(-(((x - 0.60 * W) / (0.30 * W)) ** 2 + ((y - 0.42 * H) / (0.45 * H)) ** 2))
    img += glow[..., None] * np.array([30, 70, 120], np.float32)
    panels = Image.new("L", (W, H), 0)
    p = np.zeros((H, W), np.float32)
    for k in range(9):  # window panels of a city at night, blurred like a background out of focus
        x0 = int(0.02 * W + k * 0.11 * W)
        p[int(0.12 * H):int(0.62 * H), x0:x0 + int(0.085 * W)] = 0.35 + 0.25 * ((k * 7) % 3) / 2
    panels = Image.fromarray((p * 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(18))
    img += (np.asarray(panels, np.float32) / 255.0)[..., None] * np.array([18, 36, 60], np.float32)
    desk = y > 0.80 * H  # a desk edge: a thin highlight and a darker front
    img[desk] *= 0.55
    edge = np.abs(y - 0.80 * H) < 0.004 * H
    img[edge] = np.array([90, 150, 210], np.float32)
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB")


if __name__ == "__main__":
    out = Path(__file__).resolve().parents[1] / "src" / "vortex" / "data" / "program" / "studio.png"
    studio().save(out, optimize=True)
    print(out, out.stat().st_size, "bytes")
