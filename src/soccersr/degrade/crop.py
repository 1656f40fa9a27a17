"""Paired random crop of ground-truth and low-quality batches."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def paired_random_crop(
    gts: Sequence[Tensor], lq: Tensor, gt_size: int, scale: int, *, generator: torch.Generator
) -> tuple[tuple[Tensor, ...], Tensor]:
    """Crop an aligned ``gt_size`` GT patch and ``gt_size // scale`` LQ patch, one location per batch.

    The LQ top-left corner is uniform over all valid positions and the GT corner is ``scale`` times
    it, so the patches cover the same area (as the official ``paired_random_crop``).

    Args:
        gts: GT batches sharing one shape (B, C, H, W), e.g. ``(gt, gt_usm)``.
        lq: (B, C, H // scale, W // scale).
        gt_size: GT patch side; must be a multiple of ``scale``.
        scale: GT / LQ size ratio.
        generator: CPU generator for the location.

    Returns:
        The cropped GT batches (same order) and the cropped LQ batch.
    """
    if not gts:
        raise ValueError("paired_random_crop: no GT batch given")
    if gt_size % scale:
        raise ValueError(f"paired_random_crop: gt_size {gt_size} is not a multiple of scale {scale}")
    h_gt, w_gt = gts[0].shape[-2:]
    for gt in gts[1:]:
        if gt.shape != gts[0].shape:
            raise ValueError(f"paired_random_crop: GT shapes differ: {tuple(gts[0].shape)} vs {tuple(gt.shape)}")
    h_lq, w_lq = lq.shape[-2:]
    if (h_gt, w_gt) != (h_lq * scale, w_lq * scale):
        raise ValueError(f"paired_random_crop: GT {h_gt}x{w_gt} is not {scale}x the LQ {h_lq}x{w_lq}")
    lq_size = gt_size // scale
    if h_lq < lq_size or w_lq < lq_size:
        raise ValueError(f"paired_random_crop: LQ {h_lq}x{w_lq} is smaller than the patch {lq_size}x{lq_size}")
    top = int(torch.randint(h_lq - lq_size + 1, (1,), generator=generator))
    left = int(torch.randint(w_lq - lq_size + 1, (1,), generator=generator))
    lq_patch = lq[..., top : top + lq_size, left : left + lq_size]
    t, l = top * scale, left * scale
    gt_patches = tuple(gt[..., t : t + gt_size, l : l + gt_size] for gt in gts)
    return gt_patches, lq_patch
