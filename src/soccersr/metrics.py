"""Full-reference metrics: PSNR and SSIM on the Y channel, the way SR papers report them.

Used by evaluation (``eval``) and by validation during training (``train``), so it sits below both.

The definitions follow BasicSR's ``calculate_psnr`` / ``calculate_ssim`` with
``test_y_channel=True``, which is what Real-ESRGAN and most SR papers quote:

* both images are 8-bit (rounded to k/255 first, as a saved PNG would be);
* ``crop_border`` pixels (the model's scale) are dropped on every side;
* Y is the BT.601 "studio swing" luma of YCbCr, 16..235 on the 0..255 scale;
* PSNR = 10 log10(255^2 / MSE), infinite for identical images;
* SSIM uses the 11x11 Gaussian window (sigma 1.5), "valid" filtering (no padding),
  C1 = (0.01*255)^2, C2 = (0.03*255)^2, and the mean of the SSIM map.

All functions take float RGB arrays (H, W, 3) in [0, 1] and compute in float64.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

SSIM_WINDOW = 11
"""Side of the SSIM Gaussian window: regions smaller than this (after the border crop) have no SSIM."""
_SSIM_SIGMA = 1.5
_C1 = (0.01 * 255) ** 2
_C2 = (0.03 * 255) ** 2
# BT.601 RGB -> Y for RGB in [0, 1], Y in [16, 235] (MATLAB rgb2ycbcr, BasicSR bgr2ycbcr y_only).
_Y_WEIGHTS = np.array([65.481, 128.553, 24.966])
_Y_OFFSET = 16.0


def quantize_8bit(rgb: np.ndarray) -> np.ndarray:
    """Round float RGB in [0, 1] to the 8-bit levels k/255 (what a saved 8-bit PNG holds)."""
    return np.round(np.clip(rgb.astype(np.float64), 0.0, 1.0) * 255.0) / 255.0


def rgb_to_y(rgb: np.ndarray) -> np.ndarray:
    """BT.601 luma on the 0..255 scale (16..235) of float RGB (H, W, 3) in [0, 1], as float64 (H, W)."""
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an RGB image of shape (H, W, 3), got {rgb.shape}")
    return rgb.astype(np.float64) @ _Y_WEIGHTS + _Y_OFFSET


def y_channel(rgb: np.ndarray, *, crop_border: int) -> np.ndarray:
    """8-bit-quantised Y (0..255 scale, float64) with ``crop_border`` pixels removed on each side."""
    y = rgb_to_y(quantize_8bit(rgb))
    return _crop(y, crop_border)


def _crop(img: np.ndarray, border: int) -> np.ndarray:
    if border < 0:
        raise ValueError(f"crop_border must be >= 0, got {border}")
    if border == 0:
        return img
    return img[border:-border, border:-border]


def _check_pair(img: np.ndarray, ref: np.ndarray) -> None:
    if img.shape != ref.shape:
        raise ValueError(f"image shapes differ: {img.shape} vs reference {ref.shape}")


def squared_error_sum(y: np.ndarray, y_ref: np.ndarray) -> tuple[float, int]:
    """Sum of squared differences of two Y planes and the pixel count (for pooling MSE over regions)."""
    _check_pair(y, y_ref)
    diff = y - y_ref
    return float(np.sum(diff * diff)), int(diff.size)


def psnr_from_mse(mse: float) -> float:
    """PSNR in dB for an MSE on the 0..255 scale; ``inf`` when the MSE is 0."""
    if mse < 0 or math.isnan(mse):
        raise ValueError(f"MSE must be a non-negative number, got {mse}")
    return math.inf if mse == 0 else 10.0 * math.log10(255.0**2 / mse)


def psnr_plane(y: np.ndarray, y_ref: np.ndarray) -> float:
    """PSNR of two Y planes on the 0..255 scale (already quantised and border-cropped)."""
    sse, n = squared_error_sum(y, y_ref)
    if n == 0:
        raise ValueError("cannot compute PSNR of an empty region")
    return psnr_from_mse(sse / n)


def _ssim_kernel() -> np.ndarray:
    # The normalised 1-D Gaussian; the 2-D window is its outer product, so filter separably.
    x = np.arange(SSIM_WINDOW, dtype=np.float64) - (SSIM_WINDOW - 1) / 2
    k = np.exp(-(x * x) / (2 * _SSIM_SIGMA**2))
    return k / k.sum()


def _filter_valid(img: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    half = SSIM_WINDOW // 2
    out = cv2.sepFilter2D(img, cv2.CV_64F, kernel, kernel, borderType=cv2.BORDER_REFLECT)
    # Only the positions where the window lies fully inside the image ("valid" convolution).
    return out[half:-half, half:-half]


def ssim_plane(y: np.ndarray, y_ref: np.ndarray) -> float:
    """Mean SSIM of two Y planes on the 0..255 scale (already quantised and border-cropped).

    Raises ValueError when a side is shorter than the 11-pixel window.
    """
    _check_pair(y, y_ref)
    if min(y.shape) < SSIM_WINDOW:
        raise ValueError(f"SSIM needs at least {SSIM_WINDOW}x{SSIM_WINDOW} pixels, got {y.shape[1]}x{y.shape[0]}")
    a = np.ascontiguousarray(y, dtype=np.float64)
    b = np.ascontiguousarray(y_ref, dtype=np.float64)
    k = _ssim_kernel()
    mu_a, mu_b = _filter_valid(a, k), _filter_valid(b, k)
    var_a = _filter_valid(a * a, k) - mu_a * mu_a
    var_b = _filter_valid(b * b, k) - mu_b * mu_b
    cov = _filter_valid(a * b, k) - mu_a * mu_b
    num = (2 * mu_a * mu_b + _C1) * (2 * cov + _C2)
    den = (mu_a * mu_a + mu_b * mu_b + _C1) * (var_a + var_b + _C2)
    return float(np.mean(num / den))


def psnr(img: np.ndarray, ref: np.ndarray, *, crop_border: int) -> float:
    """PSNR (dB) on the Y channel of two float RGB images (H, W, 3) in [0, 1]; ``inf`` if identical."""
    _check_pair(img, ref)
    return psnr_plane(y_channel(img, crop_border=crop_border), y_channel(ref, crop_border=crop_border))


def ssim(img: np.ndarray, ref: np.ndarray, *, crop_border: int) -> float:
    """SSIM on the Y channel of two float RGB images (H, W, 3) in [0, 1]; 1.0 if identical."""
    _check_pair(img, ref)
    return ssim_plane(y_channel(img, crop_border=crop_border), y_channel(ref, crop_border=crop_border))
