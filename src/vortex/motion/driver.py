"""The motion driver: speech → per-frame LivePortrait driving parameters (a `DrivingSequence`).

    lips        Kokoro's phoneme timeline → visemes (open / spread / round, m-b-p closed), smoothed
                for co-articulation, gated and weighted by the waveform's loudness, sampled at
                frame centres, and turned into the expression editors' aaa / eee / woo moves.
                The shapes lead the timeline by `lip_lead_s` (Kokoro's audio runs 50-70 ms ahead
                of its token durations: the lag that best aligns visemes with the waveform's
                envelope, measured on five scripts and three voice packs).
    eyes        seeded blinks at `blinks_per_minute` (fast close, slower reopening).
    head        slow, bounded, seeded sway, livelier while speaking, beats on stressed syllables;
                breathing in the head scale.
    expression  the voice's emotion and the recipe's expression preset / sequence as held offsets.
    template    with a driving_source, a LivePortrait motion template supplies head and eye motion
                (relative to its first frame); the lips stay speech-driven.

Magnitudes follow what LivePortrait's motion extractor produces on real faces (expression deltas
of 0.01-0.05; a wide-open "a" moves 19.y by ~0.06-0.10): a fully open viseme moves 19.y by
0.055 · lip_gain, a closed blink moves 11.y / 15.y by +0.017, and whatever the recipe asks, every
expression delta is clamped to ±0.08 at the end. All randomness comes from numpy Generators
seeded by `seed`: the same inputs give the same arrays.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from ..config import MotionConfig
from . import DrivingSequence
from .blinks import blink_closure
from .envelope import frame_rms, speech_energy
from .expressions import (
    EXPRESSION_PRESETS,  # noqa: F401 - re-exported: the documented preset names
    LIP_KEYPOINTS,
    SLIDER_BASIS,
    emotion_offset,
    expression_track,
)
from .head import head_motion
from .template import follow_template, load_template
from .visemes import CONTROL_RATE, gaussian_smooth, viseme_tracks

if TYPE_CHECKING:
    from ..models.kokoro import Speech

__all__ = ["MotionDriver", "EXPRESSION_PRESETS", "EXP_DELTA_BOUND", "lip_speech_correlation"]

EXP_DELTA_BOUND = 0.08  # the largest |exp| the motion extractor gives real faces
MOUTH_AAA = 55.0  # "aaa" slider units at mouth_open = 1: 19.y + 0.055
SPREAD_EEE = 10.0  # "eee" units at full spread
ROUND_WOO = 12.0  # "woo" units at full rounding
BLINK_EYES = -17.0  # "eyes" units at a closed blink: 11.y and 15.y + 0.017
SPEAKING_SIGMA_S = 0.4  # how slowly "is speaking" rises and falls, for the head's liveliness
EYE_CLOSE_DY = 0.017  # 11.y / 15.y rise of a closed eye, to read eye_open back from a template's exp


class MotionDriver:
    def __init__(self, cfg: MotionConfig):
        self.cfg = cfg

    def drive(
        self,
        speech: "Speech",
        n_frames: int,
        fps: int,
        seed: int,
        *,
        emotion: str = "neutral",
        expression_preset: str = "neutral",
        expression_sequence: Sequence[str] = (),
        driving_source: str | Path | None = None,
    ) -> DrivingSequence:
        if n_frames < 1 or fps < 1:
            raise ValueError(f"n_frames and fps must be positive (got {n_frames}, {fps})")
        # Recipe problems first, before any work: unknown names, a missing template.
        held = expression_track(n_frames, fps, expression_preset, tuple(expression_sequence)) + emotion_offset(emotion)
        template = load_template(driving_source) if driving_source is not None else None
        blink_rng, head_rng = (np.random.Generator(np.random.PCG64(s))
                               for s in np.random.SeedSequence(int(seed) % 2**64).spawn(2))

        sr = speech.sample_rate
        duration = max(n_frames / fps, len(speech.waveform) / sr)
        tracks = viseme_tracks(speech.phonemes, np.asarray(speech.phoneme_starts), np.asarray(speech.phoneme_samples),
                               sr, duration, lead_s=self.cfg.lip_lead_s)
        energy = speech_energy(speech.waveform, sr, tracks.times, speech.speech_samples)
        centres = (np.arange(n_frames) + 0.5) / fps

        def at_frames(signal: np.ndarray) -> np.ndarray:
            return np.interp(centres, tracks.times, signal)

        mouth_open = np.clip(at_frames(tracks.open * energy.amplitude), 0.0, 1.0)
        spread = np.clip(at_frames(tracks.spread * energy.gate), 0.0, 1.0)
        rounded = np.clip(at_frames(tracks.round * energy.gate), 0.0, 1.0)
        gain = self.cfg.lip_gain
        lips = gain * (MOUTH_AAA * mouth_open[:, None, None] * SLIDER_BASIS["aaa"]
                       + SPREAD_EEE * spread[:, None, None] * SLIDER_BASIS["eee"]
                       + ROUND_WOO * rounded[:, None, None] * SLIDER_BASIS["woo"])

        if template is not None:
            followed = follow_template(template, n_frames, fps)
            face = followed.exp.copy()
            face[:, list(LIP_KEYPOINTS)] = 0.0  # the lips stay speech-driven
            rotation, translation, scale = followed.rotation, followed.translation, followed.scale
            eye_open = followed.eye_open
            if eye_open is None:
                eye_open = 1.0 - np.clip((face[:, 11, 1] + face[:, 15, 1]) / (2 * EYE_CLOSE_DY), 0.0, 1.0)
        else:
            closure = blink_closure(n_frames, fps, self.cfg.blinks_per_minute, blink_rng)
            face = BLINK_EYES * closure[:, None, None] * SLIDER_BASIS["eyes"]
            eye_open = 1.0 - closure
            speaking = np.clip(at_frames(gaussian_smooth(energy.gate, SPEAKING_SIGMA_S * CONTROL_RATE)), 0.0, 1.0)
            head = head_motion(n_frames, fps, self.cfg.head_motion_deg, speaking, tracks.stressed_onsets,
                               self.cfg.breathing, head_rng)
            rotation, translation, scale = head.rotation, head.translation, head.scale

        exp_delta = np.clip(lips + face + held, -EXP_DELTA_BOUND, EXP_DELTA_BOUND)
        f32 = np.float32
        return DrivingSequence(
            fps=int(fps), exp_delta=exp_delta.astype(f32), rotation_delta=rotation.astype(f32),
            translation_delta=translation.astype(f32), scale_factor=scale.astype(f32),
            mouth_open=mouth_open.astype(f32), eye_open=np.clip(eye_open, 0.0, 1.0).astype(f32),
            mouth_spread=spread.astype(f32), mouth_round=rounded.astype(f32),
            from_template=template is not None,
        )


def lip_speech_correlation(seq: DrivingSequence, speech: "Speech") -> float:
    """Pearson r between `mouth_open` and the per-frame RMS of the waveform (NaN if either is flat)."""
    envelope = frame_rms(speech.waveform, speech.sample_rate, seq.n_frames, seq.fps)
    mouth = seq.mouth_open.astype(np.float64)
    if envelope.std() == 0 or mouth.std() == 0:
        return float("nan")
    return float(np.corrcoef(mouth, envelope)[0, 1])
