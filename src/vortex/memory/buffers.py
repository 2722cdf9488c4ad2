"""Buffers allocated once when the engine starts and reused by every slot, so device memory does
not grow from slot to slot and no slot pays for an allocation: the actor portrait, the audio
track, and a small ring of frames on their way to the encoder (never a 1080-frame tensor)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..config import BuffersConfig


@dataclass
class SlotBuffers:
    actor: torch.Tensor  # (3, H, W) uint8: the slot's portrait
    audio: torch.Tensor  # (max_samples,) float32: the slot's waveform
    frame_ring: torch.Tensor  # (ring_frames, 3, H, W) uint8: rendered frames awaiting the encoder

    @classmethod
    def allocate(cls, cfg: BuffersConfig, device: str | torch.device) -> "SlotBuffers":
        a, v = cfg.actor, cfg.video
        return cls(
            actor=torch.zeros((a.channels, a.height, a.width), dtype=torch.uint8, device=device),
            audio=torch.zeros(cfg.audio.samples, dtype=torch.float32, device=device),
            frame_ring=torch.zeros((v.ring_frames, v.channels, v.height, v.width), dtype=torch.uint8, device=device),
        )

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (self.actor, self.audio, self.frame_ring))

    def data_ptrs(self) -> tuple[int, int, int]:
        """Addresses of the three buffers: equal before and after a slot means nothing was reallocated."""
        return self.actor.data_ptr(), self.audio.data_ptr(), self.frame_ring.data_ptr()

    def load_actor(self, image: np.ndarray) -> torch.Tensor:
        """Copy an (H, W, 3) uint8 portrait into the actor buffer and return it."""
        expected = tuple(self.actor.shape[1:]) + (self.actor.shape[0],)
        if image.shape != expected or image.dtype != np.uint8:
            raise ValueError(f"actor image must be {expected} uint8, got {image.shape} {image.dtype}")
        self.actor.copy_(torch.from_numpy(np.require(image, requirements=["C", "W"])).permute(2, 0, 1))
        return self.actor

    def load_audio(self, waveform: np.ndarray) -> torch.Tensor:
        """Copy a waveform into the head of the audio buffer and return that view."""
        n = waveform.shape[0]
        if n > self.audio.shape[0]:
            raise ValueError(f"waveform of {n} samples exceeds the {self.audio.shape[0]}-sample audio buffer")
        view = self.audio[:n]
        view.copy_(torch.from_numpy(np.ascontiguousarray(waveform, dtype=np.float32)))
        return view
