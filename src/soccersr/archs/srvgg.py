"""SRVGGNetCompact: the small "compact" Real-ESRGAN generator (realesr-animevideov3, general-x4v3).

A plain stack of 3x3 convs at low resolution, a pixel shuffle, and the nearest-upsampled
input added back, so the convs only learn the residual. Parameter names match the
official checkpoints (``body.{i}.weight``; PReLU slopes at the odd indices).
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from soccersr.archs.spec import ArchError, ArchKwargs, ArchSpec, ForwardGraph, tensor_shape

log = logging.getLogger(__name__)


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


# --------------------------------------------------------------------------------------------
# What the rest of soccersr needs to know about SRVGGNetCompact (see ``archs.spec``)
# --------------------------------------------------------------------------------------------

_BODY_KEY = re.compile(r"body\.(\d+)\.weight")


def _kwargs_from_state_dict(state_dict: Mapping[str, torch.Tensor], origin: str) -> ArchKwargs:
    indices = sorted(int(m.group(1)) for k in state_dict if (m := _BODY_KEY.fullmatch(k)))
    conv_indices = [i for i in indices if state_dict[f"body.{i}.weight"].ndim == 4]
    last = max(conv_indices, default=-1)
    # body = conv, act, (conv, act) * num_conv, conv: convs at even indices 0 .. 2 * num_conv + 2.
    if last < 2 or last % 2 or conv_indices != list(range(0, last + 1, 2)):
        raise ArchError(f"{origin}: SRVGGNetCompact convs must sit at body.0, body.2, ..., found {conv_indices[:6]}")
    num_feat, num_in_ch, _, _ = tensor_shape(state_dict, "body.0.weight", 4, origin)
    last_out = tensor_shape(state_dict, f"body.{last}.weight", 4, origin)[0]
    upscale = math.isqrt(last_out // num_in_ch)
    if upscale < 1 or num_in_ch * upscale * upscale != last_out:
        raise ArchError(f"{origin}: body.{last}.weight has {last_out} outputs, not {num_in_ch} x upscale^2")
    if "body.1.weight" in state_dict:
        act_type = "prelu"
    else:
        # ReLU and LeakyReLU have no weights, so a file cannot say which; the official models use PReLU.
        act_type = "relu"
        log.warning("%s: SRVGGNetCompact without PReLU weights: assuming act_type 'relu'", origin)
    return {
        "num_in_ch": num_in_ch,
        "num_out_ch": num_in_ch,
        "num_feat": num_feat,
        "num_conv": last // 2 - 1,
        "upscale": upscale,
        "act_type": act_type,
    }


def _kwargs_from_header(kwargs: ArchKwargs, header: Mapping[str, Any]) -> ArchKwargs:
    """A header (``soccersr export``) tells ReLU from LeakyReLU, which leave no weights."""
    act = header.get("act_type")
    if kwargs.get("act_type") != "prelu" and act in ("relu", "leakyrelu"):
        return {**kwargs, "act_type": act}
    return kwargs


def _net_scale(kwargs: Mapping[str, Any]) -> int:
    return int(kwargs.get("upscale", 4))


def _activation_floats_per_pixel(kwargs: Mapping[str, Any]) -> float:
    """A few ``num_feat`` maps at input resolution, and the output-resolution shuffle, nearest
    upsample and sum. Rounded up from measurements (bench/README.md): 1.1 KB per input pixel for
    animevideov3 in fp32 (this: 1.5 KB)."""
    feat, up = int(kwargs.get("num_feat", 64)), _net_scale(kwargs)
    return 3 * feat + 4 * 3 * up**2


def _ncnn_graph(kwargs: Mapping[str, Any], g: ForwardGraph) -> int:
    """``SRVGGNetCompact.forward`` (PReLU) as graph nodes."""
    if kwargs.get("act_type", "prelu") != "prelu":
        raise ArchError("ncnn conversion supports SRVGGNetCompact with act_type 'prelu' only")
    num_conv, upscale = int(kwargs.get("num_conv", 16)), _net_scale(kwargs)
    x = g.input()
    h = x
    for i in range(num_conv + 1):
        h = g.prelu(f"body.{2 * i + 1}", g.conv(f"body.{2 * i}", h))
    last = g.conv(f"body.{2 * num_conv + 2}", h)
    return g.weighted_sum((1.0, g.pixel_shuffle(upscale, last)), (1.0, g.resize_nearest(float(upscale), x)))


SRVGG_COMPACT = ArchSpec(
    name="SRVGGNetCompact",
    module=SRVGGNetCompact,
    detect_keys=("body.0.weight",),
    kwargs_from_state_dict=_kwargs_from_state_dict,
    net_scale=_net_scale,
    size_multiple=lambda kwargs: 1,  # any input size: no unshuffle, no striding
    activation_floats_per_pixel=_activation_floats_per_pixel,
    ncnn_graph=_ncnn_graph,
    kwargs_from_header=_kwargs_from_header,
)
