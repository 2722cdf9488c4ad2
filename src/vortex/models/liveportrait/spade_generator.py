"""SPADE generator G: warped features (B, 256, 64, 64) → image (B, 3, 512, 512) in [0, 1].

Every residual block is modulated (SPADE) by the warped features themselves, and its
convolutions are spectrally normalised; the last convolution upsamples by pixel shuffle.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import SpadeGeneratorConfig

_POWER_ITERATIONS_AT_INIT = 20  # so that seeded-random weights start with a meaningful σ


class SpectralNormConv2d(nn.Module):
    """Conv2d whose weight is divided by its largest singular value σ ≈ uᵀ W v.

    Stores what `torch.nn.utils.spectral_norm` stores (`weight_orig`, buffers `weight_u`,
    `weight_v`), so the public file loads as is. Inference only: u and v are the trained ones and
    are not updated, exactly as the public module behaves in eval mode.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, padding: int = 0, bias: bool = True):
        super().__init__()
        self.padding = padding
        self.weight_orig = nn.Parameter(torch.empty(out_channels, in_channels, kernel_size, kernel_size))
        self.register_parameter("bias", nn.Parameter(torch.empty(out_channels)) if bias else None)
        self.register_buffer("weight_u", torch.empty(out_channels))
        self.register_buffer("weight_v", torch.empty(in_channels * kernel_size * kernel_size))
        self._init_like_conv2d()

    @torch.no_grad()
    def _init_like_conv2d(self) -> None:
        # nn.Conv2d's default initialisation, then σ's singular vectors by power iteration.
        nn.init.kaiming_uniform_(self.weight_orig, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1 / math.sqrt(self.weight_v.numel())
            nn.init.uniform_(self.bias, -bound, bound)
        if self.weight_orig.is_meta:  # shapes only: nothing to iterate on
            return
        matrix = self.weight_orig.flatten(1)
        u = F.normalize(torch.randn_like(self.weight_u), dim=0)
        v = F.normalize(torch.randn_like(self.weight_v), dim=0)
        for _ in range(_POWER_ITERATIONS_AT_INIT):
            v = F.normalize(matrix.t() @ u, dim=0)
            u = F.normalize(matrix @ v, dim=0)
        self.weight_u.copy_(u)
        self.weight_v.copy_(v)

    def normalized_weight(self) -> Tensor:
        matrix = self.weight_orig.float().flatten(1)
        sigma = torch.dot(self.weight_u.float(), matrix @ self.weight_v.float())
        return (self.weight_orig.float() / sigma).to(self.weight_orig.dtype)

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.normalized_weight(), self.bias, padding=self.padding)


class SPADE(nn.Module):
    """Instance-normalise x, then scale and shift it per pixel by maps predicted from `segmap`."""

    def __init__(self, norm_nc: int, label_nc: int, hidden: int):
        super().__init__()
        self.mlp_shared = nn.Sequential(nn.Conv2d(label_nc, hidden, kernel_size=3, padding=1), nn.ReLU())
        self.mlp_gamma = nn.Conv2d(hidden, norm_nc, kernel_size=3, padding=1)
        self.mlp_beta = nn.Conv2d(hidden, norm_nc, kernel_size=3, padding=1)

    def forward(self, x: Tensor, segmap: Tensor) -> Tensor:
        normalized = F.instance_norm(x)
        actv = self.mlp_shared(F.interpolate(segmap, size=x.shape[2:], mode="nearest"))
        return normalized * (1 + self.mlp_gamma(actv)) + self.mlp_beta(actv)


class SPADEResnetBlock(nn.Module):
    def __init__(self, fin: int, fout: int, label_nc: int, hidden: int):
        super().__init__()
        fmiddle = min(fin, fout)
        self.learned_shortcut = fin != fout
        self.conv_0 = SpectralNormConv2d(fin, fmiddle, kernel_size=3, padding=1)
        self.conv_1 = SpectralNormConv2d(fmiddle, fout, kernel_size=3, padding=1)
        self.norm_0 = SPADE(fin, label_nc, hidden)
        self.norm_1 = SPADE(fmiddle, label_nc, hidden)
        if self.learned_shortcut:
            self.conv_s = SpectralNormConv2d(fin, fout, kernel_size=1, bias=False)
            self.norm_s = SPADE(fin, label_nc, hidden)

    def forward(self, x: Tensor, seg: Tensor) -> Tensor:
        shortcut = self.conv_s(self.norm_s(x, seg)) if self.learned_shortcut else x
        dx = self.conv_0(F.leaky_relu(self.norm_0(x, seg), 0.2))
        dx = self.conv_1(F.leaky_relu(self.norm_1(dx, seg), 0.2))
        return shortcut + dx


class SpadeGenerator(nn.Module):
    NUM_MIDDLE_BLOCKS = 6

    def __init__(self, config: SpadeGeneratorConfig):
        super().__init__()
        c = config
        self.config = config
        width, hidden = c.input_channels, c.spade_hidden
        self.fc = nn.Conv2d(width, 2 * width, kernel_size=3, padding=1)
        for i in range(self.NUM_MIDDLE_BLOCKS):  # G_middle_0 … G_middle_5, named as in the public file
            self.add_module(f"G_middle_{i}", SPADEResnetBlock(2 * width, 2 * width, width, hidden))
        self.up_0 = SPADEResnetBlock(2 * width, width, width, hidden)
        self.up_1 = SPADEResnetBlock(width, c.out_channels, width, hidden)
        if c.upscale > 1:
            self.conv_img = nn.Sequential(
                nn.Conv2d(c.out_channels, 3 * c.upscale**2, kernel_size=3, padding=1), nn.PixelShuffle(c.upscale)
            )
        else:
            self.conv_img = nn.Conv2d(c.out_channels, 3, kernel_size=3, padding=1)

    def forward(self, feature: Tensor) -> Tensor:
        seg = feature
        x = self.fc(feature)
        for i in range(self.NUM_MIDDLE_BLOCKS):
            x = getattr(self, f"G_middle_{i}")(x, seg)
        x = self.up_0(F.interpolate(x, scale_factor=2.0), seg)
        x = self.up_1(F.interpolate(x, scale_factor=2.0), seg)
        return torch.sigmoid(self.conv_img(F.leaky_relu(x, 0.2)))
