"""Blur and sinc kernels: closed forms, symmetry, normalisation and sampling frequencies."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from soccersr.degrade import BLUR_KERNELS, KERNEL_TYPES, StageConfig
from soccersr.degrade.kernels import (
    SINC,
    blur_kernels,
    pulse_kernels,
    sample_final_sinc,
    sample_stage_kernels,
    sinc_kernels,
)

SIZES = (7, 9, 11, 13, 15, 17, 19, 21)


def _one(kind: str, kernel_size: int, sx: float, sy: float = 1.0, theta: float = 0.0, beta: float = 1.0) -> np.ndarray:
    t = lambda v: torch.tensor([v], dtype=torch.float64)  # noqa: E731
    k = blur_kernels(
        torch.tensor([BLUR_KERNELS.index(kind)]), torch.tensor([kernel_size]), t(sx), t(sy), t(theta), t(beta)
    )
    return k[0].double().numpy()


def _reference(kind: str, k: int, sx: float, sy: float, theta: float, beta: float) -> np.ndarray:
    """Independent numpy version of the official formulas: k x k kernel, normalised, zero-padded to 21."""
    ax = np.arange(k) - (k - 1) / 2
    xx, yy = np.meshgrid(ax, ax)  # xx varies along columns
    if kind.endswith("aniso"):
        rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
        cov = rot @ np.diag([sx**2, sy**2]) @ rot.T
    else:
        cov = np.diag([sx**2, sx**2])
    inv = np.linalg.inv(cov)
    q = inv[0, 0] * xx**2 + (inv[0, 1] + inv[1, 0]) * xx * yy + inv[1, 1] * yy**2
    if kind.startswith("plateau"):
        kernel = 1 / (q**beta + 1)
    elif kind.startswith("generalized"):
        kernel = np.exp(-0.5 * q**beta)
    else:
        kernel = np.exp(-0.5 * q)
    kernel /= kernel.sum()
    pad = (21 - k) // 2
    return np.pad(kernel, pad)


def _bessel_j1(x: np.ndarray) -> np.ndarray:
    """J1 from Bessel's integral over a full period (trapezoid rule is spectrally accurate there)."""
    tau = np.linspace(0, 2 * np.pi, 512, endpoint=False)
    return np.cos(tau[None, :] - np.asarray(x).reshape(-1, 1) * np.sin(tau[None, :])).mean(axis=1).reshape(np.shape(x))


def test_isotropic_gaussian_matches_the_closed_form() -> None:
    kernel = _one("iso", 3, sx=1.0)
    total = 1 + 4 * math.exp(-0.5) + 4 * math.exp(-1.0)
    centre = kernel[10, 10]
    assert centre == pytest.approx(1 / total, abs=1e-7)  # 0.204180...
    assert kernel[10, 11] == pytest.approx(math.exp(-0.5) / total, abs=1e-7)
    assert kernel[9, 9] == pytest.approx(math.exp(-1.0) / total, abs=1e-7)
    assert kernel[10, 12] == 0 and kernel[8, 10] == 0  # outside the 3x3 support


@pytest.mark.parametrize("kind", BLUR_KERNELS)
def test_every_family_matches_an_independent_reference(kind: str) -> None:
    sx, sy, theta, beta, k = 2.3, 0.9, 0.7, 1.6, 15
    ours = _one(kind, k, sx, sy, theta, beta)
    np.testing.assert_allclose(ours, _reference(kind, k, sx, sy, theta, beta), atol=2e-7)


def test_generalized_with_beta_one_is_gaussian_and_plateau_value() -> None:
    np.testing.assert_allclose(
        _one("generalized_aniso", 11, 2.0, 1.0, 0.3, 1.0), _one("aniso", 11, 2.0, 1.0, 0.3), atol=1e-7
    )
    # Plateau at distance 2 along x with sigma 2 (Q = 1): 1 / (1 + 1) relative to the centre's 1 / (0 + 1).
    kernel = _one("plateau_iso", 21, 2.0, beta=1.7)
    assert kernel[10, 12] / kernel[10, 10] == pytest.approx(0.5, abs=1e-6)


def test_isotropic_kernels_are_symmetric_and_anisotropic_point_symmetric() -> None:
    for kind in ("iso", "generalized_iso", "plateau_iso"):
        kernel = _one(kind, 13, 2.0, 0.5, 1.0, 0.8)
        np.testing.assert_allclose(kernel, kernel.T, atol=1e-8)
        np.testing.assert_allclose(kernel, kernel[::-1], atol=1e-8)
    aniso = _one("aniso", 21, 3.0, 0.5, 0.6)
    np.testing.assert_allclose(aniso, aniso[::-1, ::-1], atol=1e-8)
    assert np.abs(aniso - aniso.T).max() > 1e-3  # genuinely anisotropic and rotated
    # Rotation by pi/2 swaps the axes: the kernel transposes.
    np.testing.assert_allclose(_one("aniso", 21, 3.0, 0.5, math.pi / 2), _one("aniso", 21, 0.5, 3.0, 0.0), atol=1e-7)


def test_sinc_matches_the_bessel_closed_form() -> None:
    omega, k = 1.3, 13
    ours = sinc_kernels(torch.tensor([omega]), torch.tensor([k]))[0].double().numpy()
    ax = np.arange(k) - (k - 1) / 2
    r = np.hypot(*np.meshgrid(ax, ax))
    safe = np.where(r > 0, r, 1.0)
    ref = np.where(r > 0, omega * _bessel_j1(omega * safe) / (2 * np.pi * safe), omega**2 / (4 * np.pi))
    ref = np.pad(ref / ref.sum(), (21 - k) // 2)
    np.testing.assert_allclose(ours, ref, atol=1e-7)
    assert ours.min() < 0  # a sinc rings


def test_pulse_is_identity_kernel() -> None:
    pulse = pulse_kernels(2)
    assert pulse.shape == (2, 21, 21) and pulse.sum() == 2 and pulse[:, 10, 10].tolist() == [1.0, 1.0]


def test_sampled_kernels_are_normalised_and_supported_in_their_window() -> None:
    gen = torch.Generator().manual_seed(0)
    out = sample_stage_kernels(StageConfig(), SIZES, 256, size=21, generator=gen)
    assert out.kernel.shape == (256, 21, 21) and out.kernel.dtype == torch.float32
    torch.testing.assert_close(out.kernel.sum(dim=(1, 2)), torch.ones(256), atol=1e-5, rtol=0)
    ax = torch.arange(21) - 10
    outside = (ax.abs().view(1, 1, 21) > (out.kernel_size.view(-1, 1, 1) - 1) // 2) | (
        ax.abs().view(1, 21, 1) > (out.kernel_size.view(-1, 1, 1) - 1) // 2
    )
    assert (out.kernel[outside] == 0).all()
    assert set(out.kernel_size.tolist()) <= set(SIZES)


def test_kernel_type_and_size_frequencies_match_the_config() -> None:
    n = 6000
    stage = StageConfig()
    out = sample_stage_kernels(stage, SIZES, n, size=21, generator=torch.Generator().manual_seed(1))
    counts = torch.bincount(out.kind, minlength=len(KERNEL_TYPES)).double() / n
    expected = [p * (1 - stage.sinc_prob) for p in stage.kernel_prob] + [stage.sinc_prob]
    for name, got, want in zip(KERNEL_TYPES, counts.tolist(), expected, strict=True):
        se = math.sqrt(want * (1 - want) / n)
        assert abs(got - want) < 4 * se + 1e-9, f"{name}: {got:.4f} vs {want:.4f}"
    sizes = torch.bincount(out.kernel_size, minlength=22)[list(SIZES)].double() / n
    assert (sizes - 1 / 8).abs().max() < 4 * math.sqrt(1 / 8 * 7 / 8 / n)
    assert out.kind.eq(SINC).any() and all(out.kind.eq(i).any() for i in range(len(BLUR_KERNELS)))


def test_only_listed_kernels_are_drawn() -> None:
    stage = StageConfig(kernel_list=("plateau_aniso",), kernel_prob=(1.0,), sinc_prob=0.0)
    out = sample_stage_kernels(stage, SIZES, 64, size=21, generator=torch.Generator().manual_seed(2))
    assert out.kind.eq(BLUR_KERNELS.index("plateau_aniso")).all()


def test_final_sinc_is_pulse_when_not_applied() -> None:
    kernel, applied = sample_final_sinc(0.8, SIZES, 4000, size=21, generator=torch.Generator().manual_seed(3))
    assert abs(applied.double().mean().item() - 0.8) < 4 * math.sqrt(0.8 * 0.2 / 4000)
    torch.testing.assert_close(kernel[~applied], pulse_kernels(int((~applied).sum())))
    assert (kernel[applied] < 0).any()
