"""The "web" degradation: what a photo on a web page usually went through, for evaluation and training.

Gaussian blur (sigma uniform in 0.6-1.4), bicubic downscale by the scale, JPEG at a quality uniform
in 55-85. It is much milder than the training degradation, in which far players often vanish
from the LQ; web thumbnails of match photos look like this one. One seed fixes every choice.
``web_degrade_image`` is the one-image reference (OpenCV, libjpeg); ``web_degrade_batch`` is the same
recipe on a training batch (torch, our JPEG), which ``mix_in_web`` swaps in for a share of the samples.

Also here: ``image_seed``, the one per-image seed rule of ``soccersr degrade`` and ``soccersr eval``,
so the same ``--seed`` gives the same LQ for the same file in both.
"""

from __future__ import annotations

import hashlib
from pathlib import PurePath

import cv2
import numpy as np
import torch
from torch import Tensor

from soccersr import degrade  # the package, looked up per call (tests replace degrade_image)
from soccersr.degrade.jpeg import jpeg_compress
from soccersr.degrade.kernels import uniform
from soccersr.degrade.ops import filter2d, quantize_8bit, resize

WEB_BLUR_SIGMA = (0.6, 1.4)
WEB_JPEG_QUALITY = (55, 85)
DEGRADATIONS = ("training", "web")
"""The synthetic LQ kinds: the Real-ESRGAN training degradation and the web one."""


def image_seed(seed: int, relative_path: str | PurePath) -> int:
    """Per-image seed (63 bits) from the base seed and the image's POSIX path relative to its folder.

    Stable across runs, machines and image order; adding images changes no other image's seed.
    """
    rel = relative_path.as_posix() if isinstance(relative_path, PurePath) else str(relative_path)
    digest = hashlib.sha256(f"{seed}\0{rel}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def web_params(seed: int) -> tuple[float, int]:
    """(blur sigma, JPEG quality) of one image."""
    rng = np.random.default_rng(seed)
    sigma = float(rng.uniform(*WEB_BLUR_SIGMA))
    quality = int(rng.integers(WEB_JPEG_QUALITY[0], WEB_JPEG_QUALITY[1] + 1))
    return sigma, quality


def web_degrade_image(hr: np.ndarray, *, scale: int = 4, seed: int) -> np.ndarray:
    """The web LQ of one HR image: blur, bicubic x1/scale, JPEG; deterministic for a seed.

    Args:
        hr: (H, W, 3) float32 RGB in [0, 1]; cropped at the bottom and right to a multiple of ``scale``.

    Returns:
        (H // scale, W // scale, 3) float32 RGB, values k/255 (a decoded 8-bit JPEG).
    """
    if hr.ndim != 3 or hr.shape[2] != 3:
        raise ValueError(f"web_degrade_image: expected an (H, W, 3) image, got shape {hr.shape}")
    h, w = hr.shape[0] - hr.shape[0] % scale, hr.shape[1] - hr.shape[1] % scale
    if h == 0 or w == 0:
        raise ValueError(f"web_degrade_image: image {hr.shape[0]}x{hr.shape[1]} is smaller than the scale {scale}")
    sigma, quality = web_params(seed)
    x = np.ascontiguousarray(hr[:h, :w], dtype=np.float32)
    # Kernel 2 * ceil(3 sigma) + 1 taps (0 lets OpenCV pick ~8 sigma); reflected borders.
    radius = int(np.ceil(3 * sigma))
    x = cv2.GaussianBlur(
        x, (2 * radius + 1, 2 * radius + 1), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REFLECT_101
    )
    x = cv2.resize(x, (w // scale, h // scale), interpolation=cv2.INTER_CUBIC)
    bgr = cv2.cvtColor(np.clip(np.rint(x * 255), 0, 255).astype(np.uint8), cv2.COLOR_RGB2BGR)
    ok, data = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("web_degrade_image: JPEG encoding failed")
    decoded = cv2.imdecode(data, cv2.IMREAD_COLOR)
    return cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB).astype(np.float32) / 255


def synthesize_lq(hr: np.ndarray, *, kind: str, scale: int, seed: int) -> np.ndarray:
    """The ``kind`` ("training" or "web") LQ of one HR image."""
    if kind == "web":
        return web_degrade_image(hr, scale=scale, seed=seed)
    if kind == "training":
        return degrade.degrade_image(hr, scale=scale, seed=seed)
    raise ValueError(f"unknown degradation {kind!r}: expected one of {', '.join(DEGRADATIONS)}")


def gaussian_kernels(sigma: Tensor) -> Tensor:
    """(B, K, K) float32 Gaussian kernels as ``cv2.GaussianBlur`` builds them for ``web_degrade_image``.

    Each sample has ``2 * ceil(3 sigma) + 1`` taps, zero-padded to the batch's widest kernel K.
    """
    sigma = sigma.to(torch.float64).reshape(-1)
    radius = torch.ceil(3 * sigma)
    half = int(radius.max())
    x = torch.arange(-half, half + 1, dtype=torch.float64)
    taps = torch.exp(-(x**2) / (2 * sigma[:, None] ** 2)) * (x.abs() <= radius[:, None])
    taps = taps / taps.sum(dim=1, keepdim=True)
    return (taps[:, :, None] * taps[:, None, :]).to(torch.float32)


def web_degrade_batch(hr: Tensor, sigma: Tensor, quality: Tensor, *, scale: int = 4) -> Tensor:
    """The web LQ of a batch: per-sample blur, bicubic x1/scale (no antialias, as OpenCV), 8-bit, JPEG.

    Args:
        hr: (B, 3, H, W) RGB in [0, 1], H and W multiples of ``scale``.
        sigma: (B,) blur sigmas; quality: (B,) JPEG qualities.

    Returns:
        (B, 3, H / scale, W / scale) float32, values k/255.
    """
    h, w = hr.shape[-2:]
    if h % scale or w % scale:
        raise ValueError(f"web_degrade_batch: {h}x{w} is not a multiple of the scale {scale}")
    x = filter2d(hr, gaussian_kernels(sigma))
    x = quantize_8bit(resize(x, "bicubic", size=(h // scale, w // scale)))
    return quantize_8bit(jpeg_compress(x, quality))


def mix_in_web(lq: Tensor, hr: Tensor, prob: float, *, scale: int, generator: torch.Generator) -> Tensor:
    """``lq`` with each sample replaced, with probability ``prob``, by the web LQ of its ``hr``.

    Draws 3 x B numbers from ``generator`` whatever the outcome, so the stream after it is fixed.
    """
    b = hr.shape[0]
    chosen = uniform(generator, b, 0.0, 1.0) < prob
    sigma = uniform(generator, b, *WEB_BLUR_SIGMA)
    quality = torch.floor(uniform(generator, b, WEB_JPEG_QUALITY[0], WEB_JPEG_QUALITY[1] + 1))
    quality = quality.clamp(max=WEB_JPEG_QUALITY[1])
    if not bool(chosen.any()):
        return lq
    index = chosen.nonzero().reshape(-1).to(hr.device)
    out = lq.clone()
    out[index] = web_degrade_batch(hr[index], sigma[chosen], quality[chosen], scale=scale).to(lq.dtype)
    return out
