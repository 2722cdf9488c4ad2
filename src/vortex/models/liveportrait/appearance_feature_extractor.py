"""Appearance feature extractor F: the source portrait → a 3-D feature volume."""

from __future__ import annotations

from torch import Tensor, nn

from .config import AppearanceFeatureExtractorConfig
from .util import DownBlock2d, ResBlock3d, SameBlock2d


class AppearanceFeatureExtractor(nn.Module):
    """(B, 3, 256, 256) in [0, 1] → (B, C, D, 64, 64); full size C = 32, D = 16.

    A 2-D encoder whose channels are then read as C channels × D depth slices, refined by 3-D
    residual blocks. Runs once per source image.
    """

    def __init__(self, config: AppearanceFeatureExtractorConfig):
        super().__init__()
        c = config
        self.config = config
        self.first = SameBlock2d(c.image_channel, c.block_expansion)
        widths = [min(c.max_features, c.block_expansion * 2**i) for i in range(c.num_down_blocks + 1)]
        self.down_blocks = nn.ModuleList(DownBlock2d(a, b) for a, b in zip(widths, widths[1:]))
        self.second = nn.Conv2d(widths[-1], c.max_features, kernel_size=1)
        # Named '3dr0', '3dr1', ... in the public file.
        self.resblocks_3d = nn.Sequential()
        for i in range(c.num_resblocks):
            self.resblocks_3d.add_module(f"3dr{i}", ResBlock3d(c.reshape_channel))

    def forward(self, image: Tensor) -> Tensor:
        x = self.first(image)
        for block in self.down_blocks:
            x = block(x)
        x = self.second(x)
        b, _, h, w = x.shape
        volume = x.view(b, self.config.reshape_channel, self.config.reshape_depth, h, w)
        return self.resblocks_3d(volume)
