"""Text read back from decoded frames by tesseract, an independent reader of the picture.

A single decoded frame of the channel is a noisy page for OCR: x264's coding noise and the
watermark's ±1-2 luma pattern (its sign flips every 24 frames) cost tesseract a letter now and then
(CI, 2026-12-07: "BREAKING Cy | Pai" for "BREAKING Cy Park" on one frame of a live insert). A graphic
that stands still (a lower third, the AI label, a caption cue) is read from the per-pixel median of
several frames instead: the same picture with the noise averaged out, as a viewer's eye sees it."""

from __future__ import annotations

import numpy as np
import pytesseract
from PIL import Image


def ocr(image: np.ndarray, scale: int = 2) -> str:
    im = Image.fromarray(image).convert("L")
    return pytesseract.image_to_string(im.resize((im.width * scale, im.height * scale)), config="--psm 6")


def ocr_still(frames, indices, rows: slice, cols: slice) -> str:
    """OCR of a still graphic: the median of frames[indices] over the box (rows, cols)."""
    stack = np.stack([frames[k][rows, cols] for k in indices])
    return ocr(np.median(stack, axis=0).astype(np.uint8))


def squeezed(text: str) -> str:
    """Text without white space: OCR over a picture drops or adds spaces between words."""
    return "".join(text.split())
