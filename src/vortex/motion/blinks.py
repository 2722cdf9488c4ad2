"""Spontaneous blinks: when they happen and how the lid moves.

Timing: a renewal process (gamma-distributed gaps after a refractory pause), so blinks come at the
configured mean rate without the clumps and long droughts of a pure Poisson process; now and then
a second blink follows at once (double blinks are common in conversation). Shape: a fast close
(60-90 ms), a short hold, a slower reopening (120-180 ms) — a human blink is asymmetric. Each
blink's fully closed moment is placed on a frame centre, so at 24-30 fps every blink is seen
closed on at least one frame instead of being sampled half-way.
"""

from __future__ import annotations

import numpy as np

REFRACTORY_S = 1.0  # at most this, and at most 35 % of the mean gap
GAP_SHAPE = 2.0  # gamma shape of the gap after the refractory pause
DOUBLE_BLINK_P = 0.08
DOUBLE_BLINK_GAP_S = (0.25, 0.35)
CLOSE_S, HOLD_S, OPEN_S = (0.06, 0.09), (0.02, 0.05), (0.12, 0.18)
DEPTH = (0.92, 1.0)  # most blinks close fully; a few stop just short


def blink_closure(n_frames: int, fps: int, per_minute: float, rng: np.random.Generator) -> np.ndarray:
    """(n_frames,) lid closure, 0 open .. 1 closed."""
    closure = np.zeros(n_frames)
    if per_minute <= 0 or n_frames == 0:
        return closure
    duration = n_frames / fps
    mean_gap = 60.0 / per_minute
    refractory = min(REFRACTORY_S, 0.35 * mean_gap)
    theta = (mean_gap - refractory) / GAP_SHAPE
    centres = (np.arange(n_frames) + 0.5) / fps
    t = rng.uniform(0.15, 1.0) * mean_gap  # the first one: somewhere in the first gap
    while t < duration:
        closure = np.maximum(closure, _one_blink(centres, t, fps, rng))
        if rng.random() < DOUBLE_BLINK_P:
            second = t + rng.uniform(*DOUBLE_BLINK_GAP_S)
            closure = np.maximum(closure, _one_blink(centres, second, fps, rng))
            t = second
        t += refractory + rng.gamma(GAP_SHAPE, theta)
    return closure


def _one_blink(centres: np.ndarray, start: float, fps: int, rng: np.random.Generator) -> np.ndarray:
    close, hold, reopen = rng.uniform(*CLOSE_S), rng.uniform(*HOLD_S), rng.uniform(*OPEN_S)
    depth = rng.uniform(*DEPTH)
    peak = (np.floor((start + close) * fps) + 0.5) / fps  # the closed hold spans a frame centre
    closing_from, opening_from = peak - close - hold / 2, peak + hold / 2
    x_close = np.clip((centres - closing_from) / close, 0.0, 1.0)
    x_open = np.clip((centres - opening_from) / reopen, 0.0, 1.0)
    down = x_close * x_close * (3 - 2 * x_close)  # ease in and out of the fast close
    up = 1 - (1 - x_open) ** 2  # reopening decelerates
    return depth * np.where(centres < opening_from, down, 1.0 - up)


def count_blinks(eye_open: np.ndarray, threshold: float = 0.5) -> int:
    """Blinks in an eye-openness track: the times it drops below `threshold`."""
    closed = np.asarray(eye_open) < threshold
    return int(np.count_nonzero(closed[1:] & ~closed[:-1]) + (1 if closed.size and closed[0] else 0))
