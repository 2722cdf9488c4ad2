"""Buffers allocated once when the engine starts and reused by every slot, so device memory does
not grow from slot to slot and no slot pays for an allocation: a small ring of frames on their way
to the host (never a 1080-frame tensor) and, where faces are framed, a ring of face crops that the
animator renders and the render queue pastes back into the portrait (vortex.engine.render)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from ..config import BuffersConfig


@dataclass
class SlotBuffers:
    frame_ring: torch.Tensor  # (ring_frames, 3, H, W) uint8: rendered frames awaiting the host copy
    crop_ring: Optional[torch.Tensor] = None  # (ring_frames, 3, S, S) uint8: face crops before paste-back

    @classmethod
    def allocate(cls, cfg: BuffersConfig, device: str | torch.device, crop_size: Optional[int] = None) -> "SlotBuffers":
        v = cfg.video
        crops = None if crop_size is None else torch.zeros((v.ring_frames, v.channels, crop_size, crop_size),
                                                           dtype=torch.uint8, device=device)
        return cls(frame_ring=torch.zeros((v.ring_frames, v.channels, v.height, v.width), dtype=torch.uint8, device=device),
                   crop_ring=crops)

    @property
    def tensors(self) -> tuple[torch.Tensor, ...]:
        return tuple(t for t in (self.frame_ring, self.crop_ring) if t is not None)

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.tensors)

    def data_ptrs(self) -> tuple[int, ...]:
        """Addresses of the buffers: equal before and after a slot means nothing was reallocated."""
        return tuple(t.data_ptr() for t in self.tensors)
