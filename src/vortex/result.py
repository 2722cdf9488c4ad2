"""What comes out of one slot: the media, the verification, the timings and a determinism proof."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np

from .contracts.captions import Cue
from .contracts.reports import CheckReport, IdentityReport, LipSyncReport, SpeechReport


@dataclass(frozen=True)
class VerificationReport:
    """What a slot was checked for: CLIP agreement between the sampled frames and the prompt (raw
    cosines), and one section per face and speech check (vortex.contracts.reports)."""

    frame_indices: list[int]
    cosine_b: list[float]  # ViT-B/32, one per sampled frame
    cosine_l: list[float]  # ViT-L/14, one per sampled frame
    mean_b: float
    mean_l: float
    ensemble: float  # weight_b * mean_b + weight_l * mean_l
    threshold_b: float
    threshold_l: float
    threshold: float  # on the ensemble; the recipe's clip_threshold when it gives one
    passed: bool  # the CLIP scores passed
    enforced: bool  # the CLIP scores are enforced (False on profiles whose CLIP weights are random stand-ins)
    notes: list[str] = field(default_factory=list)
    # Optional image-to-image CLIP cosine of each sampled frame against a reference image
    # (ClipVerifier.verify(reference=...)); the pipeline checks identity with a face model instead.
    clip_identity: Optional[list[float]] = None
    clip_identity_threshold: Optional[float] = None
    identity: Optional[IdentityReport] = None  # face descriptor distance to the portrait (dlib)
    lip_sync: Optional[LipSyncReport] = None  # lip opening on the pixels vs the speech envelope
    speech: Optional[SpeechReport] = None  # transcript and word error rate against the script

    @property
    def clip_identity_min(self) -> Optional[float]:
        return None if not self.clip_identity else min(self.clip_identity)

    @property
    def clip_identity_passed(self) -> Optional[bool]:
        return None if self.clip_identity_min is None else self.clip_identity_min >= self.clip_identity_threshold

    @property
    def checks(self) -> dict[str, CheckReport]:
        return {name: r for name, r in (("identity", self.identity), ("lip_sync", self.lip_sync),
                                        ("speech", self.speech)) if r is not None}

    @property
    def fails_slot(self) -> bool:
        return (self.enforced and not self.passed) or any(r.fails_slot for r in self.checks.values())

    def failure_reasons(self) -> list[str]:
        """One phrase per enforced check that failed, with its number and threshold."""
        reasons = []
        if self.enforced and not self.passed:
            reasons.append(f"CLIP ensemble {self.ensemble:.3f} (B/32 {self.mean_b:.3f}, L/14 {self.mean_l:.3f}) "
                           f"against thresholds {self.threshold:.3f} (B {self.threshold_b:.3f}, L {self.threshold_l:.3f})")
        i, l, s = self.identity, self.lip_sync, self.speech
        if i is not None and i.fails_slot:
            missing = sum(d is None for d in i.distances)
            worst = "no face" if i.worst is None else f"worst distance {i.worst:.3f}"
            reasons.append(f"identity: {worst} (same person below {i.max_distance:.2f})"
                           + (f", no face in {missing} of {len(i.distances)} sampled frames" if missing else ""))
        if l is not None and l.fails_slot:
            r = "not measurable" if l.r is None else f"r {l.r:.3f}"
            reasons.append(f"lip sync: {r} below the floor {l.floor:.2f}")
        if s is not None and s.fails_slot:
            lost = [x for x in s.sentences if not x["passed"]]
            if s.wer is None or s.wer > s.max_wer or not lost:
                wer = "no words" if s.wer is None else f"word error rate {s.wer:.2f}"
                reasons.append(f"speech: {wer} above {s.max_wer:.2f} (heard: {s.transcript[:80]!r})")
            for x in lost:
                which = "sentence " + "+".join(str(k) for k in x["sentences"])
                reasons.append(f"speech: {which} has word error rate {x['wer']:.2f}, above the per-sentence "
                               f"{s.max_sentence_wer:.2f} ({x['errors']} errors in {x['words']} words)")
        return reasons


@dataclass
class GenerationResult:
    slot_id: int
    seed: int
    success: bool
    error_msg: Optional[str] = None
    failed_phase: Optional[str] = None
    video_frames: Optional[np.ndarray] = None  # (n_frames, H, W, 3) uint8, only for a request with keep_frames
    n_frames: Optional[int] = None  # frames streamed into the sinks
    audio_waveform: Optional[np.ndarray] = None  # (n_samples,) float32 in [-1, 1]
    sample_rate: int = 24000
    fps: int = 24
    clip_embedding: Optional[np.ndarray] = None  # (512,) float32, L2-normalised
    verification: Optional[VerificationReport] = None
    timings_ms: dict[str, float] = field(default_factory=dict)  # phase -> wall ms
    cpu_s: dict[str, float] = field(default_factory=dict)  # stage -> CPU seconds on the engine's own threads
    spans_ms: dict[str, tuple[float, float]] = field(default_factory=dict)  # phase -> (start, end) since slot start
    generation_time_ms: float = 0.0
    first_frame_ms: Optional[float] = None  # slot start → first frame handed to the sinks
    first_audio_ms: Optional[float] = None  # slot start → first chunk of speech handed to the sinks
    chunks: list[dict[str, Any]] = field(default_factory=list)  # per speech chunk: sentence, timing, check
    # measured on the final audio: {integrated_lufs, true_peak_dbtp, target_lufs, ...} (vortex.program.loudness)
    loudness: Optional[dict[str, Any]] = None
    priority: str = "job"  # live | channel | job (vortex.contracts.requests.Priority)
    vram_peaks: dict[str, dict[str, int]] = field(default_factory=dict)  # stage -> peak allocated/reserved bytes
    profile: str = ""
    stand_ins: list[str] = field(default_factory=list)  # components running on miniature weights
    animation: str = "still"
    speech: dict[str, Any] = field(default_factory=dict)  # speed used, speech length, padding
    actor: dict[str, Any] = field(default_factory=dict)  # where the portrait came from, its framing
    # "input" (bad recipe or portrait: exit 2), "deadline", "cancelled", "verification", "output",
    # "model" (a component or library failed); None for a successful slot
    error_kind: Optional[str] = None
    warnings: list[str] = field(default_factory=list)
    recipe_sha256: str = ""
    proof: Optional[dict[str, str]] = None
    report_path: Optional[Path] = None  # the sidecar written (OUT.json, or OUT.failed.json for a failed slot)
    captions: tuple[Cue, ...] = ()  # the speech's caption cues (vortex.program.captions), slot time
    provenance: Optional[dict[str, Any]] = None  # Content Credentials: who signed the MP4, or why not (vortex.provenance)
    replica: Optional[dict[str, Any]] = None  # where it ran, when an engine spreads slots (vortex.serving); None: here

    def metadata(self) -> dict[str, Any]:
        """Everything but the media arrays, as JSON-ready values (the MP4's sidecar)."""
        return {
            "slot_id": self.slot_id,
            "seed": self.seed,
            "success": self.success,
            "error_msg": self.error_msg,
            "failed_phase": self.failed_phase,
            "profile": self.profile,
            "stand_ins": self.stand_ins,
            "animation": self.animation,
            "fps": self.fps,
            "sample_rate": self.sample_rate,
            "n_frames": self.n_frames,
            "n_samples": None if self.audio_waveform is None else int(self.audio_waveform.shape[0]),
            "error_kind": self.error_kind,
            "speech": self.speech,
            "actor": self.actor,
            "timings_ms": {k: round(v, 2) for k, v in self.timings_ms.items()},
            "cpu_s": {k: round(v, 4) for k, v in self.cpu_s.items()},
            "spans_ms": {k: [round(a, 2), round(b, 2)] for k, (a, b) in self.spans_ms.items()},
            "generation_time_ms": round(self.generation_time_ms, 2),
            "first_frame_ms": None if self.first_frame_ms is None else round(self.first_frame_ms, 2),
            "first_audio_ms": None if self.first_audio_ms is None else round(self.first_audio_ms, 2),
            "chunks": self.chunks,
            "loudness": self.loudness,
            "priority": self.priority,
            "vram_peaks": self.vram_peaks,
            "verification": None if self.verification is None else asdict(self.verification),
            "clip_embedding": None if self.clip_embedding is None else [round(float(x), 7) for x in self.clip_embedding],
            "warnings": self.warnings,
            "recipe_sha256": self.recipe_sha256,
            "proof": self.proof,
            "captions": [c.as_dict() for c in self.captions],
            "provenance": self.provenance,
        }


class ProofHasher:
    """The proof's media hashes, fed as the slot streams: frames in order, audio chunk by chunk.

    The same bytes in the same order as `frames_sha256` / `audio_sha256` hash a whole slot, so a
    streamed slot and one held whole have the same proof."""

    def __init__(self, frames_shape: tuple[int, ...]):
        self._frames = hashlib.sha256(json.dumps(list(frames_shape)).encode())
        self._audio = hashlib.sha256()

    def add_frame(self, frame: np.ndarray) -> None:
        self._frames.update(np.ascontiguousarray(frame).tobytes())

    def add_audio(self, chunk: np.ndarray) -> None:
        self._audio.update(_pcm16(chunk).tobytes())

    def proof(self, recipe_sha256: str, seed: int) -> dict[str, str]:
        return _proof(recipe_sha256, seed, self._frames.hexdigest(), self._audio.hexdigest())


def _pcm16(waveform: np.ndarray) -> np.ndarray:
    """The 16-bit PCM that is written to the file, not the float noise below it."""
    return np.clip(np.round(np.asarray(waveform).astype(np.float64) * 32767.0), -32768, 32767).astype("<i2")


def frames_sha256(frames: np.ndarray) -> str:
    """Hash of the frames' bytes with their shape, so a reshaped buffer cannot collide."""
    h = hashlib.sha256(json.dumps(list(frames.shape)).encode())
    for frame in frames:  # frame by frame: the array may be a broadcast view of one image
        h.update(np.ascontiguousarray(frame).tobytes())
    return h.hexdigest()


def audio_sha256(waveform: np.ndarray) -> str:
    """Hash of the 16-bit PCM that is written to the file, not of float noise below it."""
    return hashlib.sha256(_pcm16(waveform).tobytes()).hexdigest()


def determinism_proof(recipe_sha256: str, seed: int, frames: np.ndarray, waveform: np.ndarray) -> dict[str, str]:
    """SHA-256 over the canonical recipe, the seed and the media hashes: equal inputs, equal proof."""
    return _proof(recipe_sha256, seed, frames_sha256(frames), audio_sha256(waveform))


def _proof(recipe_sha256: str, seed: int, frames_hash: str, audio_hash: str) -> dict[str, str]:
    parts = {
        "recipe_sha256": recipe_sha256,
        "seed": str(seed),
        "frames_sha256": frames_hash,
        "audio_sha256": audio_hash,
    }
    digest = hashlib.sha256("\n".join(f"{k}={v}" for k, v in parts.items()).encode()).hexdigest()
    return {**parts, "proof_sha256": digest}
