"""ConvNeXt-V2 backbone with LivePortrait's heads: the body of the motion extractor M.

Layer names and nesting (`downsample_layers.i.j`, `stages.i.j`, `fc_*`) follow the public
weight file; drop-path is omitted because it is the identity at inference.
"""

from __future__ import annotations

from typing import TypedDict

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class MotionInfo(TypedDict):
    """Raw motion-extractor output, as the public code returns it."""

    pitch: Tensor  # (B, num_bins) logits
    yaw: Tensor  # (B, num_bins) logits
    roll: Tensor  # (B, num_bins) logits
    t: Tensor  # (B, 3)
    exp: Tensor  # (B, 3·K) expression deltas, flattened
    scale: Tensor  # (B, 1)
    kp: Tensor  # (B, 3·K) canonical keypoints, flattened


class ChannelsFirstLayerNorm(nn.Module):
    """LayerNorm over the channel axis of an (N, C, H, W) tensor.

    Computed by F.layer_norm on a channels-last view: the same function as normalising by hand,
    but with fp32 accumulation inside the kernel, so half precision does not overflow.
    """

    def __init__(self, channels: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        x = F.layer_norm(x.permute(0, 2, 3, 1), self.weight.shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class GRN(nn.Module):
    """Global response normalisation (ConvNeXt-V2), on channels-last tensors.

    Evaluated in fp32 whatever the dtype (as autocast does in the public half-precision
    inference): the spatial L2 norms of the widest stage can exceed fp16's range.
    """

    def __init__(self, dim: int):
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(1, 1, 1, dim))
        self.beta = nn.Parameter(torch.zeros(1, 1, 1, dim))

    def forward(self, x: Tensor) -> Tensor:
        x32 = x.float()
        spatial_norm = torch.linalg.vector_norm(x32, ord=2, dim=(1, 2), keepdim=True)
        relative = spatial_norm / (spatial_norm.mean(dim=-1, keepdim=True) + 1e-6)
        out = self.gamma.float() * (x32 * relative) + self.beta.float() + x32
        return out.to(x.dtype)


class Block(nn.Module):
    """Depthwise 7×7 conv → LayerNorm → MLP (×4) with GELU and GRN, residual."""

    def __init__(self, dim: int):
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, kernel_size=7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.grn = GRN(4 * dim)
        self.pwconv2 = nn.Linear(4 * dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        y = self.dwconv(x).permute(0, 2, 3, 1)  # the MLP works channels-last
        y = self.pwconv2(self.grn(F.gelu(self.pwconv1(self.norm(y)))))
        return x + y.permute(0, 3, 1, 2)


class ConvNeXtV2(nn.Module):
    def __init__(self, depths: tuple[int, ...], dims: tuple[int, ...], num_kp: int, num_bins: int, in_chans: int = 3):
        super().__init__()
        stem = nn.Sequential(nn.Conv2d(in_chans, dims[0], kernel_size=4, stride=4), ChannelsFirstLayerNorm(dims[0]))
        downsamples = [
            nn.Sequential(ChannelsFirstLayerNorm(dims[i]), nn.Conv2d(dims[i], dims[i + 1], kernel_size=2, stride=2))
            for i in range(len(dims) - 1)
        ]
        self.downsample_layers = nn.ModuleList([stem, *downsamples])
        self.stages = nn.ModuleList(
            nn.Sequential(*(Block(dim) for _ in range(depth))) for dim, depth in zip(dims, depths)
        )
        self.norm = nn.LayerNorm(dims[-1], eps=1e-6)

        width = dims[-1]
        self.fc_kp = nn.Linear(width, 3 * num_kp)
        self.fc_scale = nn.Linear(width, 1)
        self.fc_pitch = nn.Linear(width, num_bins)
        self.fc_yaw = nn.Linear(width, num_bins)
        self.fc_roll = nn.Linear(width, num_bins)
        self.fc_t = nn.Linear(width, 3)
        self.fc_exp = nn.Linear(width, 3 * num_kp)

    def forward(self, x: Tensor) -> MotionInfo:
        for downsample, stage in zip(self.downsample_layers, self.stages):
            x = stage(downsample(x))
        pooled = self.norm(x.mean(dim=(-2, -1)))  # global average pool
        return MotionInfo(
            pitch=self.fc_pitch(pooled),
            yaw=self.fc_yaw(pooled),
            roll=self.fc_roll(pooled),
            t=self.fc_t(pooled),
            exp=self.fc_exp(pooled),
            scale=self.fc_scale(pooled),
            kp=self.fc_kp(pooled),
        )
