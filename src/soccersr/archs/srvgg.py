"""SRVGGNetCompact: the small "compact" Real-ESRGAN generator (realesr-animevideov3, general-x4v3).

A plain stack of 3x3 convs at low resolution, a pixel shuffle, and the nearest-upsampled
input added back, so the convs only learn the residual. Parameter names match the
official checkpoints (``body.{i}.weight``; PReLU slopes at the odd indices).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _activation(act_type: str, num_feat: int) -> nn.Module:
    if act_type == "prelu":
        return nn.PReLU(num_parameters=num_feat)
    if act_type == "relu":
        return nn.ReLU(inplace=True)
    if act_type == "leakyrelu":
        return nn.LeakyReLU(negative_slope=0.1, inplace=True)
    raise ValueError(f"unknown act_type {act_type!r}: expected 'prelu', 'relu' or 'leakyrelu'")


class SRVGGNetCompact(nn.Module):
    """Compact VGG-style SR network.

    Args:
        num_in_ch: image channels in.
        num_out_ch: image channels out.
        num_feat: width of every hidden conv.
        num_conv: number of hidden conv + activation pairs (16 for animevideov3, 32 for general-x4v3).
        upscale: output / input size ratio.
        act_type: 'prelu' (official models), 'relu' or 'leakyrelu'.

    Shape:
        (B, num_in_ch, H, W) -> (B, num_out_ch, H*upscale, W*upscale); any H, W.
    """

    def __init__(
        self,
        *,
        num_in_ch: int = 3,
        num_out_ch: int = 3,
        num_feat: int = 64,
        num_conv: int = 16,
        upscale: int = 4,
        act_type: str = "prelu",
    ) -> None:
        super().__init__()
        self.scale = upscale
        layers: list[nn.Module] = [nn.Conv2d(num_in_ch, num_feat, 3, 1, 1), _activation(act_type, num_feat)]
        for _ in range(num_conv):
            layers += [nn.Conv2d(num_feat, num_feat, 3, 1, 1), _activation(act_type, num_feat)]
        layers.append(nn.Conv2d(num_feat, num_out_ch * upscale * upscale, 3, 1, 1))
        self.body = nn.ModuleList(layers)
        self.upsampler = nn.PixelShuffle(upscale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        for layer in self.body:
            out = layer(out)
        out = self.upsampler(out)
        return out + F.interpolate(x, scale_factor=self.scale, mode="nearest")
