"""The slot's components, typed: what each stage calls, instead of `registry.get_model(name)`.

The registry (vortex.engine.registry) loads every component once and keeps the load records;
`Components.of(registry)` hands the slot typed references. Every animator has one interface
(`Animator`), so the slot has no branch per animator: LivePortrait and the preview animate the
framed face crop (pasted back into the portrait), and the still animator holds the portrait.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional, Protocol, Sequence

import numpy as np
import torch

from ..config import VortexConfig
from ..errors import VortexInitializationError
from ..motion import DrivingSequence

if TYPE_CHECKING:
    from ..asr import WhisperTranscriber
    from ..faces import FaceAnalyzer
    from ..models.clip import ClipVerifier
    from ..models.flux import FluxActor
    from ..models.kokoro import KokoroVoice
    from .registry import ModelRegistry


class Animator(Protocol):
    name: str  # written in the result as `animation`
    crops_face: bool  # renders the framed face crop, which the slot pastes back into the portrait
    needs_landmarks: bool  # prepare() needs the face's 68 landmarks (framing must be on)
    batches_streams: bool  # render_many() renders several streams' frames in one call (worth it on a GPU)

    def prepare(self, image: np.ndarray, landmarks: Optional[np.ndarray]) -> Any:
        """Once per slot: what every frame of this portrait (or face crop) reuses."""

    def render(self, source: Any, driving: DrivingSequence, out: torch.Tensor) -> None:
        """The frames of `driving`'s rows into `out` ((B, 3, S, S) uint8, on the render device)."""

    def render_many(self, items: Sequence[tuple[Any, DrivingSequence, torch.Tensor]]) -> None:
        """Several `render` calls as one (only where batches_streams)."""


class StillAnimator:
    """The portrait held still: `pipeline.animation: still` (a channel's card, an encode benchmark)."""

    name = "still"
    crops_face = False
    needs_landmarks = False
    batches_streams = False

    def __init__(self, device: torch.device):
        self.device = device

    def prepare(self, image: np.ndarray, landmarks: Optional[np.ndarray] = None) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).to(self.device)

    def render(self, source: torch.Tensor, driving: Optional[DrivingSequence], out: torch.Tensor) -> None:
        out.copy_(source.unsqueeze(0).expand_as(out))

    def render_many(self, items: Sequence[tuple[Any, DrivingSequence, torch.Tensor]]) -> None:
        for source, driving, out in items:
            self.render(source, driving, out)


@dataclass(frozen=True)
class Components:
    voice: "KokoroVoice"
    verifier: "ClipVerifier"
    animator: Animator
    actor: Optional["FluxActor"]  # None: the portrait is a stand-in or the recipe's actor_image
    faces: Optional["FaceAnalyzer"]  # None: framing (and the face checks) off
    transcriber: Optional["WhisperTranscriber"]  # None: the speech check off

    @classmethod
    def of(cls, registry: "ModelRegistry", cfg: VortexConfig, device: torch.device) -> "Components":
        loaded = set(registry.names)
        animation = cfg.pipeline.animation
        animator: Animator = StillAnimator(device) if animation == "still" else registry.get_model(animation)
        if animator.needs_landmarks and "faces" not in loaded:
            raise VortexInitializationError(f"the {animator.name} animator needs a framed face: faces.framing must be on")
        return cls(
            voice=registry.get_model("kokoro"),
            verifier=registry.get_model("clip"),
            animator=animator,
            actor=registry.get_model("flux") if "flux" in loaded else None,
            faces=registry.get_model("faces") if "faces" in loaded else None,
            transcriber=registry.get_model("whisper") if "whisper" in loaded else None,
        )
