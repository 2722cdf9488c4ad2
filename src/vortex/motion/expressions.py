"""Expression offsets in LivePortrait's canonical keypoint space, built from named sliders.

The sliders and their per-unit keypoint moves are those the public LivePortrait expression editors
use (ComfyUI-AdvancedLivePortrait's ``calc_fe``; other editors agree). Keypoint i's axis a is
``exp[i, a]``: x right, **y down**, z inward. One slider unit moves a keypoint by about 0.001, so
an expression made of a few sliders stays inside the 0.01-0.05 band the motion extractor produces.

Sign of the eye sliders, checked against that code: ``eyes`` (the editor's "blink", range -20..5)
adds ``-0.001·eyes`` to 11.y and 15.y, and its negative end closes the eyes; ``wink`` (0..25,
positive closes one eye) adds ``+0.001·wink`` to 11.y. Both say the same thing: closing an eye moves
11.y / 15.y *down* the image, i.e. **increases** them (≈ +0.016..0.02 for a closed eye), which is
what DESIGN.md's "closing raises 11.y and 15.y by ~0.016" means (the value rises).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Sequence

import numpy as np

from ..errors import RecipeError
from ..recipe import Emotion

N_KEYPOINTS = 21
LIP_KEYPOINTS = (6, 12, 14, 17, 19, 20)
EYE_KEYPOINTS = (11, 13, 15, 16, 18)
X, Y, Z = 0, 1, 2

# Per-unit moves of each slider: (keypoint, axis, amount).
_SLIDER_MOVES: dict[str, tuple[tuple[int, int, float], ...]] = {
    # mouth open ("aaa", editor range -30..120)
    "aaa": ((19, Y, 0.001), (19, Z, 0.0001), (17, Y, -0.0001)),
    # lips spread ("eee", -20..15)
    "eee": ((20, Z, -0.001), (20, Y, -0.001), (14, Y, -0.001)),
    # lips rounded ("woo", -20..15)
    "woo": ((14, Y, 0.001), (3, Y, -0.0005), (7, Y, -0.0005), (17, Z, -0.0005)),
    # eye opening (the editor's "blink", -20..5): negative closes
    "eyes": ((11, Y, -0.001), (13, Y, 0.0003), (15, Y, -0.001), (16, Y, 0.0003)),
    # smile (-0.3..1.3): corners up and back, cheeks up, lower lids up a little
    "smile": ((20, Y, -0.01), (14, Y, -0.02), (17, Y, 0.0065), (17, Z, 0.003),
              (13, Y, -0.00275), (16, Y, -0.00275), (3, Y, -0.0035), (7, Y, -0.0035)),
    # brows raised (> 0)
    "brow_raise": ((1, Y, 0.001), (2, Y, -0.001)),
    # brows knit (> 0; the editor's negative "eyebrow" branch, sign folded in)
    "brow_knit": ((1, X, 0.001), (2, X, -0.001), (1, Y, -0.0003), (2, Y, 0.0003)),
}


def _basis(name: str) -> np.ndarray:
    basis = np.zeros((N_KEYPOINTS, 3), dtype=np.float64)
    for keypoint, axis, amount in _SLIDER_MOVES[name]:
        basis[keypoint, axis] += amount
    return basis


SLIDER_BASIS: dict[str, np.ndarray] = {name: _basis(name) for name in _SLIDER_MOVES}


@dataclass(frozen=True)
class ExpressionPreset:
    """A held facial expression as editor slider values (units of the public editors)."""

    description: str
    smile: float = 0.0
    brow_raise: float = 0.0
    brow_knit: float = 0.0
    eyes: float = 0.0  # + widens, - narrows
    aaa: float = 0.0
    eee: float = 0.0
    woo: float = 0.0

    def offset(self) -> np.ndarray:
        """(21, 3) expression delta."""
        total = np.zeros((N_KEYPOINTS, 3), dtype=np.float64)
        for f in fields(self):
            if f.name != "description":
                total += getattr(self, f.name) * SLIDER_BASIS[f.name]
        return total


EXPRESSION_PRESETS: dict[str, ExpressionPreset] = {
    "neutral": ExpressionPreset("the portrait's own expression"),
    "smile": ExpressionPreset("a warm closed smile", smile=0.6),
    "happy": ExpressionPreset("a broad smile, brows a little up", smile=0.9, brow_raise=3.0, eyes=1.0),
    "excited": ExpressionPreset("big smile, raised brows, wide eyes", smile=1.0, brow_raise=6.0, eyes=3.0),
    "serious": ExpressionPreset("level gaze, slight frown", smile=-0.1, brow_knit=4.0, eyes=-1.5),
    "surprised": ExpressionPreset("brows up, eyes wide, jaw dropped a little", brow_raise=10.0, eyes=4.0, aaa=8.0),
    "sad": ExpressionPreset("mouth corners down, heavy lids", smile=-0.25, brow_knit=2.0, eyes=-4.0),
    "angry": ExpressionPreset("knit brows, narrowed eyes, tight mouth", smile=-0.2, brow_knit=9.0, eyes=-3.0, eee=2.0),
    "skeptical": ExpressionPreset("one-sided doubt: knit brows, lips pressed", smile=-0.1, brow_knit=5.0, eyes=-2.0, woo=2.0),
    "thinking": ExpressionPreset("lips pursed, brows slightly knit", brow_knit=3.0, woo=4.0, eyes=-1.0),
}

# The voice's emotion shows on the face too, more gently than an explicit preset.
EMOTION_EXPRESSIONS: dict[Emotion, ExpressionPreset] = {
    Emotion.neutral: EXPRESSION_PRESETS["neutral"],
    Emotion.excited: ExpressionPreset("voice emotion: excited", smile=0.5, brow_raise=4.0, eyes=1.5),
    Emotion.sad: ExpressionPreset("voice emotion: sad", smile=-0.15, brow_knit=1.5, eyes=-3.0),
    Emotion.angry: ExpressionPreset("voice emotion: angry", smile=-0.1, brow_knit=6.0, eyes=-2.0),
    Emotion.manic: ExpressionPreset("voice emotion: manic", smile=0.8, brow_raise=7.0, eyes=3.5),
}


def preset_offset(name: str, field: str) -> np.ndarray:
    preset = EXPRESSION_PRESETS.get(name) if isinstance(name, str) else None
    if preset is None:
        allowed = ", ".join(EXPRESSION_PRESETS)
        raise RecipeError(field, f"unknown expression {name!r}; allowed: {allowed}")
    return preset.offset()


def check_expressions(preset: str, sequence: Sequence[str]) -> None:
    """Raise RecipeError for an unknown expression name, before any model runs."""
    preset_offset(preset, "visual_track.expression_preset")
    for i, name in enumerate(sequence):
        preset_offset(name, f"visual_track.expression_sequence[{i}]")


def emotion_offset(emotion: Emotion | str) -> np.ndarray:
    try:
        return EMOTION_EXPRESSIONS[Emotion(emotion)].offset()
    except ValueError:
        allowed = ", ".join(e.value for e in Emotion)
        raise RecipeError("audio_track.emotion", f"unknown emotion {emotion!r}; allowed: {allowed}") from None


def expression_track(n_frames: int, fps: int, preset: str, sequence: Sequence[str],
                     crossfade_s: float = 0.6) -> np.ndarray:
    """(n, 21, 3) held expression: the preset throughout, or the sequence's presets in equal
    consecutive spans joined by smooth crossfades (a convex blend, so never beyond a preset)."""
    offsets = [preset_offset(name, f"visual_track.expression_sequence[{i}]") for i, name in enumerate(sequence)]
    base = preset_offset(preset, "visual_track.expression_preset")
    if not offsets:
        return np.broadcast_to(base, (n_frames, N_KEYPOINTS, 3)).copy()
    span = np.minimum(np.arange(n_frames) * len(offsets) // n_frames, len(offsets) - 1)
    track = np.stack(offsets)[span]
    # Spans shorter than the crossfade simply blend: rapid switching never flickers.
    width = min(int(round(crossfade_s * fps)), n_frames)
    if width > 1:
        window = np.hanning(width + 2)[1:-1]
        window /= window.sum()
        padded = np.concatenate([np.repeat(track[:1], width, 0), track, np.repeat(track[-1:], width, 0)])
        flat = padded.reshape(len(padded), -1)
        smoothed = np.stack([np.convolve(flat[:, j], window, mode="same") for j in range(flat.shape[1])], axis=1)
        track = smoothed[width:width + n_frames].reshape(n_frames, N_KEYPOINTS, 3)
    return track
