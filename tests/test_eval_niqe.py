"""NIQE: the pieces against hand-derived values and a loop reference, fitting, ranking, files."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from soccersr.eval.niqe import (
    NiqeError,
    NiqeModel,
    _gaussian_window,
    _patch_features,
    _resize_rows,
    fit_niqe,
    image_features,
    imresize_half,
    load_niqe_model,
    mscn,
    niqe_score,
    save_niqe_model,
)

PATCH = 32  # small patches keep the tests fast on the 192x192 crops


def _read(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0


@pytest.fixture(scope="module")
def crops(soccer_crops: Path) -> list[tuple[str, np.ndarray]]:
    return [(p.name, _read(p)) for p in sorted(soccer_crops.glob("*.png"))]


@pytest.fixture(scope="module")
def model(crops: list[tuple[str, np.ndarray]]) -> NiqeModel:
    return fit_niqe(crops, patch_size=PATCH)


def test_imresize_half_weights_are_matlabs_antialiased_bicubic() -> None:
    # Keys cubic (a=-0.5) stretched x2 and halved, at distances 0.25, 0.75, 1.25, 1.75 (derived by hand).
    interior = [-0.01171875, -0.03515625, 0.11328125, 0.43359375, 0.43359375, 0.11328125, -0.03515625, -0.01171875]
    mat = _resize_rows(np.eye(16), 0.5)  # the rows of the identity, resized: the resize as an (out, in) matrix
    assert mat.shape == (8, 16)
    np.testing.assert_allclose(mat[3, 3:11], interior, atol=1e-15)
    # At the border MATLAB mirrors with the edge repeated: taps at 0, -1, -2 land on 1, 2, 3.
    np.testing.assert_allclose(mat[0, :5], [0.546875, 0.3984375, 0.1015625, -0.03515625, -0.01171875], atol=1e-15)
    np.testing.assert_allclose(mat.sum(axis=1), 1.0, atol=1e-12)


def test_imresize_half_keeps_constants_and_interior_ramps() -> None:
    np.testing.assert_allclose(imresize_half(np.full((12, 20), 7.0)), 7.0, atol=1e-12)
    ramp = np.tile(np.arange(1, 33, dtype=np.float64), (8, 1))  # value = 1-based column
    out = imresize_half(ramp)
    # Output column i (1-based) samples the source at u = 2i - 0.5; cubics reproduce linear ramps.
    np.testing.assert_allclose(out[:, 3:-3], np.tile(2 * np.arange(4, 14) - 0.5, (4, 1)), atol=1e-12)


def test_mscn_window_and_flat_input() -> None:
    w = _gaussian_window()
    assert w.shape == (7, 7) and w.sum() == pytest.approx(1.0)
    assert w[3, 3] / w[3, 4] == pytest.approx(math.exp(1 / (2 * (7 / 6) ** 2)))
    coeffs, sigma = mscn(np.full((20, 20), 80.0))
    np.testing.assert_allclose(coeffs, 0.0, atol=1e-9)
    np.testing.assert_allclose(sigma, 0.0, atol=1e-5)


# A straightforward per-patch reference written from the paper / reference code: scalar gamma
# functions, a Python loop over patches, np.roll per patch.
_GRID = np.arange(0.2, 10.001, 0.001)
_RATIO = np.array([math.gamma(2 / g) ** 2 / (math.gamma(1 / g) * math.gamma(3 / g)) for g in _GRID])


def _ref_aggd(x: np.ndarray) -> tuple[float, float, float]:
    x = x.ravel()
    left = math.sqrt(np.mean(x[x < 0] ** 2))
    right = math.sqrt(np.mean(x[x > 0] ** 2))
    g_hat = left / right
    r_hat = np.mean(np.abs(x)) ** 2 / np.mean(x**2)
    r_norm = r_hat * (g_hat**3 + 1) * (g_hat + 1) / (g_hat**2 + 1) ** 2
    alpha = _GRID[np.argmin((_RATIO - r_norm) ** 2)]
    spread = math.sqrt(math.gamma(1 / alpha) / math.gamma(3 / alpha))
    return alpha, left * spread, right * spread


def _ref_features(block: np.ndarray) -> list[float]:
    alpha, bl, br = _ref_aggd(block)
    feats = [alpha, (bl + br) / 2]
    for shift in ((0, 1), (1, 0), (1, 1), (1, -1)):
        alpha, bl, br = _ref_aggd(block * np.roll(block, shift, axis=(0, 1)))
        feats += [alpha, (br - bl) * math.gamma(2 / alpha) / math.gamma(1 / alpha), bl, br]
    return feats


def test_patch_features_match_the_loop_reference(crops: list[tuple[str, np.ndarray]]) -> None:
    from soccersr.eval.niqe import luma

    y = luma(crops[0][1])[:96, :64]
    coeffs, _ = mscn(y)
    ours = _patch_features(coeffs, PATCH)
    ref = [
        _ref_features(coeffs[r : r + PATCH, c : c + PATCH]) for r in range(0, 96, PATCH) for c in range(0, 64, PATCH)
    ]
    np.testing.assert_allclose(ours, np.array(ref), rtol=1e-9, atol=1e-12)
    feats, sharpness = image_features(y, PATCH)
    assert feats.shape == (6, 36)
    np.testing.assert_allclose(feats[:, :18], ours)
    half_coeffs, _ = mscn(imresize_half(y))
    np.testing.assert_allclose(feats[:, 18:], _patch_features(half_coeffs, PATCH // 2))
    assert sharpness.shape == (6,) and np.all(sharpness > 0)


def test_fit_is_deterministic_and_round_trips(
    crops: list[tuple[str, np.ndarray]], model: NiqeModel, tmp_path: Path
) -> None:
    again = fit_niqe(list(reversed(crops)), patch_size=PATCH)
    np.testing.assert_allclose(again.mu, model.mu, rtol=1e-12)
    np.testing.assert_allclose(again.cov, model.cov, rtol=1e-9, atol=1e-12)
    assert model.info["num_images"] == 6 and model.info["num_patches_total"] == 6 * 36  # 6x6 patches each
    assert 36 < model.info["num_patches_kept"] < model.info["num_patches_total"]
    path = tmp_path / "p.npz"
    save_niqe_model(model, path)
    loaded = load_niqe_model(path)
    np.testing.assert_array_equal(loaded.mu, model.mu)
    np.testing.assert_array_equal(loaded.cov, model.cov)
    assert loaded.patch_size == PATCH and loaded.info == model.info


def test_blur_and_noise_score_worse_than_the_sharp_image(crops: list[tuple[str, np.ndarray]], model: NiqeModel) -> None:
    rng = np.random.default_rng(0)
    for name, img in crops[:4]:
        sharp = niqe_score(img, model)
        blurred = niqe_score(cv2.GaussianBlur(img, (0, 0), 2.0), model)
        noisy = niqe_score(np.clip(img + rng.normal(0, 0.05, img.shape), 0, 1), model)
        # Measured on the six crops: blur adds 20 to 36, noise (sigma 0.05) adds 2.6 to 7.5.
        assert blurred > sharp + 3, name
        assert noisy > sharp + 2, name


# Computed once with this implementation after the checks above agreed with the loop reference.
PINNED_NIQE_01 = 2.3867930805807123


def test_pinned_score(crops: list[tuple[str, np.ndarray]], model: NiqeModel) -> None:
    assert niqe_score(crops[0][1], model) == pytest.approx(PINNED_NIQE_01, rel=1e-6)
    assert niqe_score(crops[0][1], model, crop_border=4) != pytest.approx(PINNED_NIQE_01, rel=1e-6)


def test_errors_name_the_problem(model: NiqeModel, tmp_path: Path) -> None:
    with pytest.raises(NiqeError, match="smaller than one 32x32"):
        niqe_score(np.zeros((20, 40, 3), np.float32), model)
    with pytest.raises(NiqeError, match="only 1 usable"):
        niqe_score(np.random.default_rng(0).random((40, 40, 3)), model)
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(NiqeError, match="bad.npz: not a NIQE params file"):
        load_niqe_model(bad)
    np.savez(tmp_path / "short.npz", mu_pris_param=np.zeros(5), cov_pris_param=np.eye(5))
    with pytest.raises(NiqeError, match="short.npz: .*mu \\(36,\\)"):
        load_niqe_model(tmp_path / "short.npz")
    with pytest.raises(NiqeError, match="no image large enough"):
        fit_niqe([("tiny", np.zeros((8, 8, 3)))], patch_size=PATCH)


def test_loads_basicsr_style_params(model: NiqeModel, tmp_path: Path) -> None:
    # BasicSR's niqe_pris_params.npz: (1, 36) mean, (36, 36) covariance, the window; nothing else.
    path = tmp_path / "niqe_pris_params.npz"
    np.savez(path, mu_pris_param=model.mu[None], cov_pris_param=model.cov, gaussian_window=_gaussian_window())
    loaded = load_niqe_model(path)
    assert loaded.patch_size == 96 and loaded.mu.shape == (36,)
    assert "external" in loaded.info["method"]
