"""Batched JPEG compression with a per-sample quality, in the manner of BasicSR's DiffJPEG.

Semantics kept from the official ``DiffJPEG`` (what Real-ESRGAN trains with):
  * quality -> table scale ``5000/q`` below 50, ``200 - 2q`` from 50, divided by 100, applied to
    the base tables as a float (no libjpeg rounding of the table; fractional q allowed);
  * JFIF RGB <-> YCbCr, 4:2:0 chroma by 2x2 averaging, chroma upsampled by pixel repetition;
  * 8x8 orthonormal DCT, ``round(coef / table) * table`` (round half to even);
  * zero padding to a multiple of 16 at the bottom and right, output clamped to [0, 1].
Differences: (1) the official code quantises with the *transposed* standard tables (inherited
from mlomnitz/DiffJPEG); here row = vertical frequency as in the JPEG standard and libjpeg, which
brings the result 2.5-3.6 dB closer to OpenCV's encoder at q30-75 (tests/test_degrade_jpeg.py).
(2) Table entries are clamped to >= 1 as in libjpeg; this only matters above q95 (the official
range ends there) and makes q100 well defined (the official tables become 0: division by zero).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

# JPEG standard (Annex K) tables: row = vertical frequency, column = horizontal frequency.
_LUMA_TABLE = (
    (16, 11, 10, 16, 24, 40, 51, 61),
    (12, 12, 14, 19, 26, 58, 60, 55),
    (14, 13, 16, 24, 40, 57, 69, 56),
    (14, 17, 22, 29, 51, 87, 80, 62),
    (18, 22, 37, 56, 68, 109, 103, 77),
    (24, 35, 55, 64, 81, 104, 113, 92),
    (49, 64, 78, 87, 103, 121, 120, 101),
    (72, 92, 95, 98, 112, 100, 103, 99),
)
_CHROMA_TABLE = (
    (17, 18, 24, 47, 99, 99, 99, 99),
    (18, 21, 26, 66, 99, 99, 99, 99),
    (24, 26, 56, 99, 99, 99, 99, 99),
    (47, 66, 99, 99, 99, 99, 99, 99),
    *((99,) * 8 for _ in range(4)),
)
_RGB_TO_YCBCR = (
    (0.299, 0.587, 0.114),
    (-0.168736, -0.331264, 0.5),
    (0.5, -0.418688, -0.081312),
)
_YCBCR_TO_RGB = (
    (1.0, 0.0, 1.402),
    (1.0, -0.344136, -0.714136),
    (1.0, 1.772, 0.0),
)


def quality_to_scale(quality: Tensor) -> Tensor:
    """Multiplier of the base quantisation tables for a (fractional) quality in [1, 100]."""
    return torch.where(quality < 50, 5000.0 / quality, 200.0 - 2.0 * quality) / 100.0


def _block_dct_matrix(device: torch.device, dtype: torch.dtype) -> Tensor:
    """(64, 64) orthonormal 2-D DCT-II of a row-major flattened 8x8 block: ``coef = block @ M.T``.

    ``M = kron(D, D)`` with the 8-point DCT matrix D, so ``block @ M.T`` is ``D @ block @ D.T``
    and, M being orthonormal, ``coef @ M`` inverts it.
    """
    n = torch.arange(8, dtype=torch.float64)
    d = torch.cos((2 * n[None, :] + 1) * n[:, None] * math.pi / 16) / 2
    d[0] /= math.sqrt(2)
    return torch.kron(d, d).to(device=device, dtype=dtype)


def _round(x: Tensor, differentiable: bool) -> Tensor:
    rounded = torch.round(x)
    # Cubic straight-through approximation of the official differentiable mode.
    return rounded + (x - rounded) ** 3 if differentiable else rounded


def _code_plane(plane: Tensor, table: Tensor, dct: Tensor, differentiable: bool) -> Tensor:
    """DCT, quantise, dequantise and inverse-DCT every 8x8 block of (B, H, W) with (B, 8, 8) tables."""
    b, h, w = plane.shape
    blocks = (plane - 128.0).view(b, h // 8, 8, w // 8, 8).transpose(2, 3).reshape(b, -1, 64)
    coef = blocks @ dct.T
    q = table.reshape(b, 1, 64)
    coef = _round(coef / q, differentiable) * q
    blocks = coef @ dct + 128.0
    return blocks.view(b, h // 8, w // 8, 8, 8).transpose(2, 3).reshape(b, h, w)


def jpeg_compress(img: Tensor, quality: Tensor, *, differentiable: bool = False) -> Tensor:
    """Compress and decompress each sample with its own JPEG quality.

    Args:
        img: (B, 3, H, W) RGB in [0, 1] (clamp first: values outside give the official artefacts).
        quality: (B,) float qualities in [1, 100].
        differentiable: use the cubic rounding approximation (official ``differentiable=True``);
            Real-ESRGAN trains with plain rounding.

    Returns:
        (B, 3, H, W) in [0, 1], on img's device, float32.
    """
    if img.ndim != 4 or img.shape[1] != 3:
        raise ValueError(f"jpeg_compress: expected (B, 3, H, W), got {tuple(img.shape)}")
    b, _, h, w = img.shape
    quality = quality.to(device=img.device, dtype=torch.float32).reshape(-1)
    if quality.numel() != b:
        raise ValueError(f"jpeg_compress: {quality.numel()} qualities for a batch of {b}")
    x = img.to(torch.float32)
    pad_h, pad_w = -h % 16, -w % 16
    x = F.pad(x, (0, pad_w, 0, pad_h), value=0.0) * 255.0

    to_ycbcr = torch.tensor(_RGB_TO_YCBCR, device=x.device, dtype=x.dtype)
    ycbcr = torch.einsum("ij,bjhw->bihw", to_ycbcr, x)
    y = ycbcr[:, 0]
    chroma = F.avg_pool2d(ycbcr[:, 1:], kernel_size=2) + 128.0  # (B, 2, H/2, W/2)

    scale = quality_to_scale(quality).view(b, 1, 1)
    dct = _block_dct_matrix(x.device, x.dtype)
    # Entries below 1 (only above q95) would amplify, or divide by zero at q100; libjpeg clamps to 1 too.
    luma_table = (torch.tensor(_LUMA_TABLE, device=x.device, dtype=x.dtype) * scale).clamp(min=1.0)
    chroma_table = (torch.tensor(_CHROMA_TABLE, device=x.device, dtype=x.dtype) * scale).clamp(min=1.0)
    y = _code_plane(y, luma_table, dct, differentiable)
    hc, wc = chroma.shape[-2:]
    chroma = _code_plane(chroma.reshape(b * 2, hc, wc), chroma_table.repeat_interleave(2, dim=0), dct, differentiable)
    chroma = chroma.view(b, 2, hc, wc).repeat_interleave(2, dim=-2).repeat_interleave(2, dim=-1) - 128.0

    to_rgb = torch.tensor(_YCBCR_TO_RGB, device=x.device, dtype=x.dtype)
    rgb = torch.einsum("ij,bjhw->bihw", to_rgb, torch.cat([y[:, None], chroma], dim=1))
    return torch.clamp(rgb, 0.0, 255.0)[:, :, :h, :w] / 255.0
