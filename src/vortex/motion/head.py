"""Idle and speaking head motion, and breathing.

Head: each axis is a sum of a few slow sinusoids (0.05-0.45 Hz, seeded frequencies and phases),
scaled to the configured standard deviation (talking-head footage shows a pose std of ~4.5°;
the default is a calmer 3°), a little livelier while the speaker talks, with small pitch beats on
stressed syllables. Every angle is soft-limited (bound · tanh(x / bound)), so it never exceeds
its bound yet never sticks to it: |pitch|, |yaw| ≤ 10°, |roll| ≤ 6°.

Breathing: the head scale swells by ~0.3 % and the head rises by a hair at ~0.25 Hz.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PITCH, YAW, ROLL = 0, 1, 2
ANGLE_BOUNDS_DEG = np.array([10.0, 10.0, 6.0])
AXIS_SHARE = np.array([0.8, 1.0, 0.5])  # of head_motion_deg: yaw moves most, roll least
N_WAVES = 5
WAVE_HZ = (0.05, 0.45)
SPEAKING_LIFT = (0.7, 1.2)  # amplitude multiplier, silent .. speaking
BEAT_DEG = 0.35  # pitch beat per stressed syllable, per degree of head_motion_deg
BEAT_SIGMA_S = 0.12
DRIFT_STD = 0.003  # translation drift, normalised grid units
TRANSLATION_BOUND = 0.02
BREATH_HZ = (0.2, 0.3)
BREATH_SCALE = 0.003
BREATH_RISE = 0.0015


@dataclass(frozen=True)
class HeadMotion:
    rotation: np.ndarray  # (n, 3) degrees: pitch, yaw, roll
    translation: np.ndarray  # (n, 3)
    scale: np.ndarray  # (n,)


def _slow_waves(times: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """(count, n) smooth signals of unit standard deviation."""
    freqs = np.exp(rng.uniform(np.log(WAVE_HZ[0]), np.log(WAVE_HZ[1]), size=(count, N_WAVES)))
    phases = rng.uniform(0, 2 * np.pi, size=(count, N_WAVES))
    amps = rng.uniform(0.5, 1.0, size=(count, N_WAVES)) / np.sqrt(freqs / WAVE_HZ[0])  # slower sways are larger
    amps /= np.sqrt((amps ** 2).sum(axis=1, keepdims=True) / 2)  # a sum of sines with Σa²/2 = 1 has unit std
    return np.einsum("cw,cwn->cn", amps, np.sin(2 * np.pi * freqs[..., None] * times + phases[..., None]))


def head_motion(n_frames: int, fps: int, head_motion_deg: float, speaking: np.ndarray, stressed_onsets: np.ndarray,
                breathing: bool, rng: np.random.Generator) -> HeadMotion:
    """`speaking` is (n_frames,) in [0, 1]; `stressed_onsets` are seconds."""
    times = np.arange(n_frames) / fps
    waves = _slow_waves(times, 5, rng)  # pitch, yaw, roll, drift x, drift y
    lift = SPEAKING_LIFT[0] + (SPEAKING_LIFT[1] - SPEAKING_LIFT[0]) * np.clip(speaking, 0, 1)
    rotation = waves[:3].T * (head_motion_deg * AXIS_SHARE) * lift[:, None]
    if head_motion_deg > 0 and len(stressed_onsets):
        beats = np.zeros(n_frames)
        for onset in stressed_onsets:
            beats += rng.uniform(0.6, 1.0) * np.exp(-0.5 * ((times - onset - 0.05) / BEAT_SIGMA_S) ** 2)
        rotation[:, PITCH] += BEAT_DEG * head_motion_deg * np.minimum(beats, 1.5)
    rotation = ANGLE_BOUNDS_DEG * np.tanh(rotation / ANGLE_BOUNDS_DEG)

    translation = np.zeros((n_frames, 3))
    translation[:, :2] = waves[3:].T * DRIFT_STD * min(head_motion_deg / 3.0, 1.5)
    scale = np.ones(n_frames)
    if breathing:
        rate, phase = rng.uniform(*BREATH_HZ), rng.uniform(0, 2 * np.pi)
        # a slowly wandering phase keeps successive breaths from being identical
        wander = 0.6 * _slow_waves(times, 1, rng)[0]
        breath = np.sin(2 * np.pi * rate * times + phase + wander)
        scale += BREATH_SCALE * breath
        translation[:, 1] -= BREATH_RISE * breath  # y points down: inhaling lifts the head
    translation = TRANSLATION_BOUND * np.tanh(translation / TRANSLATION_BOUND)
    return HeadMotion(rotation, translation, scale)
