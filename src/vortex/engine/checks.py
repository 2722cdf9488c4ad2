"""The face and speech checks of one slot, and whether each can judge it.

A check is enforced where its measurement means something: the face checks where the animator
renders a real face from a portrait that shows one (the preview animator, LivePortrait on real
weights, a still portrait for identity); the speech check where the voice is real. Everywhere else
the report still says what was (or could not be) measured and why it does not fail the slot.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from ..config import MINIATURE, VortexConfig
from .portrait import ActorPortrait
from .reports import IdentityReport, LipSyncReport, SpeechReport


@dataclass(frozen=True)
class Judgement:
    enforced: bool
    why_not: Optional[str] = None


def face_judgement(cfg: VortexConfig, portrait: ActorPortrait) -> Judgement:
    if portrait.framing is None:
        if not cfg.faces.framing:
            return Judgement(False, "faces.framing is off in this profile: no face was located in the portrait")
        return Judgement(False, f"the portrait ({portrait.origin}) holds no detectable face")
    if cfg.pipeline.animation == "liveportrait" and cfg.models.liveportrait.source == MINIATURE:
        return Judgement(False, "LivePortrait runs on stand-in (seeded-random miniature) weights: it renders no face")
    return Judgement(True)


def lip_judgement(cfg: VortexConfig, faces: Judgement) -> Judgement:
    if cfg.pipeline.animation == "still":
        return Judgement(False, "pipeline.animation is 'still': the lips do not move")
    return faces


def speech_judgement(cfg: VortexConfig) -> Judgement:
    if cfg.models.kokoro.source == MINIATURE:
        return Judgement(False, "Kokoro runs on stand-in (seeded-random miniature) weights: its speech is not words")
    return Judgement(True)


def identity_report(analyzer: Any, cfg: VortexConfig, portrait: ActorPortrait, frames: np.ndarray,
                    judge: Judgement) -> IdentityReport:
    v = cfg.verification
    if portrait.framing is None:  # nothing to compare against: do not spend K face detections
        return IdentityReport(passed=False, enforced=False, why_not_enforced=judge.why_not, max_distance=v.face_max_distance,
                              notes=["not measured: the portrait holds no located face"])
    from ..faces import check_identity

    return check_identity(analyzer, portrait.image, frames, v.face_frames, v.face_max_distance,
                          enforced=judge.enforced, why_not=judge.why_not)


def lip_sync_report(analyzer: Any, cfg: VortexConfig, portrait: ActorPortrait, frames: np.ndarray,
                    waveform: np.ndarray, fps: int, judge: Judgement) -> LipSyncReport:
    v = cfg.verification
    if portrait.framing is None or cfg.pipeline.animation == "still":
        return LipSyncReport(passed=False, enforced=False, why_not_enforced=judge.why_not, floor=v.lip_sync_floor,
                             step=v.lip_sync_step, max_lag_ms=v.lip_sync_max_lag_ms,
                             notes=[f"not measured: {judge.why_not}"])
    from ..faces import measure_lip_sync

    return measure_lip_sync(analyzer, frames, waveform, cfg.buffers.audio.sample_rate, fps, step=v.lip_sync_step,
                            max_lag_ms=v.lip_sync_max_lag_ms, floor=v.lip_sync_floor, enforced=judge.enforced,
                            why_not=judge.why_not, box_hint=portrait.framing.box)


def speech_report(transcriber: Any, cfg: VortexConfig, waveform: np.ndarray, script: str) -> SpeechReport:
    v = cfg.verification
    if transcriber is None or not v.speech_check:
        return SpeechReport(passed=False, enforced=False, max_wer=v.max_wer,
                            why_not_enforced="verification.speech_check is off in this profile", notes=["not measured"])
    from ..asr import check_speech

    judge = speech_judgement(cfg)
    return check_speech(transcriber, waveform, cfg.buffers.audio.sample_rate, script, max_wer=v.max_wer,
                        enforced=judge.enforced, why_not=judge.why_not)
