"""Stitching (S) and eye / lip retargeting MLPs: small corrections in keypoint space.

- stitching: [x_s, x_d] (126) → 65: 63 added to x_d, the last 2 to every keypoint's x and y,
  so the animated face pastes back onto the still shoulders without a seam;
- eye: [x_s, c_s_eyes (2), c_d_eyes (1)] (66) → Δx_d (63), to reach a target eye-open ratio;
- lip: [x_s, c_s_lip (1), c_d_lip (1)] (65) → Δx_d (63), to reach a target lip-open ratio.

In the public file each is a state dict under 'retarget_shoulder', 'retarget_eye' and
'retarget_mouth', with keys prefixed 'module.' (saved from DataParallel).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import MlpConfig


class RetargetingMLP(nn.Module):
    """Linear → ReLU → … → Linear (held in `mlp`, as in the public file)."""

    def __init__(self, config: MlpConfig):
        super().__init__()
        self.config = config
        sizes = [config.input_size, *config.hidden_sizes]
        layers: list[nn.Module] = []
        for a, b in zip(sizes, sizes[1:]):
            layers += [nn.Linear(a, b), nn.ReLU()]
        layers.append(nn.Linear(sizes[-1], config.output_size))
        self.mlp = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.mlp(x)


def stitch(stitching: RetargetingMLP, kp_source: Tensor, kp_driving: Tensor) -> Tensor:
    """x_d corrected by the stitching MLP, as the public inference applies it. (B, K, 3) → (B, K, 3)."""
    b, k, _ = kp_driving.shape
    delta = stitching(_concat(kp_source, kp_driving))
    moved = kp_driving + delta[:, : 3 * k].reshape(b, k, 3)
    shift_xy = delta[:, 3 * k : 3 * k + 2].reshape(b, 1, 2)
    return moved + F.pad(shift_xy, (0, 1))  # z is not shifted


def retarget_eye(mlp: RetargetingMLP, kp_source: Tensor, eye_ratios: Tensor) -> Tensor:
    """Δx_d (B, K, 3) from x_s (B, K, 3) and [c_s_left, c_s_right, c_d] eye-open ratios (B, 3)."""
    return mlp(_concat(kp_source, eye_ratios)).reshape(kp_source.shape)


def retarget_lip(mlp: RetargetingMLP, kp_source: Tensor, lip_ratios: Tensor) -> Tensor:
    """Δx_d (B, K, 3) from x_s (B, K, 3) and [c_s, c_d] lip-open ratios (B, 2)."""
    return mlp(_concat(kp_source, lip_ratios)).reshape(kp_source.shape)


def _concat(a: Tensor, b: Tensor) -> Tensor:
    return torch.cat([a.flatten(1), b.flatten(1)], dim=1)
