"""What comes out of one slot: the media, the verification, the timings and a determinism proof."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np


@dataclass(frozen=True)
class VerificationReport:
    """CLIP agreement between the sampled frames and the prompt, on the raw-cosine scale."""

    frame_indices: list[int]
    cosine_b: list[float]  # ViT-B/32, one per sampled frame
    cosine_l: list[float]  # ViT-L/14, one per sampled frame
    mean_b: float
    mean_l: float
    ensemble: float  # weight_b * mean_b + weight_l * mean_l
    threshold_b: float
    threshold_l: float
    threshold: float  # on the ensemble; the recipe's clip_threshold when it gives one
    passed: bool
    enforced: bool  # False on profiles whose CLIP weights are random stand-ins
    notes: list[str] = field(default_factory=list)
    # Image-to-image cosine (same ensemble weights) of each sampled frame against the source
    # portrait; None when no portrait was given. The slot passes only if the lowest is above threshold.
    identity: Optional[list[float]] = None
    identity_threshold: Optional[float] = None

    @property
    def identity_min(self) -> Optional[float]:
        return None if not self.identity else min(self.identity)

    @property
    def identity_passed(self) -> Optional[bool]:
        return None if self.identity_min is None else self.identity_min >= self.identity_threshold

    @property
    def fails_slot(self) -> bool:
        return self.enforced and not self.passed


@dataclass
class GenerationResult:
    slot_id: int
    seed: int
    success: bool
    error_msg: Optional[str] = None
    failed_phase: Optional[str] = None
    video_frames: Optional[np.ndarray] = None  # (n_frames, H, W, 3) uint8
    audio_waveform: Optional[np.ndarray] = None  # (n_samples,) float32 in [-1, 1]
    sample_rate: int = 24000
    fps: int = 24
    clip_embedding: Optional[np.ndarray] = None  # (512,) float32, L2-normalised
    verification: Optional[VerificationReport] = None
    timings_ms: dict[str, float] = field(default_factory=dict)  # phase -> wall ms
    spans_ms: dict[str, tuple[float, float]] = field(default_factory=dict)  # phase -> (start, end) since slot start
    generation_time_ms: float = 0.0
    first_frame_ms: Optional[float] = None  # slot start → first frame handed to the encoder
    vram_peaks: dict[str, dict[str, int]] = field(default_factory=dict)  # stage -> peak allocated/reserved bytes
    profile: str = ""
    stand_ins: list[str] = field(default_factory=list)  # components running on miniature weights
    animation: str = "still"
    speech: dict[str, Any] = field(default_factory=dict)  # speed used, speech length, padding
    warnings: list[str] = field(default_factory=list)
    recipe_sha256: str = ""
    proof: Optional[dict[str, str]] = None
    report_path: Optional[Path] = None  # the sidecar written (OUT.json, or OUT.failed.json for a failed slot)

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
            "n_frames": None if self.video_frames is None else int(self.video_frames.shape[0]),
            "n_samples": None if self.audio_waveform is None else int(self.audio_waveform.shape[0]),
            "speech": self.speech,
            "timings_ms": {k: round(v, 2) for k, v in self.timings_ms.items()},
            "spans_ms": {k: [round(a, 2), round(b, 2)] for k, (a, b) in self.spans_ms.items()},
            "generation_time_ms": round(self.generation_time_ms, 2),
            "first_frame_ms": None if self.first_frame_ms is None else round(self.first_frame_ms, 2),
            "vram_peaks": self.vram_peaks,
            "verification": None if self.verification is None else asdict(self.verification),
            "clip_embedding": None if self.clip_embedding is None else [round(float(x), 7) for x in self.clip_embedding],
            "warnings": self.warnings,
            "recipe_sha256": self.recipe_sha256,
            "proof": self.proof,
        }


def frames_sha256(frames: np.ndarray) -> str:
    """Hash of the frames' bytes with their shape, so a reshaped buffer cannot collide."""
    h = hashlib.sha256(json.dumps(list(frames.shape)).encode())
    for frame in frames:  # frame by frame: the array may be a broadcast view of one image
        h.update(np.ascontiguousarray(frame).tobytes())
    return h.hexdigest()


def audio_sha256(waveform: np.ndarray) -> str:
    """Hash of the 16-bit PCM that is written to the file, not of float noise below it."""
    pcm = np.clip(np.round(waveform.astype(np.float64) * 32767.0), -32768, 32767).astype("<i2")
    return hashlib.sha256(pcm.tobytes()).hexdigest()


def determinism_proof(recipe_sha256: str, seed: int, frames: np.ndarray, waveform: np.ndarray) -> dict[str, str]:
    """SHA-256 over the canonical recipe, the seed and the media hashes: equal inputs, equal proof."""
    parts = {
        "recipe_sha256": recipe_sha256,
        "seed": str(seed),
        "frames_sha256": frames_sha256(frames),
        "audio_sha256": audio_sha256(waveform),
    }
    digest = hashlib.sha256("\n".join(f"{k}={v}" for k, v in parts.items()).encode()).hexdigest()
    return {**parts, "proof_sha256": digest}
