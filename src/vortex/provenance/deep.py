"""`vortex verify --deep`: what a validator node runs on a slot another node made. The engine's own
checks (vortex.engine.checks: identity and lip sync on the pixels; vortex.asr: the speech against
the script; vortex.models.clip: the CLIP embedding) are re-run on the decoded MP4 against the
recipe, on the profile the slot names (or --profile), with only the checking models loaded.

    face present     the identity meter found a face in the sampled frames
    identity         the face's distance to the declared portrait (recipe's actor_image, or the
                     profile's stand-in portrait) below faces' max distance
    lip sync         the lip opening against the speech envelope, above the floor
    speech           Whisper's transcript against the recipe's script: WER at most max_wer
    CLIP             the embedding recomputed from the same sampled frames, cosine >= 0.99 to the
                     signed one (same profile: same weights; the H.264 round trip moves it a little)
A check the profile cannot judge (stand-in weights) is reported with why, and does not fail.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any, Optional

import av
import numpy as np

from ..media import SWS_THREADS, read_mono_audio

MIN_CLIP_COSINE = 0.99
_NEEDED = ("clip", "faces", "whisper")


def decode_mp4(path: Path) -> tuple[np.ndarray, np.ndarray, int, int]:
    """(frames (n, H, W, 3) uint8 RGB, mono float32 waveform, fps, sample_rate)."""
    frames = []
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        fps = int(round(float(v.average_rate or v.guessed_rate or 24)))
        for frame in c.decode(v):
            frames.append(frame.to_ndarray(format="rgb24", threads=SWS_THREADS))
    waveform, sr = read_mono_audio(path)
    return np.stack(frames), waveform, fps, sr


def deep_checks(path: Path, recipe, slot: Optional[dict[str, Any]], *, profile: Optional[str] = None) -> dict[str, Any]:
    from ..config import VortexConfig
    from ..contracts.cancel import CancelToken
    from ..engine.checks import FrameChecks, speech_judgement
    from ..engine.portrait import make_portrait
    from ..engine.registry import ModelRegistry, default_loaders
    from ..asr.check import check_speech

    name = profile or (slot or {}).get("profile") or None
    cfg = VortexConfig.load(profile=name)
    loaders = {k: v for k, v in default_loaders(cfg).items() if k in _NEEDED}
    models = ModelRegistry.load(cfg, loaders)
    get = lambda k: models.get_model(k) if k in models.names else None  # noqa: E731
    analyzer, transcriber, verifier = get("faces"), get("whisper"), get("clip")
    frames, waveform, fps, sr = decode_mp4(path)
    n = p_n = recipe.slot_params.n_frames
    n = min(n, len(frames))
    waveform = waveform[: recipe.slot_params.n_samples(sr)]
    reasons: list[str] = []
    out: dict[str, Any] = {"profile": cfg.profile, "frames_decoded": int(len(frames)), "frames_expected": p_n}
    v = recipe.visual_track

    # Identity and lip sync: the engine's FrameChecks on the decoded frames, against the declared portrait.
    if v.actor_image is None and cfg.pipeline.actor == "flux":
        out["identity"] = {"measured": False, "why": "the recipe declares no portrait (a generated actor)"}
    else:
        portrait = make_portrait(actor_image=v.actor_image, stand_in=None if cfg.pipeline.actor == "flux" else cfg.pipeline.actor,
                                 generate=None, seed=int((slot or {}).get("seed") or 0),
                                 height=cfg.buffers.actor.height, width=cfg.buffers.actor.width, analyzer=analyzer,
                                 faces_cfg=cfg.faces, frame=cfg.faces.framing, time_left=lambda: 60.0)
        checks = FrameChecks(cfg, analyzer, portrait, n, verifier.sample_indices(n), lambda: None, CancelToken())
        checks.open(None)
        for i in range(n):
            checks.write_frame(i, frames[i])
        checks.finish()
        identity, lips = checks.reports(waveform, fps)
        found = [d for d in identity.distances if d is not None] if identity.distances else []
        out["face_present"] = bool(found)
        out["identity"] = {"passed": identity.passed, "enforced": identity.enforced, "worst": identity.worst,
                           "max_distance": identity.max_distance, "why_not": identity.why_not_enforced}
        out["lip_sync"] = {"passed": lips.passed, "enforced": lips.enforced, "r": lips.r, "floor": lips.floor,
                           "why_not": lips.why_not_enforced}
        if identity.enforced and not found:
            reasons.append("deep: no face found in the sampled frames")
        elif identity.fails_slot:
            reasons.append(f"deep: identity: worst face distance {identity.worst} to the declared portrait "
                           f"(same person below {identity.max_distance:.2f})")
        if lips.fails_slot:
            reasons.append(f"deep: lip sync: r {lips.r} below the floor {lips.floor:.2f}")
        clip_frames = checks.clip_frames

    # Speech: what is heard against the recipe's script.
    if transcriber is not None:
        judge = speech_judgement(cfg)
        speech = check_speech(transcriber, waveform, sr, recipe.audio_track.script, max_wer=cfg.verification.max_wer,
                              enforced=judge.enforced, why_not=judge.why_not)
        out["speech"] = {"passed": speech.passed, "enforced": speech.enforced, "wer": speech.wer,
                         "max_wer": speech.max_wer, "heard": speech.transcript, "why_not": speech.why_not_enforced}
        if speech.passed is False and speech.enforced or (speech.wer is not None and speech.wer > speech.max_wer):
            wer = "no words" if speech.wer is None else f"word error rate {speech.wer:.2f}"
            reasons.append(f"deep: speech: {wer} against the recipe's script (max {speech.max_wer:.2f}; "
                           f"heard {speech.transcript[:80]!r})")
    else:
        out["speech"] = {"measured": False, "why": "verification.speech_check is off in this profile"}

    # CLIP: the embedding recomputed from the same sampled frames, against the signed one.
    if v.actor_image is None and cfg.pipeline.actor == "flux":
        clip_frames = {i: frames[i] for i in verifier.sample_indices(n)}
    _report, embedding = verifier.verify_samples(clip_frames, n, v.prompt, recipe.semantic_constraints.clip_threshold)
    packed = (slot or {}).get("clip_embedding_f32")
    signed = None if not packed else np.frombuffer(base64.b64decode(packed), "<f4")
    if signed is None:
        out["clip"] = {"cosine": None, "why": "no signed embedding to compare with"}
        reasons.append("deep: CLIP: the credentials carry no embedding to compare with")
    else:
        a, b = np.asarray(embedding, np.float64), np.asarray(signed, np.float64)
        cosine = float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))
        out["clip"] = {"cosine": round(cosine, 5), "min": MIN_CLIP_COSINE, "passed": cosine >= MIN_CLIP_COSINE}
        if cosine < MIN_CLIP_COSINE:
            reasons.append(f"deep: CLIP: the recomputed embedding has cosine {cosine:.4f} to the signed one "
                           f"(at least {MIN_CLIP_COSINE} on the same profile)")
    out["reasons"] = reasons
    return out
