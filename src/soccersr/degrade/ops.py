"""Batched image operations of the degradation: per-sample filtering, resize, noise, 8-bit rounding.

Images are (B, C, H, W) float tensors with values in [0, 1], on any device. Randomness comes
only from an explicit ``generator`` (on the image's device) or ``seed`` argument.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

ResizeMode = Literal["area", "bilinear", "bicubic"]
RESIZE_MODES: tuple[ResizeMode, ...] = ("area", "bilinear", "bicubic")

# ITU-R 601 luma weights as rounded by torchvision's rgb_to_grayscale, which the official
# Poisson noise uses for its gray variant.
_GRAY_WEIGHTS = (0.2989, 0.587, 0.114)


def reflect_pad(img: Tensor, pad: int) -> Tensor:
    """Pad all four sides by ``pad`` pixels, mirroring without repeating the edge (cv2 REFLECT_101).

    Same as ``F.pad(mode="reflect")`` when the image is larger than ``pad``; smaller images get the
    periodic mirror extension (as ``np.pad(mode="reflect")``), so tiny crops can still be filtered
    with large kernels. A side of one pixel is replicated.
    """
    for dim in (-2, -1):
        remaining = pad
        while remaining > 0:
            # Each step mirrors about the current edge, which is always a mirror point of the extension.
            step = min(remaining, img.shape[dim] - 1)
            if step == 0:
                widths = (0, 0, remaining, remaining) if dim == -2 else (remaining, remaining, 0, 0)
                img = F.pad(img, widths, mode="replicate")
                break
            widths = (0, 0, step, step) if dim == -2 else (step, step, 0, 0)
            img = F.pad(img, widths, mode="reflect")
            remaining -= step
    return img


def filter2d(img: Tensor, kernel: Tensor) -> Tensor:
    """Filter each sample with its own kernel (cross-correlation, reflect padding, same size).

    Args:
        img: (B, C, H, W).
        kernel: (B, K, K) with odd K, or (1, K, K) for one kernel shared by the batch.
    """
    b, c, h, w = img.shape
    k = kernel.shape[-1]
    if k % 2 == 0 or kernel.shape[-2] != k:
        raise ValueError(f"filter2d: kernel must be square with an odd size, got {tuple(kernel.shape)}")
    kernel = kernel.to(device=img.device, dtype=img.dtype)
    padded = reflect_pad(img, k // 2)
    if kernel.shape[0] == 1:
        out = F.conv2d(padded.reshape(b * c, 1, h + k - 1, w + k - 1), kernel.view(1, 1, k, k))
    else:
        if kernel.shape[0] != b:
            raise ValueError(f"filter2d: {kernel.shape[0]} kernels for a batch of {b}")
        # One group per (sample, channel): a depthwise conv with per-sample weights.
        weight = kernel[:, None].expand(b, c, k, k).reshape(b * c, 1, k, k)
        out = F.conv2d(padded.reshape(1, b * c, h + k - 1, w + k - 1), weight, groups=b * c)
    return out.view(b, c, h, w)


def filter2d_separable(img: Tensor, kernel_1d: Tensor) -> Tensor:
    """Filter every channel with the separable kernel ``outer(kernel_1d, kernel_1d)`` (reflect padding).

    Equal to ``filter2d`` with the outer-product kernel, at 2K instead of K*K multiplies per pixel.
    """
    b, c, h, w = img.shape
    k = kernel_1d.numel()
    weight = kernel_1d.to(device=img.device, dtype=img.dtype)
    # Depthwise form (one group per plane): much faster than a batch of single-channel convs on CPU.
    padded = reflect_pad(img, k // 2).reshape(1, b * c, h + k - 1, w + k - 1)
    out = F.conv2d(padded, weight.view(1, 1, k, 1).expand(b * c, 1, k, 1), groups=b * c)
    out = F.conv2d(out, weight.view(1, 1, 1, k).expand(b * c, 1, 1, k), groups=b * c)
    return out.view(b, c, h, w)


def resize(
    img: Tensor, mode: ResizeMode, *, size: tuple[int, int] | None = None, scale_factor: float | None = None
) -> Tensor:
    """``F.interpolate`` as the official pipeline calls it (no antialias, align_corners False).

    With ``scale_factor`` the coordinate mapping uses the factor itself, as the official first
    order does; an output side that would round to 0 becomes 1.
    """
    align = None if mode == "area" else False
    if scale_factor is not None:
        h, w = img.shape[-2:]
        if int(h * scale_factor) >= 1 and int(w * scale_factor) >= 1:
            return F.interpolate(img, scale_factor=scale_factor, mode=mode, align_corners=align)
        size = (max(1, int(h * scale_factor)), max(1, int(w * scale_factor)))
    if size is None:
        raise ValueError("resize: give size or scale_factor")
    size = (max(1, size[0]), max(1, size[1]))
    return F.interpolate(img, size=size, mode=mode, align_corners=align)


def gaussian_noise(img: Tensor, sigma: Tensor, gray: Tensor, *, generator: torch.Generator) -> Tensor:
    """Per-sample Gaussian noise (not added), sigma on the 0-255 scale.

    Gray samples get one noise plane shared by the three channels. Unlike the official code, each
    sample draws its own gray plane (the official one is shared by the whole batch).

    Args:
        img: (B, C, H, W), only its shape, dtype and device are used.
        sigma: (B,) standard deviation in 8-bit units.
        gray: (B,) bool.
    """
    b, c, h, w = img.shape
    color = torch.randn(img.shape, generator=generator, device=img.device, dtype=img.dtype)
    mono = torch.randn((b, 1, h, w), generator=generator, device=img.device, dtype=img.dtype)
    noise = torch.where(gray.view(b, 1, 1, 1), mono.expand(b, c, h, w), color)
    return noise * (sigma.to(img.dtype).view(b, 1, 1, 1) / 255.0)


def _shot_noise(img: Tensor, generator: torch.Generator) -> Tensor:
    """Poisson noise of ``img`` quantised to 8 bits, with per-sample photon counts.

    Each sample's count is the number of distinct 8-bit levels it uses, rounded up to a power of
    two (official); counted with a 256-bin histogram instead of a per-sample ``torch.unique``.
    """
    b = img.shape[0]
    levels = torch.clamp((img * 255.0).round(), 0, 255)
    quantised = levels / 255.0
    hist = torch.zeros((b, 256), device=img.device, dtype=img.dtype)
    hist.scatter_(1, levels.reshape(b, -1).long(), 1.0)
    distinct = hist.sum(dim=1).to(torch.float64)
    vals = torch.exp2(torch.ceil(torch.log2(distinct))).to(img.dtype).view(b, 1, 1, 1)
    return torch.poisson(quantised * vals, generator=generator) / vals - quantised


def poisson_noise(img: Tensor, scale: Tensor, gray: Tensor, *, generator: torch.Generator) -> Tensor:
    """Per-sample Poisson (shot) noise (not added), as the official ``generate_poisson_noise_pt``.

    Args:
        img: (B, 3, H, W) in [0, 1].
        scale: (B,) multiplier of the noise.
        gray: (B,) bool: noise of the luma, shared by the three channels.
    """
    b, c, h, w = img.shape
    color = _shot_noise(img, generator)
    weights = torch.tensor(_GRAY_WEIGHTS, device=img.device, dtype=img.dtype).view(1, 3, 1, 1)
    luma = (img * weights).sum(dim=1, keepdim=True)
    mono = _shot_noise(luma, generator)
    noise = torch.where(gray.view(b, 1, 1, 1), mono.expand(b, c, h, w), color)
    return noise * scale.to(img.dtype).view(b, 1, 1, 1)


def _maybe_any(mask: Tensor) -> bool:
    """``mask.any()`` when it is free to read (CPU); True elsewhere, to avoid a device sync."""
    return bool(mask.any()) if mask.device.type == "cpu" else True


def add_noise(
    img: Tensor, gaussian: Tensor, sigma: Tensor, poisson_scale: Tensor, gray: Tensor, *, seed: int
) -> Tensor:
    """Add Gaussian noise to the ``gaussian`` samples and Poisson noise to the others, then clamp to [0, 1].

    Each noise comes from its own generator seeded from ``seed``, so a noise can be skipped when
    no sample needs it (CPU only) without changing the other: the result depends on the seed only.
    """
    b = img.shape[0]
    noise = torch.zeros_like(img)
    if _maybe_any(gaussian):
        generator = torch.Generator(device=img.device).manual_seed(seed)
        g = gaussian_noise(img, sigma, gray, generator=generator)
        noise = torch.where(gaussian.view(b, 1, 1, 1), g, noise)
    if _maybe_any(~gaussian):
        generator = torch.Generator(device=img.device).manual_seed(seed + 1)
        p = poisson_noise(img, poisson_scale, gray, generator=generator)
        noise = torch.where(gaussian.view(b, 1, 1, 1), noise, p)
    return torch.clamp(img + noise, 0.0, 1.0)


def quantize_8bit(img: Tensor) -> Tensor:
    """Clamp to [0, 1] and round to the 256 levels k/255."""
    return torch.clamp((img * 255.0).round(), 0, 255) / 255.0
