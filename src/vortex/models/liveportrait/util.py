"""Building blocks shared by LivePortrait's networks, and the coordinate grid its keypoints live on.

Attribute names (`conv`, `norm`, `conv1`, ...) are those of the public weight files.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class SameBlock2d(nn.Module):
    """Conv → BatchNorm → (leaky) ReLU at constant resolution."""

    def __init__(self, in_features: int, out_features: int, lrelu: bool = False):
        super().__init__()
        self.conv = nn.Conv2d(in_features, out_features, kernel_size=3, padding=1)
        self.norm = nn.BatchNorm2d(out_features, affine=True)
        self.lrelu = lrelu

    def forward(self, x: Tensor) -> Tensor:
        x = self.norm(self.conv(x))
        return F.leaky_relu(x) if self.lrelu else F.relu(x)


class DownBlock2d(nn.Module):
    """Conv → BatchNorm → ReLU → 2× average pooling."""

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.conv = nn.Conv2d(in_features, out_features, kernel_size=3, padding=1)
        self.norm = nn.BatchNorm2d(out_features, affine=True)

    def forward(self, x: Tensor) -> Tensor:
        return F.avg_pool2d(F.relu(self.norm(self.conv(x))), kernel_size=2)


class DownBlock3d(nn.Module):
    """3-D conv → BatchNorm → ReLU → average pooling over height and width only (depth is kept)."""

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.conv = nn.Conv3d(in_features, out_features, kernel_size=3, padding=1)
        self.norm = nn.BatchNorm3d(out_features, affine=True)

    def forward(self, x: Tensor) -> Tensor:
        x = F.relu(self.norm(self.conv(x)))
        # A (1, 2, 2) 3-D pool is a 2-D pool of each depth slice; the 2-D kernel also has CPU
        # half-precision support, which the 3-D one lacks.
        b, c, d, h, w = x.shape
        return F.avg_pool2d(x.reshape(b, c * d, h, w), kernel_size=2).view(b, c, d, h // 2, w // 2)


class UpBlock3d(nn.Module):
    """Nearest 2× upsampling of height and width → 3-D conv → BatchNorm → ReLU."""

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.conv = nn.Conv3d(in_features, out_features, kernel_size=3, padding=1)
        self.norm = nn.BatchNorm3d(out_features, affine=True)

    def forward(self, x: Tensor) -> Tensor:
        x = F.interpolate(x, scale_factor=(1.0, 2.0, 2.0))
        return F.relu(self.norm(self.conv(x)))


class ResBlock3d(nn.Module):
    """Pre-activation residual block on the 3-D feature volume."""

    def __init__(self, features: int):
        super().__init__()
        self.conv1 = nn.Conv3d(features, features, kernel_size=3, padding=1)
        self.conv2 = nn.Conv3d(features, features, kernel_size=3, padding=1)
        self.norm1 = nn.BatchNorm3d(features, affine=True)
        self.norm2 = nn.BatchNorm3d(features, affine=True)

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv1(F.relu(self.norm1(x)))
        out = self.conv2(F.relu(self.norm2(out)))
        return x + out


def make_coordinate_grid(depth: int, height: int, width: int, like: Tensor) -> Tensor:
    """(D, H, W, 3) grid of (x, y, z) in [-1, 1]: x to the right, y down, z inward.

    The keypoints and `grid_sample` share this convention, so the order (x from width, y from
    height, z from depth) must not change.
    """
    def axis(n: int) -> Tensor:
        return 2 * (torch.arange(n, device=like.device, dtype=like.dtype) / (n - 1)) - 1

    z, y, x = torch.meshgrid(axis(depth), axis(height), axis(width), indexing="ij")
    return torch.stack([x, y, z], dim=-1)


def kp2gaussian(kp: Tensor, spatial_size: tuple[int, int, int], kp_variance: float) -> Tensor:
    """(B, K, 3) keypoints → (B, K, D, H, W) unnormalised Gaussian bumps around each keypoint."""
    grid = make_coordinate_grid(*spatial_size, like=kp)  # (D, H, W, 3)
    diff = grid[None, None] - kp[:, :, None, None, None, :]
    return torch.exp(-0.5 * diff.pow(2).sum(-1) / kp_variance)
