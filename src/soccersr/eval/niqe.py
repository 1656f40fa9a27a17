"""NIQE, the no-reference "naturalness" score (Mittal, Soundararajan, Bovik 2013). Lower is better.

The algorithm, as in the authors' MATLAB release (``computequality.m``, ``estimatemodelparam.m``)
and BasicSR's ``basicsr/metrics/niqe.py``:

1. Work on the luma plane (0..255), cut to whole ``patch_size`` x ``patch_size`` patches.
2. MSCN coefficients: (I - mu) / (sigma + 1), with mu and sigma local mean and deviation under a
   7x7 Gaussian window (sigma 7/6), replicated borders.
3. Per patch, 18 features: the generalised-Gaussian fit of the MSCN values (shape, spread) and, for
   the products of horizontally, vertically and both diagonally adjacent values (circular shift
   within the patch), the asymmetric-GGD fit (shape, mean, left spread, right spread).
4. The same at half resolution (MATLAB bicubic ``imresize(I, 0.5)`` with antialiasing), on half-size
   patches: 36 features per patch.
5. Pristine model: the mean and covariance of the features of the *sharp* patches of a set of clean
   images (patches whose mean sigma exceeds 0.75 x the sharpest patch of their image).
6. Score of an image: fit mean/covariance to all its patches, then
   sqrt((mu_p - mu_d)^T pinv((cov_p + cov_d) / 2) (mu_p - mu_d)).

Differences from the MATLAB release, on purpose: the luma is BT.601 Y (like BasicSR's default,
and like our PSNR), not ``rgb2gray``. The authors' own pristine parameters are not shipped here;
fit them with ``fit_niqe`` (``soccersr eval fit-niqe``) or load a BasicSR ``niqe_pris_params.npz``.
"""

from __future__ import annotations

import functools
import json
import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from soccersr.errors import SoccersrError
from soccersr.io.atomic import atomic_write
from soccersr.metrics import y_channel

log = logging.getLogger(__name__)

NUM_FEATURES = 36
DEFAULT_PATCH_SIZE = 96
DEFAULT_SHARPNESS_THRESHOLD = 0.75
_WINDOW_SIZE = 7
_WINDOW_SIGMA = 7 / 6
# The shape parameter grid of the (A)GGD moment-matching fit, as in the reference code.
_GAMMA_GRID = np.arange(0.2, 10.001, 0.001)


class NiqeError(SoccersrError, ValueError):
    """A NIQE parameters file that cannot be used, or an image too small to score."""


@dataclass(frozen=True, eq=False)
class NiqeModel:
    """The pristine multivariate Gaussian of NIQE, and how it was obtained."""

    mu: np.ndarray = field(repr=False)
    """(36,) mean feature vector of the pristine patches."""
    cov: np.ndarray = field(repr=False)
    """(36, 36) covariance of the pristine patch features."""
    patch_size: int = DEFAULT_PATCH_SIZE
    """Side of the patches (images are scored with the same patch size they were fitted with)."""
    info: dict[str, Any] = field(default_factory=dict)
    """How the model was fitted (folder, image count, patches, threshold, ...), stored in the file."""

    def __post_init__(self) -> None:
        if self.mu.shape != (NUM_FEATURES,) or self.cov.shape != (NUM_FEATURES, NUM_FEATURES):
            raise NiqeError(f"NIQE model needs mu (36,) and cov (36, 36), got {self.mu.shape} and {self.cov.shape}")
        if self.patch_size < 8 or self.patch_size % 2:
            raise NiqeError(f"NIQE patch_size must be an even number >= 8, got {self.patch_size}")


# ---------------------------------------------------------------------------------------------
# Image processing pieces


@functools.cache
def _gaussian_window() -> np.ndarray:
    x = np.arange(_WINDOW_SIZE, dtype=np.float64) - (_WINDOW_SIZE - 1) / 2
    k = np.exp(-(x * x) / (2 * _WINDOW_SIGMA**2))
    w = np.outer(k, k)
    return w / w.sum()


def mscn(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """MSCN coefficients and the local deviation sigma of a luma plane (0..255 scale)."""
    img = np.ascontiguousarray(y, dtype=np.float64)
    w = _gaussian_window()
    mu = cv2.filter2D(img, cv2.CV_64F, w, borderType=cv2.BORDER_REPLICATE)
    mean_sq = cv2.filter2D(img * img, cv2.CV_64F, w, borderType=cv2.BORDER_REPLICATE)
    sigma = np.sqrt(np.abs(mean_sq - mu * mu))
    return (img - mu) / (sigma + 1.0), sigma


def _cubic(x: np.ndarray) -> np.ndarray:
    # Keys' cubic with a = -0.5, the kernel of MATLAB's imresize 'bicubic'.
    ax = np.abs(x)
    ax2, ax3 = ax * ax, ax * ax * ax
    return (1.5 * ax3 - 2.5 * ax2 + 1) * (ax <= 1) + (-0.5 * ax3 + 2.5 * ax2 - 4 * ax + 2) * ((ax > 1) & (ax <= 2))


def _resize_taps(in_len: int, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Source indices and weights, each (out, taps), of MATLAB ``imresize`` bicubic with
    antialiasing along one axis."""
    out_len = math.ceil(in_len * scale)
    kernel_width = 4.0 / scale if scale < 1 else 4.0
    u = np.arange(1, out_len + 1) / scale + 0.5 * (1 - 1 / scale)  # 1-based source coordinate
    left = np.floor(u - kernel_width / 2)
    taps = math.ceil(kernel_width) + 2
    idx = left[:, None] + np.arange(taps)[None, :]
    dist = u[:, None] - idx
    weights = scale * _cubic(dist * scale) if scale < 1 else _cubic(dist)
    weights /= weights.sum(axis=1, keepdims=True)
    # Symmetric (edge-repeating) reflection of out-of-range taps, as MATLAB does.
    period = 2 * in_len
    src = np.mod(idx.astype(np.int64) - 1, period)
    src = np.where(src >= in_len, period - 1 - src, src)
    return src, weights


def _resize_rows(img: np.ndarray, scale: float) -> np.ndarray:
    src, weights = _resize_taps(img.shape[0], scale)
    out = np.zeros((src.shape[0],) + img.shape[1:])
    for k in range(src.shape[1]):
        out += weights[:, k, None] * img[src[:, k]]
    return out


def imresize_half(img: np.ndarray) -> np.ndarray:
    """Halve a 2-D float image like MATLAB ``imresize(img, 0.5)`` (bicubic, antialiased)."""
    return _resize_rows(_resize_rows(np.asarray(img, dtype=np.float64), 0.5).T, 0.5).T


@functools.cache
def _gamma_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    lgamma = np.vectorize(math.lgamma)
    g1, g2, g3 = (np.exp(lgamma(k / _GAMMA_GRID)) for k in (1.0, 2.0, 3.0))
    # The moment ratio E[|x|]^2 / E[x^2] of a GGD with shape gamma.
    ratio = g2 * g2 / (g1 * g3)
    return ratio, g1, g2, g3


def _aggd_fit(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Moment-matching AGGD fit per row of ``x`` (n, m): shape index, alpha, beta_left, beta_right.

    Rows without negative (or positive) values give NaN, as in the reference code.
    """
    ratio, g1, _, g3 = _gamma_tables()
    neg, pos = x < 0, x > 0
    sq = x * x
    with np.errstate(invalid="ignore", divide="ignore"):
        left_std = np.sqrt(np.sum(sq * neg, axis=1) / np.sum(neg, axis=1))
        right_std = np.sqrt(np.sum(sq * pos, axis=1) / np.sum(pos, axis=1))
        gamma_hat = left_std / right_std
        r_hat = np.mean(np.abs(x), axis=1) ** 2 / np.mean(sq, axis=1)
        r_norm = r_hat * (gamma_hat**3 + 1) * (gamma_hat + 1) / (gamma_hat**2 + 1) ** 2
    valid = np.isfinite(r_norm)
    # First grid point with the smallest squared distance (np.argmin keeps the first, like MATLAB).
    idx = np.argmin((ratio[None, :] - np.where(valid, r_norm, 0.0)[:, None]) ** 2, axis=1)
    alpha = np.where(valid, _GAMMA_GRID[idx], np.nan)
    spread = np.sqrt(g1[idx] / g3[idx])
    beta_l = np.where(valid, left_std * spread, np.nan)
    beta_r = np.where(valid, right_std * spread, np.nan)
    return idx, alpha, beta_l, beta_r


def _patches(plane: np.ndarray, size: int) -> np.ndarray:
    """Non-overlapping size x size patches of a plane cut to whole patches: (n, size, size)."""
    nh, nw = plane.shape[0] // size, plane.shape[1] // size
    cut = plane[: nh * size, : nw * size]
    return cut.reshape(nh, size, nw, size).transpose(0, 2, 1, 3).reshape(nh * nw, size, size)


def _patch_features(mscn_plane: np.ndarray, size: int) -> np.ndarray:
    """The 18 features of every patch of an MSCN plane: (n, 18)."""
    blocks = _patches(mscn_plane, size)
    n = blocks.shape[0]
    _, g1, g2, _ = _gamma_tables()
    _, alpha, bl, br = _aggd_fit(blocks.reshape(n, -1))
    feats = [alpha, (bl + br) / 2]
    # Products of neighbours (right, below, below-right, below-left), shifted circularly inside each patch.
    for dy, dx in ((0, 1), (1, 0), (1, 1), (1, -1)):
        prod = blocks * np.roll(blocks, (dy, dx), axis=(1, 2))
        idx, alpha, bl, br = _aggd_fit(prod.reshape(n, -1))
        mean = (br - bl) * g2[idx] / g1[idx]
        feats += [alpha, mean, bl, br]
    return np.stack(feats, axis=1)


def image_features(y: np.ndarray, patch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """NIQE features of a luma plane: (n, 36) per patch, and each patch's sharpness (mean sigma) (n,)."""
    nh, nw = y.shape[0] // patch_size, y.shape[1] // patch_size
    if nh * nw == 0:
        raise NiqeError(f"image of {y.shape[1]}x{y.shape[0]} is smaller than one {patch_size}x{patch_size} NIQE patch")
    img = np.asarray(y, dtype=np.float64)[: nh * patch_size, : nw * patch_size]
    normalized, sigma = mscn(img)
    feats1 = _patch_features(normalized, patch_size)
    sharpness = _patches(sigma, patch_size).mean(axis=(1, 2))
    normalized2, _ = mscn(imresize_half(img))
    feats2 = _patch_features(normalized2, patch_size // 2)
    return np.concatenate([feats1, feats2], axis=1), sharpness


def luma(rgb: np.ndarray, *, crop_border: int = 0) -> np.ndarray:
    """The NIQE input plane: BT.601 Y (0..255) of 8-bit-quantised float RGB in [0, 1]."""
    return y_channel(rgb, crop_border=crop_border)


# ---------------------------------------------------------------------------------------------
# Scoring and fitting


def _mean_cov(feats: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """nanmean, and the covariance of the rows with no NaN (MATLAB nancov 'complete')."""
    complete = feats[~np.isnan(feats).any(axis=1)]
    if complete.shape[0] < 2:
        raise NiqeError(f"only {complete.shape[0]} usable NIQE patches (need at least 2)")
    return np.nanmean(feats, axis=0), np.cov(complete, rowvar=False), complete.shape[0]


def niqe_score(rgb: np.ndarray, model: NiqeModel, *, crop_border: int = 0) -> float:
    """NIQE of a float RGB image (H, W, 3) in [0, 1] under a pristine model; lower is more natural.

    Raises NiqeError when the image holds fewer than 2 usable patches.
    """
    feats, _ = image_features(luma(rgb, crop_border=crop_border), model.patch_size)
    mu, cov, _ = _mean_cov(feats)
    diff = model.mu - mu
    inv = np.linalg.pinv((model.cov + cov) / 2)
    return float(np.sqrt(max(float(diff @ inv @ diff), 0.0)))


def fit_niqe(
    images: Iterable[tuple[str, np.ndarray]],
    *,
    patch_size: int = DEFAULT_PATCH_SIZE,
    sharpness_threshold: float = DEFAULT_SHARPNESS_THRESHOLD,
    info: dict[str, Any] | None = None,
) -> NiqeModel:
    """Fit the pristine model on ``(name, float RGB in [0, 1])`` pairs of sharp, clean images.

    Keeps, per image, the patches whose sharpness exceeds ``sharpness_threshold`` x the image's
    sharpest patch. ``info`` is merged into the model's description (e.g. the source folder).
    """
    if patch_size < 8 or patch_size % 2:
        raise NiqeError(f"patch_size must be an even number >= 8, got {patch_size}")
    if not 0 <= sharpness_threshold < 1:
        raise NiqeError(f"sharpness_threshold must be in [0, 1), got {sharpness_threshold}")
    kept: list[np.ndarray] = []
    names: list[str] = []
    total = 0
    for name, rgb in images:
        try:
            feats, sharpness = image_features(luma(rgb), patch_size)
        except NiqeError as exc:
            log.warning("NIQE fit: skipping %s: %s", name, exc)
            continue
        total += feats.shape[0]
        kept.append(feats[sharpness > sharpness_threshold * sharpness.max()])
        names.append(name)
    if not kept:
        raise NiqeError("no image large enough to fit the NIQE model")
    all_feats = np.concatenate(kept)
    mu, cov, used = _mean_cov(all_feats)
    if used <= NUM_FEATURES:
        log.warning("NIQE fit on only %d patches: the 36x36 covariance is poorly determined; use more images", used)
    description = {
        "method": "NIQE pristine MVG (Mittal et al. 2013), BT.601 Y, sharpness-selected patches",
        "patch_size": patch_size,
        "sharpness_threshold": sharpness_threshold,
        "num_images": len(names),
        "num_patches_total": total,
        "num_patches_kept": int(all_feats.shape[0]),
        "num_patches_complete": used,
        "images": sorted(names),
    }
    description.update(info or {})
    return NiqeModel(mu=mu, cov=cov, patch_size=patch_size, info=description)


def save_niqe_model(model: NiqeModel, path: Path) -> None:
    """Write the model as .npz (keys compatible with BasicSR's niqe_pris_params.npz, plus our info)."""
    path.parent.mkdir(parents=True, exist_ok=True)

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:  # a file object: np.savez would append ".npz" to a bare path
            np.savez(
                f,
                mu_pris_param=model.mu,
                cov_pris_param=model.cov,
                gaussian_window=_gaussian_window(),
                patch_size=np.array(model.patch_size),
                info_json=np.array(json.dumps(model.info, sort_keys=True)),
            )

    atomic_write(path, write)


def load_niqe_model(path: Path) -> NiqeModel:
    """Read a params file written by ``save_niqe_model`` or BasicSR's niqe_pris_params.npz."""
    try:
        with np.load(path, allow_pickle=False) as data:
            mu = np.asarray(data["mu_pris_param"], dtype=np.float64).reshape(-1)
            cov = np.asarray(data["cov_pris_param"], dtype=np.float64)
            patch_size = int(data["patch_size"]) if "patch_size" in data else DEFAULT_PATCH_SIZE
            info = json.loads(str(data["info_json"])) if "info_json" in data else {"method": "external (no fit info)"}
    except (OSError, ValueError, KeyError, json.JSONDecodeError) as exc:
        raise NiqeError(f"{path}: not a NIQE params file ({exc})") from None
    try:
        return NiqeModel(mu=mu, cov=cov, patch_size=patch_size, info=info)
    except NiqeError as exc:
        raise NiqeError(f"{path}: {exc}") from None
