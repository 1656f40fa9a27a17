"""Batched ops: per-sample filtering, padding, resize, noise statistics, 8-bit rounding."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch

from soccersr.degrade.ops import (
    add_noise,
    filter2d,
    filter2d_separable,
    gaussian_noise,
    poisson_noise,
    quantize_8bit,
    reflect_pad,
    resize,
)


def test_filter2d_matches_cv2_per_sample() -> None:
    gen = torch.Generator().manual_seed(0)
    img = torch.rand(3, 3, 30, 41, generator=gen)
    kernels = torch.rand(3, 7, 7, generator=gen)
    out = filter2d(img, kernels)
    for b in range(3):
        for c in range(3):
            # cv2.filter2D correlates, and BORDER_REFLECT_101 is torch's "reflect".
            ref = cv2.filter2D(img[b, c].numpy(), -1, kernels[b].numpy(), borderType=cv2.BORDER_REFLECT_101)
            np.testing.assert_allclose(out[b, c].numpy(), ref, atol=2e-5)


def test_filter2d_with_a_pulse_is_exactly_the_identity(device: torch.device) -> None:
    img = torch.rand(2, 3, 16, 16, device=device)
    pulse = torch.zeros(2, 21, 21)
    pulse[:, 10, 10] = 1
    assert torch.equal(filter2d(img, pulse), img)


def test_filter2d_shared_kernel_and_errors() -> None:
    img = torch.rand(2, 3, 12, 12)
    kernel = torch.rand(1, 5, 5)
    torch.testing.assert_close(filter2d(img, kernel), filter2d(img, kernel.expand(2, 5, 5)))
    with pytest.raises(ValueError, match="odd"):
        filter2d(img, torch.rand(2, 4, 4))
    with pytest.raises(ValueError, match="3 kernels for a batch of 2"):
        filter2d(img, torch.rand(3, 5, 5))


def test_reflect_pad_handles_pads_larger_than_the_image() -> None:
    img = torch.arange(12, dtype=torch.float32).view(1, 1, 3, 4)
    ours = reflect_pad(img, 7)[0, 0].numpy()
    np.testing.assert_array_equal(ours, np.pad(img[0, 0].numpy(), 7, mode="reflect"))
    torch.testing.assert_close(reflect_pad(img, 2), torch.nn.functional.pad(img, (2, 2, 2, 2), mode="reflect"))
    assert reflect_pad(torch.ones(1, 1, 1, 5), 3).shape == (1, 1, 7, 11)


def test_separable_filter_equals_the_outer_product() -> None:
    img = torch.rand(2, 3, 20, 33)
    k1 = torch.tensor([0.1, 0.2, 0.4, 0.2, 0.1])
    torch.testing.assert_close(filter2d_separable(img, k1), filter2d(img, torch.outer(k1, k1)[None]), atol=1e-6, rtol=0)


@pytest.mark.parametrize("mode", ["area", "bilinear", "bicubic"])
def test_resize_sizes(mode: str) -> None:
    img = torch.rand(2, 3, 40, 30)
    assert resize(img, mode, scale_factor=0.5).shape == (2, 3, 20, 15)
    assert resize(img, mode, scale_factor=1.37).shape == (2, 3, 54, 41)
    assert resize(img, mode, size=(7, 9)).shape == (2, 3, 7, 9)
    assert resize(img, mode, scale_factor=0.01).shape == (2, 3, 1, 1)
    assert resize(img, mode, size=(0, 5)).shape == (2, 3, 1, 5)


def test_area_downscale_by_two_is_the_block_mean() -> None:
    img = torch.rand(1, 3, 8, 8)
    torch.testing.assert_close(resize(img, "area", scale_factor=0.5), img.view(1, 3, 4, 2, 4, 2).mean(dim=(3, 5)))


def test_gaussian_noise_sigma_and_gray(device: torch.device) -> None:
    img = torch.full((4, 3, 128, 128), 0.5, device=device)
    gen = torch.Generator(device=device).manual_seed(0)
    sigma = torch.tensor([1.0, 10.0, 25.0, 25.0])
    gray = torch.tensor([False, False, False, True])
    noise = gaussian_noise(img, sigma.to(device), gray.to(device), generator=gen).cpu()
    measured = noise.std(dim=(1, 2, 3)) * 255
    torch.testing.assert_close(measured, sigma, rtol=0.02, atol=0)
    assert torch.equal(noise[3, 0], noise[3, 1]) and torch.equal(noise[3, 1], noise[3, 2])
    assert not torch.equal(noise[2, 0], noise[2, 1])
    assert abs(noise.mean().item()) < 1e-3


def test_poisson_noise_follows_the_level_count() -> None:
    # A ramp using all 256 levels: 2**ceil(log2(256)) = 256 "photons" at full scale,
    # so the noise variance at value v is scale**2 * v / 256.
    ramp = torch.arange(256, dtype=torch.float32).repeat(64, 1) / 255
    img = ramp.expand(2, 3, 64, 256).contiguous()
    gen = torch.Generator().manual_seed(1)
    noise = poisson_noise(img, torch.tensor([1.0, 2.0]), torch.tensor([False, True]), generator=gen)
    expected_var = img[0].mean().item() / 256
    assert noise[0].var().item() == pytest.approx(expected_var, rel=0.05)
    assert noise[1].var().item() == pytest.approx(4 * expected_var, rel=0.05)
    assert torch.equal(noise[1, 0], noise[1, 2])  # gray: one plane for all channels
    assert abs(noise[0].mean().item()) < 2e-3


def test_poisson_noise_on_a_flat_image_uses_one_level() -> None:
    # Official quirk kept: a flat image has 1 distinct level, so the photon count is 1.
    img = torch.full((1, 3, 64, 64), 0.5)
    noise = poisson_noise(img, torch.tensor([1.0]), torch.tensor([False]), generator=torch.Generator().manual_seed(0))
    assert noise.var().item() == pytest.approx(0.5, rel=0.1)


def test_add_noise_is_clamped_deterministic_and_independent_of_the_mix() -> None:
    img = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    sigma, scale = torch.tensor([20.0, 20.0]), torch.tensor([1.0, 1.0])
    gray = torch.tensor([False, False])
    both_gauss = add_noise(img, torch.tensor([True, True]), sigma, scale, gray, seed=7)
    mixed = add_noise(img, torch.tensor([True, False]), sigma, scale, gray, seed=7)
    assert torch.equal(both_gauss[0], mixed[0])
    assert not torch.equal(both_gauss[1], mixed[1])
    assert torch.equal(mixed, add_noise(img, torch.tensor([True, False]), sigma, scale, gray, seed=7))
    assert not torch.equal(mixed, add_noise(img, torch.tensor([True, False]), sigma, scale, gray, seed=8))
    assert mixed.min() >= 0 and mixed.max() <= 1


def test_quantize_8bit_levels() -> None:
    x = torch.tensor([-0.2, 0.0, 0.5, 0.50196, 1.3, 0.999])
    out = quantize_8bit(x)
    levels = out * 255
    torch.testing.assert_close(levels, levels.round(), atol=1e-4, rtol=0)
    assert out.tolist() == pytest.approx([0.0, 0.0, 128 / 255, 128 / 255, 1.0, 1.0], abs=1e-7)
    assert math.isclose(
        float(quantize_8bit(torch.tensor(0.5)) * 255), 128.0, abs_tol=1e-4
    )  # half to even: 127.5 -> 128
