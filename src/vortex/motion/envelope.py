"""The waveform's loudness: where the speaker is silent, and how loud each moment is.

The phoneme timeline says *what* is said; the waveform says *whether* sound is coming out. Kokoro
pads sentences and sometimes gives a final consonant a long, nearly silent tail, so the mouth is
gated by the waveform itself: closed below a floor 35 dB under the speech's typical peak level,
and a little wider when louder (jaw opening follows vocal effort).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .visemes import CONTROL_RATE, gaussian_smooth

WINDOW_S = 0.020
FLOOR_DB = 35.0  # below the reference level: silence
GATE_RISE_DB = 10.0  # from the floor to fully open
FULL_DB = 10.0  # within this of the reference level: full loudness
QUIET_OPENING = 0.5  # the share of a viseme's opening kept at the floor's edge
GATE_SIGMA_S = 0.015


@dataclass(frozen=True)
class SpeechEnergy:
    gate: np.ndarray  # (K,) 0 silent .. 1 speaking, at CONTROL_RATE
    amplitude: np.ndarray  # (K,) gate x loudness weighting: what multiplies the mouth opening


def control_rms(waveform: np.ndarray, sample_rate: int, times: np.ndarray) -> np.ndarray:
    """RMS in a WINDOW_S window centred at each time (zero outside the waveform)."""
    squares = np.concatenate([[0.0], np.cumsum(np.asarray(waveform, dtype=np.float64) ** 2)])
    half = WINDOW_S * sample_rate / 2
    a = np.clip(np.round(times * sample_rate - half), 0, len(waveform)).astype(np.int64)
    b = np.clip(np.round(times * sample_rate + half), 0, len(waveform)).astype(np.int64)
    return np.sqrt(np.maximum(squares[b] - squares[a], 0.0) / (2 * half))


def speech_energy(waveform: np.ndarray, sample_rate: int, times: np.ndarray, speech_samples: int) -> SpeechEnergy:
    rms = control_rms(waveform, sample_rate, times)
    in_speech = times < speech_samples / sample_rate
    voiced = rms[in_speech & (rms > 1e-4)]
    if voiced.size == 0:
        zeros = np.zeros_like(times)
        return SpeechEnergy(zeros, zeros.copy())
    reference_db = 20 * np.log10(np.percentile(voiced, 95))
    level_db = 20 * np.log10(rms + 1e-9)
    floor_db = reference_db - FLOOR_DB
    x = np.clip((level_db - floor_db) / GATE_RISE_DB, 0.0, 1.0)
    gate = x * x * (3 - 2 * x)  # smoothstep: no click at the floor
    loudness = np.clip((level_db - floor_db) / (FLOOR_DB - FULL_DB), 0.0, 1.0)
    amplitude = gate * (QUIET_OPENING + (1 - QUIET_OPENING) * loudness)
    sigma = GATE_SIGMA_S * CONTROL_RATE
    gate, amplitude = (np.clip(gaussian_smooth(s, sigma), 0, 1) * in_speech for s in (gate, amplitude))
    return SpeechEnergy(gate, amplitude)


def frame_rms(waveform: np.ndarray, sample_rate: int, n_frames: int, fps: int) -> np.ndarray:
    """(n_frames,) RMS of the samples each video frame spans (zero past the waveform's end)."""
    squares = np.concatenate([[0.0], np.cumsum(np.asarray(waveform, dtype=np.float64) ** 2)])
    edges = np.round(np.arange(n_frames + 1) * sample_rate / fps).astype(np.int64)
    clipped = np.clip(edges, 0, len(waveform))
    lengths = np.maximum(edges[1:] - edges[:-1], 1)
    return np.sqrt(np.maximum(squares[clipped[1:]] - squares[clipped[:-1]], 0.0) / lengths)
