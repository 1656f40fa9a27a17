"""PSNR / SSIM on Y: known values, an independent reference, and the BasicSR conventions."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from soccersr.metrics import psnr, psnr_from_mse, quantize_8bit, rgb_to_y, ssim, ssim_plane


def _read(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0


def _gray(value: float, h: int = 32, w: int = 40) -> np.ndarray:
    return np.full((h, w, 3), value, np.float32)


# An independent reference: explicit Y formula per channel, 2-D window built from math.exp, every
# 11x11 neighbourhood materialised with sliding_window_view (no filtering routine involved).
def _ref_y(rgb: np.ndarray, border: int) -> np.ndarray:
    q = np.round(np.clip(rgb.astype(np.float64), 0, 1) * 255) / 255
    y = 16.0 + 65.481 * q[..., 0] + 128.553 * q[..., 1] + 24.966 * q[..., 2]
    return y[border:-border, border:-border] if border else y


def _ref_psnr(a: np.ndarray, b: np.ndarray, border: int) -> float:
    mse = np.mean((_ref_y(a, border) - _ref_y(b, border)) ** 2)
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


def _ref_ssim(a: np.ndarray, b: np.ndarray, border: int) -> float:
    x, y = _ref_y(a, border), _ref_y(b, border)
    g = np.array([[math.exp(-((i - 5) ** 2 + (j - 5) ** 2) / (2 * 1.5**2)) for j in range(11)] for i in range(11)])
    g /= g.sum()
    wx, wy = sliding_window_view(x, (11, 11)), sliding_window_view(y, (11, 11))
    mx = np.einsum("ijkl,kl->ij", wx, g)
    my = np.einsum("ijkl,kl->ij", wy, g)
    vx = np.einsum("ijkl,kl->ij", wx * wx, g) - mx**2
    vy = np.einsum("ijkl,kl->ij", wy * wy, g) - my**2
    cxy = np.einsum("ijkl,kl->ij", wx * wy, g) - mx * my
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    return float(np.mean((2 * mx * my + c1) * (2 * cxy + c2) / ((mx**2 + my**2 + c1) * (vx + vy + c2))))


def test_psnr_constant_offset_matches_hand_computation() -> None:
    # Gray pixels: Y = 16 + 219 v, so 5 8-bit levels apart are 219*5/255 apart in Y everywhere.
    a, b = _gray(100 / 255), _gray(105 / 255)
    expected = 20 * math.log10(255.0**2 / (219 * 5))
    assert psnr(a, b, crop_border=4) == pytest.approx(expected, abs=1e-9)
    assert psnr(a, b, crop_border=4) == pytest.approx(35.47332483383546, abs=1e-9)


def test_identical_images_are_perfect() -> None:
    img = np.random.default_rng(0).random((40, 48, 3)).astype(np.float32)
    assert psnr(img, img, crop_border=4) == math.inf
    assert ssim(img, img, crop_border=4) == pytest.approx(1.0, abs=1e-12)


def test_ssim_of_flat_images_is_the_luminance_term() -> None:
    # No variance anywhere: SSIM = (2 mu_a mu_b + C1) / (mu_a^2 + mu_b^2 + C1).
    a, b = _gray(100 / 255), _gray(140 / 255)
    ya, yb = 16 + 219 * 100 / 255, 16 + 219 * 140 / 255
    c1 = (0.01 * 255) ** 2
    expected = (2 * ya * yb + c1) / (ya**2 + yb**2 + c1)
    assert ssim(a, b, crop_border=0) == pytest.approx(expected, abs=1e-9)


def test_y_is_bt601_studio_swing() -> None:
    px = np.array([[[0, 0, 0], [1, 1, 1], [1, 0, 0], [0, 1, 0], [0, 0, 1]]], np.float32)
    np.testing.assert_allclose(rgb_to_y(px)[0], [16, 235, 16 + 65.481, 16 + 128.553, 16 + 24.966], atol=1e-9)


def test_border_is_excluded() -> None:
    a = np.random.default_rng(1).random((32, 32, 3)).astype(np.float32)
    b = a.copy()
    b[:4] = 0  # damage only the top 4 rows, inside the x4 crop border
    assert psnr(b, a, crop_border=4) == math.inf
    assert ssim(b, a, crop_border=4) == pytest.approx(1.0)
    assert psnr(b, a, crop_border=3) < 40


def test_inputs_are_rounded_to_8_bit_first() -> None:
    a = _gray(100 / 255)
    b = a + np.float32(0.4 / 255)  # rounds back to level 100
    assert psnr(b, a, crop_border=0) == math.inf
    np.testing.assert_array_equal(quantize_8bit(b), quantize_8bit(a))


def test_against_independent_reference_on_soccer_crops(soccer_crops: Path) -> None:
    hr = _read(soccer_crops / "01_players.png")[:96, :112]
    blurred = cv2.GaussianBlur(hr, (0, 0), 1.2)
    noisy = np.clip(hr + np.random.default_rng(2).normal(0, 0.03, hr.shape), 0, 1).astype(np.float32)
    for other in (blurred, noisy):
        assert psnr(other, hr, crop_border=4) == pytest.approx(_ref_psnr(other, hr, 4), abs=1e-9)
        assert ssim(other, hr, crop_border=4) == pytest.approx(_ref_ssim(other, hr, 4), abs=1e-9)


PINNED_PSNR = 31.209065787911932
PINNED_SSIM = 0.8352706602266355


def test_pinned_values_on_a_soccer_crop(soccer_crops: Path) -> None:
    # Computed once with the reference above (float64); guards against silent definition changes.
    hr = _read(soccer_crops / "04_lines.png").astype(np.float64)
    # A 3x3 mean in float64 (no library filter whose rounding could change between versions).
    padded = np.pad(hr, ((1, 1), (1, 1), (0, 0)), mode="edge")
    height, width = hr.shape[:2]
    blurred = sum(padded[i : i + height, j : j + width] for i in range(3) for j in range(3)) / 9
    assert psnr(blurred, hr, crop_border=4) == pytest.approx(PINNED_PSNR, abs=1e-6)
    assert ssim(blurred, hr, crop_border=4) == pytest.approx(PINNED_SSIM, abs=1e-7)


def test_psnr_and_ssim_reject_mismatched_or_tiny_inputs() -> None:
    with pytest.raises(ValueError, match="shapes differ"):
        psnr(_gray(0.5, 20, 20), _gray(0.5, 20, 24), crop_border=0)
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim_plane(np.zeros((10, 30)), np.zeros((10, 30)))
    with pytest.raises(ValueError):
        psnr_from_mse(-1.0)
    assert psnr_from_mse(0.0) == math.inf
