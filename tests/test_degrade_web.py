"""The web degradation (blur, bicubic, JPEG) and the one per-image seed rule."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import cv2
import numpy as np
import pytest
import torch

from soccersr.degrade.ops import filter2d, resize
from soccersr.degrade.web import (
    WEB_BLUR_SIGMA,
    WEB_JPEG_QUALITY,
    gaussian_kernels,
    image_seed,
    mix_in_web,
    synthesize_lq,
    web_degrade_batch,
    web_degrade_image,
    web_params,
)


def _hr(tiny_dir: Path) -> np.ndarray:
    bgr = cv2.imread(str(tiny_dir / "01_players.png"))[:130, :98]
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB).astype(np.float32) / 255


def test_web_lq_is_blur_bicubic_jpeg_and_deterministic(tiny_dir: Path) -> None:
    hr = _hr(tiny_dir)
    lq = web_degrade_image(hr, scale=4, seed=7)
    assert lq.shape == (32, 24, 3) and lq.dtype == np.float32  # 130x98 cropped to 128x96, / 4
    np.testing.assert_array_equal(lq * 255, np.round(lq * 255))  # 8-bit levels of a decoded JPEG
    np.testing.assert_array_equal(lq, web_degrade_image(hr, scale=4, seed=7))
    assert not np.array_equal(lq, web_degrade_image(hr, scale=4, seed=8))
    # Independent reference with the drawn parameters.
    sigma, quality = web_params(7)
    blurred = cv2.GaussianBlur(hr[:128, :96], (0, 0), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REFLECT_101)
    small = cv2.resize(blurred, (24, 32), interpolation=cv2.INTER_CUBIC)
    ok, data = cv2.imencode(
        ".jpg",
        cv2.cvtColor(np.clip(np.rint(small * 255), 0, 255).astype(np.uint8), cv2.COLOR_RGB2BGR),
        [cv2.IMWRITE_JPEG_QUALITY, quality],
    )
    ref = cv2.cvtColor(cv2.imdecode(data, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB).astype(np.float32) / 255
    assert np.abs(lq - ref).mean() < 2 / 255  # kernel radius 3 sigma vs OpenCV's default width


def test_web_params_cover_the_ranges() -> None:
    drawn = [web_params(seed) for seed in range(400)]
    sigmas, qualities = [s for s, _ in drawn], [q for _, q in drawn]
    assert WEB_BLUR_SIGMA[0] <= min(sigmas) < 0.7 and 1.3 < max(sigmas) <= WEB_BLUR_SIGMA[1]
    assert min(qualities) == WEB_JPEG_QUALITY[0] and max(qualities) == WEB_JPEG_QUALITY[1]


def test_image_seed_is_63_bits_of_the_seed_and_relative_path() -> None:
    seed = image_seed(3, "a.png")
    assert 0 <= seed < 2**63 and seed == image_seed(3, PurePosixPath("a.png")) == image_seed(3, Path("a.png"))
    assert (
        len({image_seed(3, "a.png"), image_seed(4, "a.png"), image_seed(3, "sub/a.png"), image_seed(3, "b.png")}) == 4
    )


def test_synthesize_lq_dispatches_and_refuses_unknown_kinds(tiny_dir: Path) -> None:
    from soccersr.degrade import degrade_image

    hr = _hr(tiny_dir)
    np.testing.assert_array_equal(
        synthesize_lq(hr, kind="web", scale=4, seed=1), web_degrade_image(hr, scale=4, seed=1)
    )
    np.testing.assert_array_equal(
        synthesize_lq(hr, kind="training", scale=4, seed=1), degrade_image(hr, scale=4, seed=1)
    )
    with pytest.raises(ValueError, match="unknown degradation 'bicubic'"):
        synthesize_lq(hr, kind="bicubic", scale=4, seed=1)
    with pytest.raises(ValueError, match="smaller than the scale"):
        web_degrade_image(hr[:3], scale=4, seed=1)


def test_web_batch_matches_the_opencv_reference(tiny_dir: Path) -> None:
    """Blur and bicubic agree with OpenCV to float rounding; only the JPEG codec differs (ours vs libjpeg)."""
    hr = _hr(tiny_dir)[:128, :96]
    batch = torch.from_numpy(np.stack([hr, hr[::-1]]).transpose(0, 3, 1, 2).copy())
    draws = [web_params(seed) for seed in (3, 4)]
    sigma = torch.tensor([d[0] for d in draws])
    quality = torch.tensor([float(d[1]) for d in draws])
    ours = resize(filter2d(batch, gaussian_kernels(sigma)), "bicubic", size=(32, 24))
    for i, (s, _) in enumerate(draws):
        radius = int(np.ceil(3 * s))
        blurred = cv2.GaussianBlur(
            batch[i].numpy().transpose(1, 2, 0), (2 * radius + 1,) * 2, sigmaX=s, sigmaY=s,
            borderType=cv2.BORDER_REFLECT_101,
        )  # fmt: skip
        small = cv2.resize(blurred, (24, 32), interpolation=cv2.INTER_CUBIC)
        np.testing.assert_allclose(ours[i].numpy().transpose(1, 2, 0), small, atol=2e-6)
    lq = web_degrade_batch(batch, sigma, quality)
    assert lq.shape == (2, 3, 32, 24) and torch.equal(lq, torch.round(lq * 255) / 255)
    for i, seed in enumerate((3, 4)):
        reference = web_degrade_image(batch[i].numpy().transpose(1, 2, 0), seed=seed)
        mse = float(np.mean((lq[i].numpy().transpose(1, 2, 0) - reference) ** 2))
        assert 10 * np.log10(1 / mse) > 36  # two JPEG codecs at q55-85 on a 96x128 crop


def test_gaussian_kernels_pad_each_support_to_the_widest() -> None:
    kernels = gaussian_kernels(torch.tensor([0.6, 1.4]))
    assert kernels.shape == (2, 11, 11)  # 2 * ceil(4.2) + 1
    np.testing.assert_allclose(kernels.sum(dim=(1, 2)).numpy(), 1, atol=1e-6)
    assert torch.all(kernels[0, :3] == 0) and torch.all(kernels[0, :, -3:] == 0)  # 0.6: 5 taps, centred
    taps = cv2.getGaussianKernel(11, 1.4)[:, 0]
    np.testing.assert_allclose(kernels[1].numpy(), np.outer(taps, taps), atol=1e-7)


def test_mix_in_web_replaces_the_chosen_share_and_keeps_the_stream() -> None:
    hr = torch.rand(64, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    lq = torch.full((64, 3, 4, 4), -1.0)
    generator = torch.Generator().manual_seed(5)
    mixed = mix_in_web(lq, hr, 0.5, scale=4, generator=generator)
    after = torch.rand(1, generator=generator)
    replaced = (mixed != -1).flatten(1).all(dim=1)
    kept = (mixed == -1).flatten(1).all(dim=1)
    assert bool((replaced | kept).all()) and 16 < int(replaced.sum()) < 48
    assert torch.equal(mix_in_web(lq, hr, 0.5, scale=4, generator=torch.Generator().manual_seed(5)), mixed)
    # Nothing chosen: the same numbers are drawn, so what follows is unchanged.
    generator = torch.Generator().manual_seed(5)
    assert mix_in_web(lq, hr, 0.0, scale=4, generator=generator) is lq
    assert torch.equal(torch.rand(1, generator=generator), after)
    assert bool((mix_in_web(lq, hr, 1.0, scale=4, generator=torch.Generator().manual_seed(5)) != -1).all())
