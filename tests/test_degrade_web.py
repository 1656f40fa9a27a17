"""The web degradation (blur, bicubic, JPEG) and the one per-image seed rule."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import cv2
import numpy as np
import pytest

from soccersr.degrade.web import (
    WEB_BLUR_SIGMA,
    WEB_JPEG_QUALITY,
    image_seed,
    synthesize_lq,
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
