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

Streamed: the timeline is planned before any audio exists (the duration predictor), so visemes,
head, blinks and expressions are computed for the whole slot at `start`; only the loudness that
gates the lips waits for audio (envelope.Loudness). A frame is final once the audio reaches
~75 ms past it (the 20 ms RMS window, the gate's ±45 ms smoothing, one control step), and its
values do not depend on how the audio was chunked: the whole-slot `drive` is the same stream fed
at once.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from ..config import MotionConfig
from . import DrivingSequence
from .blinks import blink_closure
from .envelope import Loudness, frame_rms
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
    from ..models.kokoro import Speech, Timeline

__all__ = ["MotionDriver", "MotionStream", "EXPRESSION_PRESETS", "EXP_DELTA_BOUND", "lip_speech_correlation"]

EXP_DELTA_BOUND = 0.08  # the largest |exp| the motion extractor gives real faces
MOUTH_AAA = 55.0  # "aaa" slider units at mouth_open = 1: 19.y + 0.055
SPREAD_EEE = 10.0  # "eee" units at full spread
ROUND_WOO = 12.0  # "woo" units at full rounding
BLINK_EYES = -17.0  # "eyes" units at a closed blink: 11.y and 15.y + 0.017
SPEAKING_SIGMA_S = 0.4  # how slowly "is speaking" (from the timeline) rises and falls, for the head's liveliness
EYE_CLOSE_DY = 0.017  # 11.y / 15.y rise of a closed eye, to read eye_open back from a template's exp


class MotionDriver:
    def __init__(self, cfg: MotionConfig):
        self.cfg = cfg

    def start(
        self,
        timeline: "Timeline",
        *,
        sample_rate: int,
        n_samples: int,
        speech_samples: int,
        chunk_starts: Sequence[int],
        n_frames: int,
        fps: int,
        seed: int,
        emotion: str = "neutral",
        expression_preset: str = "neutral",
        expression_sequence: Sequence[str] = (),
        driving_source: str | Path | None = None,
    ) -> "MotionStream":
        """The slot's motion, before its audio exists: everything the planned timeline and the seed
        decide is computed now; the lips follow the loudness as `MotionStream.add_audio` feeds it."""
        if n_frames < 1 or fps < 1:
            raise ValueError(f"n_frames and fps must be positive (got {n_frames}, {fps})")
        # Recipe problems first, before any work: unknown names, a missing template.
        held = expression_track(n_frames, fps, expression_preset, tuple(expression_sequence)) + emotion_offset(emotion)
        template = load_template(driving_source) if driving_source is not None else None
        blink_rng, head_rng = (np.random.Generator(np.random.PCG64(s))
                               for s in np.random.SeedSequence(int(seed) % 2**64).spawn(2))
        sr = sample_rate
        duration = max(n_frames / fps, n_samples / sr)
        tracks = viseme_tracks(timeline.phonemes, np.asarray(timeline.starts), np.asarray(timeline.samples), sr,
                               duration, lead_s=self.cfg.lip_lead_s, pauses=np.asarray(timeline.pauses))
        frames = _FrameSampler(n_frames, fps, len(tracks.times))

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
            speaking = np.clip(frames.at(gaussian_smooth(tracks.voiced, SPEAKING_SIGMA_S * CONTROL_RATE)), 0.0, 1.0)
            head = head_motion(n_frames, fps, self.cfg.head_motion_deg, speaking, tracks.stressed_onsets,
                               self.cfg.breathing, head_rng)
            rotation, translation, scale = head.rotation, head.translation, head.scale
        loudness = Loudness(sr, n_samples, len(tracks.times), speech_samples, tuple(chunk_starts))
        return MotionStream(self.cfg, tracks, loudness, frames, face + held, rotation, translation, scale,
                            np.clip(eye_open, 0.0, 1.0), fps, template is not None)

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
        """The whole slot's motion from its whole speech: the stream fed everything at once."""
        stream = self.start(speech.timeline, sample_rate=speech.sample_rate, n_samples=len(speech.waveform),
                            speech_samples=speech.speech_samples, chunk_starts=speech.plan.chunk_starts,
                            n_frames=n_frames, fps=fps, seed=seed, emotion=emotion,
                            expression_preset=expression_preset, expression_sequence=expression_sequence,
                            driving_source=driving_source)
        stream.add_audio(speech.waveform)
        stream.finish_audio()
        return stream.rows(0, n_frames)


class _FrameSampler:
    """Control-rate signals read at frame centres: linear interpolation between the two steps
    around each centre, the same arithmetic for a frame whatever range is asked."""

    def __init__(self, n_frames: int, fps: int, n_steps: int):
        position = (np.arange(n_frames) + 0.5) / fps * CONTROL_RATE
        self.left = np.clip(np.floor(position).astype(np.int64), 0, n_steps - 2)
        self.frac = np.clip(position - self.left, 0.0, 1.0)

    def at(self, signal: np.ndarray, start: int = 0, stop: int | None = None) -> np.ndarray:
        j, f = self.left[start:stop], self.frac[start:stop]
        return signal[j] * (1.0 - f) + signal[j + 1] * f

    def needs(self, frame: int) -> int:
        """Control steps that must be final for `frame`."""
        return int(self.left[frame]) + 2


class MotionStream:
    """One slot's driving parameters, final frame by frame as its audio arrives (see `MotionDriver.start`)."""

    def __init__(self, cfg: MotionConfig, tracks, loudness: Loudness, frames: _FrameSampler, face: np.ndarray,
                 rotation: np.ndarray, translation: np.ndarray, scale: np.ndarray, eye_open: np.ndarray, fps: int,
                 from_template: bool):
        self.cfg, self.tracks, self.loudness, self.frames = cfg, tracks, loudness, frames
        self.face, self.rotation, self.translation, self.scale = face, rotation, translation, scale
        self.eye_open, self.fps, self.from_template = eye_open, fps, from_template
        self.n_frames = len(face)
        self.final_frames = 0

    def add_audio(self, audio: np.ndarray) -> int:
        """The slot's next samples; returns how many frames (from the first) are final now."""
        self.loudness.add(audio)
        return self._advance()

    def finish_audio(self) -> int:
        """No more speech: the rest of the slot is silence, and every frame is final."""
        self.loudness.finish()
        return self._advance()

    def _advance(self) -> int:
        final = self.loudness.final
        while self.final_frames < self.n_frames and self.frames.needs(self.final_frames) <= final:
            self.final_frames += 1
        return self.final_frames

    def rows(self, start: int, stop: int) -> DrivingSequence:
        """Frames start..stop-1, which must be final."""
        if not 0 <= start < stop <= self.final_frames:
            raise IndexError(f"frames {start}..{stop - 1} asked; frames 0..{self.final_frames - 1} are final")
        t, e, at = self.tracks, self.loudness, self.frames.at
        mouth_open = np.clip(at(t.open * e.amplitude, start, stop), 0.0, 1.0)
        spread = np.clip(at(t.spread * e.gate, start, stop), 0.0, 1.0)
        rounded = np.clip(at(t.round * e.gate, start, stop), 0.0, 1.0)
        gain = self.cfg.lip_gain
        lips = gain * (MOUTH_AAA * mouth_open[:, None, None] * SLIDER_BASIS["aaa"]
                       + SPREAD_EEE * spread[:, None, None] * SLIDER_BASIS["eee"]
                       + ROUND_WOO * rounded[:, None, None] * SLIDER_BASIS["woo"])
        exp_delta = np.clip(lips + self.face[start:stop], -EXP_DELTA_BOUND, EXP_DELTA_BOUND)
        f32 = np.float32
        return DrivingSequence(
            fps=int(self.fps), exp_delta=exp_delta.astype(f32), rotation_delta=self.rotation[start:stop].astype(f32),
            translation_delta=self.translation[start:stop].astype(f32), scale_factor=self.scale[start:stop].astype(f32),
            mouth_open=mouth_open.astype(f32), eye_open=self.eye_open[start:stop].astype(f32),
            mouth_spread=spread.astype(f32), mouth_round=rounded.astype(f32), from_template=self.from_template,
        )


def lip_speech_correlation(seq: DrivingSequence, speech: "Speech") -> float:
    """Pearson r between `mouth_open` and the per-frame RMS of the waveform (NaN if either is flat)."""
    envelope = frame_rms(speech.waveform, speech.sample_rate, seq.n_frames, seq.fps)
    mouth = seq.mouth_open.astype(np.float64)
    if envelope.std() == 0 or mouth.std() == 0:
        return float("nan")
    return float(np.corrcoef(mouth, envelope)[0, 1])
