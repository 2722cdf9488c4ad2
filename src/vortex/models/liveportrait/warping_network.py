"""Warping network W: moves the source feature volume from the source keypoints to the driving ones."""

from __future__ import annotations

from typing import Optional, TypedDict

import torch.nn.functional as F
from torch import Tensor, nn

from .config import WarpingNetworkConfig
from .dense_motion import DenseMotionNetwork
from .util import SameBlock2d


class WarpOutput(TypedDict):
    out: Tensor  # (B, G's input width, 64, 64): the warped features G decodes
    occlusion_map: Optional[Tensor]  # (B, 1, 64, 64) in [0, 1], None without occlusion estimation
    deformation: Tensor  # (B, D, 64, 64, 3) sampling grid, fp32


class WarpingNetwork(nn.Module):
    """(feature volume, x_s, x_d) → 2-D features for G, masked by the predicted occlusion.

    Keypoints are the transformed ones, (B, 21, 3), in the volume's [-1, 1] grid. Runs per frame.
    """

    def __init__(self, config: WarpingNetworkConfig):
        super().__init__()
        c = config
        self.config = config
        self.dense_motion_network = DenseMotionNetwork(
            c.dense_motion, num_kp=c.num_kp, feature_channel=c.reshape_channel,
            estimate_occlusion_map=c.estimate_occlusion_map,
        )
        width = c.block_expansion * 2**c.num_down_blocks
        self.third = SameBlock2d(c.max_features, width, lrelu=True)
        self.fourth = nn.Conv2d(width, width, kernel_size=1)

    def forward(self, feature_3d: Tensor, *, kp_source: Tensor, kp_driving: Tensor) -> WarpOutput:
        # Keyword-only: the public forward takes (feature, kp_driving, kp_source) positionally.
        motion = self.dense_motion_network(feature_3d, kp_source=kp_source, kp_driving=kp_driving)
        deformation = motion["deformation"]
        warped = F.grid_sample(feature_3d, deformation.to(feature_3d.dtype), align_corners=False)
        b, c, d, h, w = warped.shape
        out = self.fourth(self.third(warped.view(b, c * d, h, w)))
        occlusion = motion.get("occlusion_map")
        if occlusion is not None:
            out = out * occlusion
        return WarpOutput(out=out, occlusion_map=occlusion, deformation=deformation)
