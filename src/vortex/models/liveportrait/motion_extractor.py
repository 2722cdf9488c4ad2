"""Motion extractor M: one image → canonical keypoints, head pose, translation, expression, scale."""

from __future__ import annotations

from torch import Tensor, nn

from .config import MotionExtractorConfig
from .convnextv2 import ConvNeXtV2, MotionInfo


class MotionExtractor(nn.Module):
    """A ConvNeXt-V2 regressor (the public file nests it under `detector.`).

    Input: (B, 3, 256, 256) RGB in [0, 1]. Output: `MotionInfo` with pose logits over 66 bins
    and flattened (B, 63) keypoints / expression; `camera.transform_keypoint` composes them.
    """

    def __init__(self, config: MotionExtractorConfig):
        super().__init__()
        self.config = config
        self.detector = ConvNeXtV2(config.depths, config.dims, num_kp=config.num_kp, num_bins=config.num_bins)

    def forward(self, image: Tensor) -> MotionInfo:
        return self.detector(image)
