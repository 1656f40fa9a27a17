"""Unsharp-mask sharpening of the ground truth, as Real-ESRGAN trains with (``USMSharp``)."""

from __future__ import annotations

import torch
from torch import Tensor

from soccersr.degrade.ops import filter2d_separable


def gaussian_kernel_1d(size: int, sigma: float = 0.0) -> Tensor:
    """Normalised 1-D Gaussian (float64), like ``cv2.getGaussianKernel(size, sigma)``.

    ``sigma <= 0`` derives it from the size as OpenCV does: ``0.3 * ((size - 1) / 2 - 1) + 0.8``.
    (OpenCV has fixed tables for sizes up to 7 with sigma <= 0; this is only used with large sizes.)
    """
    if sigma <= 0:
        sigma = 0.3 * ((size - 1) * 0.5 - 1) + 0.8
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    kernel = torch.exp(-(x**2) / (2 * sigma**2))
    return kernel / kernel.sum()


def usm_sharp(img: Tensor, weight: float = 0.5, radius: int = 50, threshold: float = 10) -> Tensor:
    """Sharpen (B, 3, H, W) images in [0, 1] with the official blurred-mask unsharp mask.

    ``sharp = clamp(img + weight * (img - blur), 0, 1)`` is blended in where a blurred mask of
    ``|img - blur| * 255 > threshold`` is high, so flat areas (and their noise) stay untouched.
    ``radius`` is the Gaussian window (made odd: 50 -> 51, sigma 8); filtering is separable with
    reflect padding, which equals the official 2-D ``filter2D`` up to float rounding.
    """
    if radius % 2 == 0:
        radius += 1
    kernel = gaussian_kernel_1d(radius).to(torch.float32)
    blur = filter2d_separable(img, kernel)
    residual = img - blur
    mask = (residual.abs() * 255 > threshold).to(img.dtype)
    soft_mask = filter2d_separable(mask, kernel)
    sharp = torch.clamp(img + weight * residual, 0, 1)
    return soft_mask * sharp + (1 - soft_mask) * img
