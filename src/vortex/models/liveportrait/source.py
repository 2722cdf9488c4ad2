"""The source portrait as LivePortrait's F and M read it: a 256² RGB crop in [0, 1].

The public pipeline first crops the face with a landmark detector, then resizes the crop to
256² (`cv2.resize`, bilinear) and divides by 255. Vortex animates portraits that Flux generated
from an actor prompt: centred heads-and-shoulders on a square canvas, already framed the way the
public crop frames a face. So there is no detector: the crop is the largest centred square of
the portrait (all of it for the 512² actor), resized to 256² with the same bilinear filter.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

SOURCE_SIZE = 256  # F and M read 256² images


def source_image(portrait: np.ndarray, device: torch.device | str = "cpu",
                 dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(H, W, 3) uint8 RGB → (1, 3, 256, 256) in [0, 1]: centred square crop, bilinear resize."""
    is_array = isinstance(portrait, np.ndarray)
    if not is_array or portrait.dtype != np.uint8 or portrait.ndim != 3 or portrait.shape[2] != 3:
        got = f"{portrait.dtype} array of shape {portrait.shape}" if is_array else type(portrait).__name__
        raise ValueError(f"the portrait must be an (H, W, 3) uint8 RGB array, got {got}")
    h, w = portrait.shape[:2]
    side = min(h, w)
    if side < 2:
        raise ValueError(f"the portrait is {h}x{w} pixels: too small to animate")
    top, left = (h - side) // 2, (w - side) // 2
    # A writable, contiguous copy only when needed (torch refuses read-only arrays, e.g. decoded images).
    square = torch.from_numpy(np.require(portrait[top:top + side, left:left + side], requirements=["C", "W"]))
    image = square.to(device).permute(2, 0, 1).unsqueeze(0).float().div_(255.0)
    if side != SOURCE_SIZE:
        # Up to 2× smaller this is cv2.resize's INTER_LINEAR, the public preprocessing (for the
        # 512² actor each output pixel is the mean of a 2×2 block); bigger portraits are
        # low-passed first, which INTER_LINEAR skips and which would alias them.
        image = F.interpolate(image, size=(SOURCE_SIZE, SOURCE_SIZE), mode="bilinear", align_corners=False,
                              antialias=side > 2 * SOURCE_SIZE)
    return image.clamp_(0.0, 1.0).to(dtype)
