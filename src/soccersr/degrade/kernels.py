"""Blur kernels of the Real-ESRGAN degradation, built for a whole batch at once.

Every kernel lives on a ``size x size`` grid (21 in the official recipe). A kernel of odd size
``k < size`` is evaluated on the same centred grid, cut to its central ``k x k`` window and
normalised there, which equals the official "build a k x k kernel, then zero-pad it to 21".

Families (Q is the squared Mahalanobis distance of the grid point for sigma_x, sigma_y, theta):
Gaussian ``exp(-Q/2)``, generalized Gaussian ``exp(-Q**beta/2)``, plateau ``1/(1 + Q**beta)``;
the ``_iso`` variants use sigma_y = sigma_x and theta = 0. The sinc kernel is the circular
low-pass ``wc * J1(wc*r) / (2*pi*r)`` with ``wc**2 / (4*pi)`` at the centre.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from soccersr.degrade.config import BLUR_KERNELS, KERNEL_TYPES, StageConfig

SINC = KERNEL_TYPES.index("sinc")
"""Kernel type index of the sinc kernel (the blur families come first, in ``BLUR_KERNELS`` order)."""

# Official cut-off ranges: small sinc kernels get a narrower range, since a low cut-off needs
# room to ring; the final sinc always uses [pi/3, pi].
_SMALL_SINC_OMEGA = (math.pi / 3, math.pi)
_LARGE_SINC_OMEGA = (math.pi / 5, math.pi)
_LARGE_SINC_FROM = 13
_ROTATION_RANGE = (-math.pi, math.pi)

# Family flags per index of BLUR_KERNELS.
_IS_ISO = torch.tensor([not name.endswith("aniso") for name in BLUR_KERNELS])
_IS_GENERALIZED = torch.tensor([name.startswith("generalized") for name in BLUR_KERNELS])
_IS_PLATEAU = torch.tensor([name.startswith("plateau") for name in BLUR_KERNELS])


def _grid(size: int) -> tuple[Tensor, Tensor]:
    """Centred integer grid: x grows along columns, y along rows (float64, (size, size))."""
    ax = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    y, x = torch.meshgrid(ax, ax, indexing="ij")
    return x, y


def _window(size: int, kernel_size: Tensor) -> Tensor:
    """(B, size, size) bool: the central ``kernel_size x kernel_size`` square of each sample."""
    x, y = _grid(size)
    radius = ((kernel_size.to(torch.float64) - 1) / 2).view(-1, 1, 1)
    return (x.abs() <= radius) & (y.abs() <= radius)


def _normalise(kernel: Tensor, window: Tensor) -> Tensor:
    kernel = torch.where(window, kernel, torch.zeros((), dtype=kernel.dtype))
    return kernel / kernel.sum(dim=(-2, -1), keepdim=True)


def blur_kernels(
    kind: Tensor, kernel_size: Tensor, sigma_x: Tensor, sigma_y: Tensor, theta: Tensor, beta: Tensor, *, size: int = 21
) -> Tensor:
    """Per-sample blur kernels of the six Real-ESRGAN families.

    Args:
        kind: (B,) int64 index into ``BLUR_KERNELS``.
        kernel_size: (B,) odd support of each kernel (<= ``size``); zero outside it.
        sigma_x, sigma_y, theta: (B,) Gaussian widths (pixels) and rotation (radians); the
            isotropic families ignore sigma_y and theta.
        beta: (B,) shape of the generalized and plateau families (ignored by the Gaussians).
        size: side of the returned kernels.

    Returns:
        (B, size, size) float32 kernels, each summing to 1.
    """
    iso = _IS_ISO[kind]
    generalized = _IS_GENERALIZED[kind]
    plateau = _IS_PLATEAU[kind]

    sx = sigma_x.to(torch.float64).view(-1, 1, 1)
    sy = torch.where(iso, sigma_x, sigma_y).to(torch.float64).view(-1, 1, 1)
    th = torch.where(iso, torch.zeros_like(theta), theta).to(torch.float64).view(-1, 1, 1)
    x, y = _grid(size)
    u = x * th.cos() + y * th.sin()
    v = -x * th.sin() + y * th.cos()
    q = (u / sx) ** 2 + (v / sy) ** 2
    b = torch.where(generalized | plateau, beta.to(torch.float64), torch.ones_like(beta, dtype=torch.float64))
    qb = q ** b.view(-1, 1, 1)
    kernel = torch.where(plateau.view(-1, 1, 1), 1.0 / (qb + 1.0), torch.exp(-0.5 * qb))
    return _normalise(kernel, _window(size, kernel_size)).to(torch.float32)


def sinc_kernels(omega_c: Tensor, kernel_size: Tensor, *, size: int = 21) -> Tensor:
    """Per-sample circular low-pass (2-D sinc) kernels.

    Args:
        omega_c: (B,) cut-off frequency in radians (pi is the Nyquist frequency).
        kernel_size: (B,) odd support of each kernel (<= ``size``).

    Returns:
        (B, size, size) float32 kernels, each summing to 1.
    """
    x, y = _grid(size)
    r = torch.sqrt(x**2 + y**2)
    wc = omega_c.to(torch.float64).view(-1, 1, 1)
    safe_r = torch.where(r > 0, r, torch.ones_like(r))
    kernel = wc * torch.special.bessel_j1(wc * safe_r) / (2 * math.pi * safe_r)
    kernel = torch.where(r > 0, kernel, wc**2 / (4 * math.pi))
    return _normalise(kernel, _window(size, kernel_size)).to(torch.float32)


def pulse_kernels(batch: int, *, size: int = 21) -> Tensor:
    """(B, size, size) identity kernels: filtering with them changes nothing."""
    kernel = torch.zeros(batch, size, size)
    kernel[:, size // 2, size // 2] = 1.0
    return kernel


def uniform(generator: torch.Generator, n: int, low: Tensor | float, high: Tensor | float) -> Tensor:
    """(n,) float64 draws from U(low, high) (bounds may be per-sample tensors)."""
    return low + (high - low) * torch.rand(n, generator=generator, dtype=torch.float64)


@dataclass(frozen=True)
class SampledKernels:
    """Kernels drawn for one stage, with what was drawn (for logging and tests)."""

    kernel: Tensor
    """(B, size, size) float32."""
    kind: Tensor
    """(B,) int64 index into ``KERNEL_TYPES`` (``SINC`` for sinc kernels)."""
    kernel_size: Tensor
    """(B,) int64 odd support."""


def sample_stage_kernels(
    stage: StageConfig, kernel_sizes: tuple[int, ...], batch: int, *, size: int, generator: torch.Generator
) -> SampledKernels:
    """Draw one blur-or-sinc kernel per sample, as the official dataset does for each order.

    Every random number is drawn for every sample whatever the outcome, so the stream consumed
    from ``generator`` depends only on ``batch``.
    """
    sizes = torch.tensor(kernel_sizes)
    kernel_size = sizes[torch.randint(len(kernel_sizes), (batch,), generator=generator)]
    is_sinc = torch.rand(batch, generator=generator, dtype=torch.float64) < stage.sinc_prob
    large = kernel_size >= _LARGE_SINC_FROM
    omega = torch.where(
        large,
        uniform(generator, batch, *_LARGE_SINC_OMEGA),
        uniform(generator, batch, *_SMALL_SINC_OMEGA),
    )
    probs = torch.tensor(stage.kernel_prob, dtype=torch.float64)
    choice = torch.multinomial(probs, batch, replacement=True, generator=generator)
    kind = torch.tensor([BLUR_KERNELS.index(n) for n in stage.kernel_list])[choice]
    sigma_x = uniform(generator, batch, *stage.blur_sigma)
    sigma_y = uniform(generator, batch, *stage.blur_sigma)
    theta = uniform(generator, batch, *_ROTATION_RANGE)
    # Official: beta is uniform below 1 or above 1 with equal odds, whatever the range.
    below = torch.rand(batch, generator=generator, dtype=torch.float64) < 0.5
    beta_range = torch.where(
        _IS_GENERALIZED[kind].view(-1, 1),
        torch.tensor(stage.betag_range, dtype=torch.float64),
        torch.tensor(stage.betap_range, dtype=torch.float64),
    )
    beta_low = uniform(generator, batch, beta_range[:, 0], 1.0)
    beta_high = uniform(generator, batch, 1.0, beta_range[:, 1])
    beta = torch.where(below, beta_low, beta_high)

    blur = blur_kernels(kind, kernel_size, sigma_x, sigma_y, theta, beta, size=size)
    sinc = sinc_kernels(omega, kernel_size, size=size)
    kernel = torch.where(is_sinc.view(-1, 1, 1), sinc, blur)
    kind = torch.where(is_sinc, torch.full_like(kind, SINC), kind)
    return SampledKernels(kernel=kernel, kind=kind, kernel_size=kernel_size)


def sample_final_sinc(
    prob: float, kernel_sizes: tuple[int, ...], batch: int, *, size: int, generator: torch.Generator
) -> tuple[Tensor, Tensor]:
    """Draw the final sinc kernel per sample: (kernels (B, size, size), applied (B,) bool).

    Samples without a sinc get the identity pulse, as in the official dataset.
    """
    sizes = torch.tensor(kernel_sizes)
    kernel_size = sizes[torch.randint(len(kernel_sizes), (batch,), generator=generator)]
    applied = torch.rand(batch, generator=generator, dtype=torch.float64) < prob
    omega = uniform(generator, batch, *_SMALL_SINC_OMEGA)
    sinc = sinc_kernels(omega, kernel_size, size=size)
    kernel = torch.where(applied.view(-1, 1, 1), sinc, pulse_kernels(batch, size=size))
    return kernel, applied
