"""Dense motion: from 21 source/driving keypoint pairs to a per-voxel flow and an occlusion map.

Each keypoint proposes a translation of the whole volume (driving → source); an hourglass looks
at the source features moved by each proposal, plus Gaussian heat maps of where the keypoints
went, and predicts a soft assignment of voxels to proposals (index 0 = no motion, background).
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import DenseMotionConfig
from .util import DownBlock3d, UpBlock3d, kp2gaussian, make_coordinate_grid

KP_VARIANCE = 0.01  # width² of the keypoint heat maps, in grid units (public value)


def _hourglass_widths(block_expansion: int, max_features: int, num_blocks: int) -> list[int]:
    return [min(max_features, block_expansion * 2**i) for i in range(num_blocks + 1)]


class Encoder(nn.Module):
    def __init__(self, block_expansion: int, in_features: int, num_blocks: int, max_features: int):
        super().__init__()
        widths = _hourglass_widths(block_expansion, max_features, num_blocks)
        ins = [in_features] + widths[1:-1]
        self.down_blocks = nn.ModuleList(DownBlock3d(i, o) for i, o in zip(ins, widths[1:]))

    def forward(self, x: Tensor) -> list[Tensor]:
        skips = [x]
        for block in self.down_blocks:
            skips.append(block(skips[-1]))
        return skips


class Decoder(nn.Module):
    def __init__(self, block_expansion: int, in_features: int, num_blocks: int, max_features: int):
        super().__init__()
        widths = _hourglass_widths(block_expansion, max_features, num_blocks)
        blocks = []
        for i in reversed(range(num_blocks)):
            # The deepest block sees the bottleneck alone; the others the upsampled map + a skip.
            factor = 1 if i == num_blocks - 1 else 2
            blocks.append(UpBlock3d(factor * widths[i + 1], widths[i]))
        self.up_blocks = nn.ModuleList(blocks)
        self.out_filters = block_expansion + in_features
        self.conv = nn.Conv3d(self.out_filters, self.out_filters, kernel_size=3, padding=1)
        self.norm = nn.BatchNorm3d(self.out_filters, affine=True)

    def forward(self, skips: list[Tensor]) -> Tensor:
        x = skips[-1]
        for block, skip in zip(self.up_blocks, reversed(skips[:-1])):
            x = torch.cat([block(x), skip], dim=1)
        return F.relu(self.norm(self.conv(x)))


class Hourglass(nn.Module):
    """3-D U-Net that halves height and width `num_blocks` times (depth is kept)."""

    def __init__(self, block_expansion: int, in_features: int, num_blocks: int, max_features: int):
        super().__init__()
        self.encoder = Encoder(block_expansion, in_features, num_blocks, max_features)
        self.decoder = Decoder(block_expansion, in_features, num_blocks, max_features)
        self.out_filters = self.decoder.out_filters

    def forward(self, x: Tensor) -> Tensor:
        return self.decoder(self.encoder(x))


class DenseMotionNetwork(nn.Module):
    def __init__(self, config: DenseMotionConfig, num_kp: int, feature_channel: int, estimate_occlusion_map: bool):
        super().__init__()
        c = config
        self.num_kp = num_kp
        self.hourglass = Hourglass(c.block_expansion, (num_kp + 1) * (c.compress + 1), c.num_blocks, c.max_features)
        k = c.mask_kernel_size
        self.mask = nn.Conv3d(self.hourglass.out_filters, num_kp + 1, kernel_size=k, padding=k // 2)
        self.compress = nn.Conv3d(feature_channel, c.compress, kernel_size=1)
        self.norm = nn.BatchNorm3d(c.compress, affine=True)
        self.occlusion: Optional[nn.Conv2d] = None
        if estimate_occlusion_map:
            self.occlusion = nn.Conv2d(self.hourglass.out_filters * c.reshape_depth, 1, kernel_size=7, padding=3)

    def sparse_motions(self, shape: tuple[int, int, int], kp_source: Tensor, kp_driving: Tensor) -> Tensor:
        """(B, K+1, D, H, W, 3): for every voxel, where to sample the source under each proposal."""
        identity = make_coordinate_grid(*shape, like=kp_source)[None, None]  # (1, 1, D, H, W, 3)
        per_keypoint = identity - kp_driving[:, :, None, None, None, :] + kp_source[:, :, None, None, None, :]
        background = identity.expand(kp_source.shape[0], 1, *identity.shape[2:])
        return torch.cat([background, per_keypoint], dim=1)

    def heatmaps(self, shape: tuple[int, int, int], kp_source: Tensor, kp_driving: Tensor) -> Tensor:
        """(B, K+1, 1, D, H, W): driving minus source Gaussians; zeros for the background."""
        heat = kp2gaussian(kp_driving, shape, KP_VARIANCE) - kp2gaussian(kp_source, shape, KP_VARIANCE)
        # The Gaussians' tails fall below fp32's smallest normal number (~1e-38): subnormals, which
        # x86 CPUs multiply ~100× slower, made the hourglass convolutions that read them 2-3× slower
        # in all. They are zero for every purpose (fp16 cannot even hold them), so they are set to 0.
        heat = heat.masked_fill(heat.abs() < torch.finfo(heat.dtype).tiny, 0.0)
        background = heat.new_zeros(heat.shape[0], 1, *shape)
        return torch.cat([background, heat], dim=1).unsqueeze(2)

    def forward(self, feature: Tensor, kp_source: Tensor, kp_driving: Tensor) -> dict[str, Tensor]:
        b, _, d, h, w = feature.shape
        k1 = self.num_kp + 1
        compressed = F.relu(self.norm(self.compress(feature)))  # (B, compress, D, H, W)

        # Geometry in fp32 whatever the network's dtype: keypoint shifts are small (≈0.01).
        kp_source, kp_driving = kp_source.float(), kp_driving.float()
        motions = self.sparse_motions((d, h, w), kp_source, kp_driving)

        repeated = compressed.unsqueeze(1).expand(b, k1, *compressed.shape[1:]).reshape(b * k1, -1, d, h, w)
        grid = motions.reshape(b * k1, d, h, w, 3).to(compressed.dtype)
        deformed = F.grid_sample(repeated, grid, align_corners=False).view(b, k1, -1, d, h, w)

        heat = self.heatmaps((d, h, w), kp_source, kp_driving).to(deformed.dtype)
        # Per proposal: [heat map, deformed features]; the channel order is part of the weights.
        prediction = self.hourglass(torch.cat([heat, deformed], dim=2).view(b, -1, d, h, w))

        mask = F.softmax(self.mask(prediction).float(), dim=1)  # (B, K+1, D, H, W)
        deformation = (motions * mask.unsqueeze(-1)).sum(dim=1)  # (B, D, H, W, 3)
        out = {"mask": mask.to(feature.dtype), "deformation": deformation}
        if self.occlusion is not None:
            out["occlusion_map"] = torch.sigmoid(self.occlusion(prediction.reshape(b, -1, h, w)))
        return out
