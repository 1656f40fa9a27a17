"""RRDBNet: the generator of ESRGAN / Real-ESRGAN (x4plus, x4plus-anime, x2plus).

Parameter names match the official Real-ESRGAN checkpoints exactly
(``conv_first``, ``body.{b}.rdb{r}.conv{c}``, ``conv_body``, ``conv_up1/2``,
``conv_hr``, ``conv_last``), so official ``.pth`` files load with ``strict=True``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from soccersr.archs.spec import ArchError, ArchKwargs, ArchSpec, ForwardGraph, tensor_shape

# Residuals are scaled down so a deep stack of blocks starts close to identity;
# 0.2 is the value the official weights were trained with.
RESIDUAL_SCALE = 0.2
LEAKY_SLOPE = 0.2
# The trunk always upsamples x4; x2 / x1 models pixel-unshuffle their input by 2 / 4 first.
UNSHUFFLE_BY_SCALE: Mapping[int, int] = {4: 1, 2: 2, 1: 4}


def _scale_init(module: nn.Module, scale: float) -> None:
    """Kaiming init shrunk by ``scale`` (the ESRGAN recipe for stable training from scratch)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight)
            m.weight.data.mul_(scale)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class ResidualDenseBlock(nn.Module):
    """Five densely connected 3x3 convs; each sees the block input and all earlier outputs."""

    def __init__(self, *, num_feat: int = 64, num_grow_ch: int = 32) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(num_feat, num_grow_ch, 3, 1, 1)
        self.conv2 = nn.Conv2d(num_feat + num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv3 = nn.Conv2d(num_feat + 2 * num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv4 = nn.Conv2d(num_feat + 3 * num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv5 = nn.Conv2d(num_feat + 4 * num_grow_ch, num_feat, 3, 1, 1)
        _scale_init(self, 0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = F.leaky_relu(self.conv1(x), LEAKY_SLOPE)
        x2 = F.leaky_relu(self.conv2(torch.cat((x, x1), 1)), LEAKY_SLOPE)
        x3 = F.leaky_relu(self.conv3(torch.cat((x, x1, x2), 1)), LEAKY_SLOPE)
        x4 = F.leaky_relu(self.conv4(torch.cat((x, x1, x2, x3), 1)), LEAKY_SLOPE)
        x5 = self.conv5(torch.cat((x, x1, x2, x3, x4), 1))
        return x5 * RESIDUAL_SCALE + x


class RRDB(nn.Module):
    """Residual-in-residual dense block: three dense blocks and one scaled skip."""

    def __init__(self, *, num_feat: int = 64, num_grow_ch: int = 32) -> None:
        super().__init__()
        self.rdb1 = ResidualDenseBlock(num_feat=num_feat, num_grow_ch=num_grow_ch)
        self.rdb2 = ResidualDenseBlock(num_feat=num_feat, num_grow_ch=num_grow_ch)
        self.rdb3 = ResidualDenseBlock(num_feat=num_feat, num_grow_ch=num_grow_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rdb3(self.rdb2(self.rdb1(x))) * RESIDUAL_SCALE + x


class RRDBNet(nn.Module):
    """ESRGAN generator.

    The trunk always upsamples x4 (two nearest x2 + conv stages). For ``scale`` 2 and 1
    the input is first pixel-unshuffled by 2 or 4, as in the official code, so the
    trunk runs at a lower resolution and ``conv_first`` sees 12 or 48 channels.

    Args:
        num_in_ch: image channels in (3 for RGB).
        num_out_ch: image channels out.
        scale: 4, 2 or 1.
        num_feat: trunk width (64 in the official models).
        num_block: number of RRDB blocks (23 for x4plus, 6 for the anime model).
        num_grow_ch: growth channels of the dense blocks (32).

    Shape:
        (B, num_in_ch, H, W) -> (B, num_out_ch, H*scale, W*scale). For scale 2 / 1,
        H and W must be multiples of 2 / 4 (the inference engine pads).
    """

    def __init__(
        self,
        *,
        num_in_ch: int = 3,
        num_out_ch: int = 3,
        scale: int = 4,
        num_feat: int = 64,
        num_block: int = 23,
        num_grow_ch: int = 32,
    ) -> None:
        super().__init__()
        if scale not in UNSHUFFLE_BY_SCALE:
            raise ValueError(f"RRDBNet scale must be 1, 2 or 4, got {scale}")
        self.scale = scale
        self.unshuffle = UNSHUFFLE_BY_SCALE[scale]
        self.conv_first = nn.Conv2d(num_in_ch * self.unshuffle**2, num_feat, 3, 1, 1)
        self.body = nn.Sequential(*(RRDB(num_feat=num_feat, num_grow_ch=num_grow_ch) for _ in range(num_block)))
        self.conv_body = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.unshuffle > 1:
            x = F.pixel_unshuffle(x, self.unshuffle)
        feat = self.conv_first(x)
        feat = feat + self.conv_body(self.body(feat))
        feat = F.leaky_relu(self.conv_up1(F.interpolate(feat, scale_factor=2, mode="nearest")), LEAKY_SLOPE)
        feat = F.leaky_relu(self.conv_up2(F.interpolate(feat, scale_factor=2, mode="nearest")), LEAKY_SLOPE)
        return self.conv_last(F.leaky_relu(self.conv_hr(feat), LEAKY_SLOPE))


# --------------------------------------------------------------------------------------------
# What the rest of soccersr needs to know about RRDBNet (see ``archs.spec``)
# --------------------------------------------------------------------------------------------

_BLOCK_KEY = re.compile(r"body\.(\d+)\.rdb1\.conv1\.weight")


def _kwargs_from_state_dict(state_dict: Mapping[str, torch.Tensor], origin: str) -> ArchKwargs:
    num_feat, in_ch, _, _ = tensor_shape(state_dict, "conv_first.weight", 4, origin)
    scale_by_in_ch = {3 * unshuffle**2: scale for scale, unshuffle in UNSHUFFLE_BY_SCALE.items()}
    if in_ch not in scale_by_in_ch:
        raise ArchError(
            f"{origin}: conv_first.weight has {in_ch} input channels; RRDBNet RGB needs 3 (x4), 12 (x2) or 48 (x1)"
        )
    blocks = sorted(int(m.group(1)) for k in state_dict if (m := _BLOCK_KEY.fullmatch(k)))
    if blocks != list(range(len(blocks))):
        raise ArchError(f"{origin}: RRDB blocks are not numbered 0..n-1 (found {blocks[:5]}...)")
    num_grow_ch = tensor_shape(state_dict, "body.0.rdb1.conv1.weight", 4, origin)[0] if blocks else 32
    num_out_ch = tensor_shape(state_dict, "conv_last.weight", 4, origin)[0]
    return {
        "num_in_ch": 3,
        "num_out_ch": num_out_ch,
        "scale": scale_by_in_ch[in_ch],
        "num_feat": num_feat,
        "num_block": len(blocks),
        "num_grow_ch": num_grow_ch,
    }


def _net_scale(kwargs: Mapping[str, Any]) -> int:
    return int(kwargs.get("scale", 4))


def _size_multiple(kwargs: Mapping[str, Any]) -> int:
    return UNSHUFFLE_BY_SCALE[_net_scale(kwargs)]


def _activation_floats_per_pixel(kwargs: Mapping[str, Any]) -> float:
    """Two terms: the dense blocks' concatenated features at the (unshuffled) working resolution,
    and the x4 tail, whose ``num_feat`` maps at output resolution dominate. Rounded up from
    measurements (bench/README.md): 15.3 KB per input pixel for x4plus in fp32 (this: 16.6 KB)."""
    feat, grow = int(kwargs.get("num_feat", 64)), int(kwargs.get("num_grow_ch", 32))
    low_res = 3 * (feat + 4 * grow) / _size_multiple(kwargs) ** 2
    high_res = 3.5 * feat * _net_scale(kwargs) ** 2
    return low_res + high_res


def _ncnn_graph(kwargs: Mapping[str, Any], g: ForwardGraph) -> int:
    """``RRDBNet.forward`` (scale 4) as graph nodes."""
    if _net_scale(kwargs) != 4:
        raise ArchError("ncnn conversion supports RRDBNet scale 4 only (no pixel-unshuffle layer)")
    first = g.conv("conv_first", g.input())
    h = first
    for b in range(int(kwargs.get("num_block", 23))):
        block_in = h
        for r in (1, 2, 3):
            feats = [h]
            for c in (1, 2, 3, 4):
                x = feats[0] if len(feats) == 1 else g.cat(*feats)
                feats.append(g.conv(f"body.{b}.rdb{r}.conv{c}", x, leaky_slope=LEAKY_SLOPE))
            x5 = g.conv(f"body.{b}.rdb{r}.conv5", g.cat(*feats))
            h = g.weighted_sum((RESIDUAL_SCALE, x5), (1.0, feats[0]))
        h = g.weighted_sum((RESIDUAL_SCALE, h), (1.0, block_in))
    feat = g.weighted_sum((1.0, first), (1.0, g.conv("conv_body", h)))
    feat = g.conv("conv_up1", g.resize_nearest(2.0, feat), leaky_slope=LEAKY_SLOPE)
    feat = g.conv("conv_up2", g.resize_nearest(2.0, feat), leaky_slope=LEAKY_SLOPE)
    return g.conv("conv_last", g.conv("conv_hr", feat, leaky_slope=LEAKY_SLOPE))


RRDBNET = ArchSpec(
    name="RRDBNet",
    module=RRDBNet,
    detect_keys=("conv_first.weight",),
    kwargs_from_state_dict=_kwargs_from_state_dict,
    net_scale=_net_scale,
    size_multiple=_size_multiple,
    activation_floats_per_pixel=_activation_floats_per_pixel,
    ncnn_graph=_ncnn_graph,
)
