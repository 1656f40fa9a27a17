"""Configuration of the Real-ESRGAN high-order degradation, defaults = the official x4plus recipe.

``StageConfig`` describes one order of the degradation; its field names are the official YAML keys
without the ``2`` suffix (``resize_prob2`` -> ``second.resize_prob``), and ``second_blur_prob`` is
``second.blur_prob``. ``DegradationConfig.from_flat_keys`` reads the official flat key layout.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace
from typing import Any, Mapping

# Blur kernel families of the official recipe, in the order used for per-sample type indices.
# "sinc" is not a member of ``kernel_list``: it replaces the blur with probability ``sinc_prob``.
BLUR_KERNELS: tuple[str, ...] = (
    "iso",
    "aniso",
    "generalized_iso",
    "generalized_aniso",
    "plateau_iso",
    "plateau_aniso",
)
KERNEL_TYPES: tuple[str, ...] = (*BLUR_KERNELS, "sinc")

_PROB_TOLERANCE = 1e-6


def _check_prob(name: str, value: float) -> None:
    if not (isinstance(value, (int, float)) and 0.0 <= value <= 1.0):
        raise ValueError(f"{name}: expected a probability in [0, 1], got {value!r}")


def _check_distribution(name: str, values: tuple[float, ...], length: int | None = None) -> None:
    if length is not None and len(values) != length:
        raise ValueError(f"{name}: expected {length} probabilities, got {len(values)}")
    for v in values:
        _check_prob(name, v)
    if abs(sum(values) - 1.0) > _PROB_TOLERANCE:
        raise ValueError(f"{name}: probabilities must sum to 1, got {sum(values):.6g}")


def _check_range(name: str, value: tuple[float, float], *, low: float | None = None, high: float | None = None,
                 contains: float | None = None) -> None:
    if len(value) != 2 or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in value):
        raise ValueError(f"{name}: expected [low, high] with two finite numbers, got {value!r}")
    lo, hi = value
    if lo > hi:
        raise ValueError(f"{name}: range is not ordered: {lo} > {hi}")
    if low is not None and lo < low:
        raise ValueError(f"{name}: lower bound {lo} is below {low}")
    if high is not None and hi > high:
        raise ValueError(f"{name}: upper bound {hi} is above {high}")
    if contains is not None and not lo <= contains <= hi:
        raise ValueError(f"{name}: range [{lo}, {hi}] must contain {contains}")


@dataclass(frozen=True)
class StageConfig:
    """One order of the degradation: blur -> resize -> noise -> JPEG (defaults: the first order)."""

    blur_prob: float = 1.0
    """Probability that a sample is blurred (official: 1 for the first order, ``second_blur_prob``)."""
    kernel_list: tuple[str, ...] = BLUR_KERNELS
    kernel_prob: tuple[float, ...] = (0.45, 0.25, 0.12, 0.03, 0.12, 0.03)
    sinc_prob: float = 0.1
    """Probability that the blur kernel is a sinc (circular low-pass) kernel instead."""
    blur_sigma: tuple[float, float] = (0.2, 3.0)
    betag_range: tuple[float, float] = (0.5, 4.0)
    """Shape of the generalized Gaussian kernels; half of the draws below 1, half above."""
    betap_range: tuple[float, float] = (1.0, 2.0)
    """Shape of the plateau kernels; half of the draws below 1, half above."""
    resize_prob: tuple[float, float, float] = (0.2, 0.7, 0.1)
    """Probabilities of up, down, keep."""
    resize_range: tuple[float, float] = (0.15, 1.5)
    gaussian_noise_prob: float = 0.5
    """Probability of Gaussian noise; Poisson noise otherwise."""
    noise_range: tuple[float, float] = (1.0, 30.0)
    """Gaussian noise sigma, on the 0-255 scale."""
    poisson_scale_range: tuple[float, float] = (0.05, 3.0)
    gray_noise_prob: float = 0.4
    jpeg_range: tuple[float, float] = (30.0, 95.0)

    def __post_init__(self) -> None:
        # Normalise lists (as read from YAML) to tuples so the config stays hashable and frozen.
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, list):
                object.__setattr__(self, f.name, tuple(value))
        _check_prob("blur_prob", self.blur_prob)
        unknown = [k for k in self.kernel_list if k not in BLUR_KERNELS]
        if unknown:
            raise ValueError(f"kernel_list: unknown kernel {unknown[0]!r}, expected names from {list(BLUR_KERNELS)}")
        if not self.kernel_list:
            raise ValueError("kernel_list: must name at least one kernel")
        if len(set(self.kernel_list)) != len(self.kernel_list):
            raise ValueError(f"kernel_list: names must be unique, got {list(self.kernel_list)}")
        _check_distribution("kernel_prob", self.kernel_prob, len(self.kernel_list))
        _check_prob("sinc_prob", self.sinc_prob)
        _check_range("blur_sigma", self.blur_sigma)
        if self.blur_sigma[0] <= 0:
            raise ValueError(f"blur_sigma: sigma must be positive, got {self.blur_sigma[0]}")
        # Half of the beta draws are below 1 and half above, so 1 must lie in the range.
        _check_range("betag_range", self.betag_range, contains=1.0)
        if self.betag_range[0] <= 0:
            raise ValueError(f"betag_range: beta must be positive, got {self.betag_range[0]}")
        _check_range("betap_range", self.betap_range, contains=1.0)
        if self.betap_range[0] <= 0:
            raise ValueError(f"betap_range: beta must be positive, got {self.betap_range[0]}")
        _check_distribution("resize_prob", self.resize_prob, 3)
        # "up" draws from [1, high] and "down" from [low, 1].
        _check_range("resize_range", self.resize_range, contains=1.0)
        if self.resize_range[0] <= 0:
            raise ValueError(f"resize_range: scale must be positive, got {self.resize_range[0]}")
        _check_prob("gaussian_noise_prob", self.gaussian_noise_prob)
        _check_range("noise_range", self.noise_range, low=0.0)
        _check_range("poisson_scale_range", self.poisson_scale_range, low=0.0)
        _check_prob("gray_noise_prob", self.gray_noise_prob)
        _check_range("jpeg_range", self.jpeg_range, low=1.0, high=100.0)


def _second_stage_defaults() -> StageConfig:
    return StageConfig(
        blur_prob=0.8,
        blur_sigma=(0.2, 1.5),
        resize_prob=(0.3, 0.4, 0.3),
        resize_range=(0.3, 1.2),
        noise_range=(1.0, 25.0),
        poisson_scale_range=(0.05, 2.5),
    )


@dataclass(frozen=True)
class DegradationConfig:
    """The whole second-order degradation (defaults: ``options/train_realesrgan_x4plus.yml``)."""

    scale: int = 4
    first: StageConfig = field(default_factory=StageConfig)
    second: StageConfig = field(default_factory=_second_stage_defaults)
    final_sinc_prob: float = 0.8
    """Probability of the final sinc filter (an identity pulse otherwise)."""
    blur_kernel_size: int = 21
    """All kernels are zero-padded to this size."""
    kernel_range: tuple[int, int] = (7, 21)
    """Odd kernel sizes drawn uniformly from this inclusive range."""

    def __post_init__(self) -> None:
        if isinstance(self.kernel_range, list):
            object.__setattr__(self, "kernel_range", tuple(self.kernel_range))
        if not isinstance(self.scale, int) or isinstance(self.scale, bool) or self.scale < 1:
            raise ValueError(f"scale: expected a positive integer, got {self.scale!r}")
        for name in ("first", "second"):
            if not isinstance(getattr(self, name), StageConfig):
                raise ValueError(f"{name}: expected a StageConfig, got {type(getattr(self, name)).__name__}")
        _check_prob("final_sinc_prob", self.final_sinc_prob)
        k = self.blur_kernel_size
        if not isinstance(k, int) or k < 1 or k % 2 == 0:
            raise ValueError(f"blur_kernel_size: expected a positive odd integer, got {k!r}")
        if len(self.kernel_range) != 2 or not all(isinstance(v, int) for v in self.kernel_range):
            raise ValueError(f"kernel_range: expected [low, high] odd integers, got {self.kernel_range!r}")
        lo, hi = self.kernel_range
        if lo % 2 == 0 or hi % 2 == 0 or not 1 <= lo <= hi <= k:
            raise ValueError(f"kernel_range: expected odd 1 <= low <= high <= blur_kernel_size ({k}), got [{lo}, {hi}]")

    @property
    def kernel_sizes(self) -> tuple[int, ...]:
        """The odd kernel sizes a kernel is drawn from (uniformly)."""
        return tuple(range(self.kernel_range[0], self.kernel_range[1] + 1, 2))

    @classmethod
    def flat_keys(cls) -> frozenset[str]:
        """The official flat YAML keys that ``from_flat_keys`` understands."""
        stage_keys = [f.name for f in fields(StageConfig) if f.name != "blur_prob"]
        return frozenset(
            [*stage_keys, *(k + "2" for k in stage_keys), "second_blur_prob", "final_sinc_prob",
             "blur_kernel_size", "blur_kernel_size2", "scale"]
        )

    @classmethod
    def from_flat_keys(cls, mapping: Mapping[str, Any]) -> DegradationConfig:
        """Build a config from the official flat keys (``resize_prob``, ``resize_prob2``, ...).

        Keys that are absent keep their defaults; unknown keys raise ``ValueError`` naming them.
        ``blur_kernel_size2`` is accepted only when equal to ``blur_kernel_size`` (the official
        code pads every kernel to 21 regardless).
        """
        known = cls.flat_keys()
        unknown = sorted(k for k in mapping if k not in known)
        if unknown:
            more = f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else ""
            raise ValueError(f"unknown degradation key {unknown[0]!r}{more}")
        stage_names = {f.name for f in fields(StageConfig)}
        first: dict[str, Any] = {}
        second: dict[str, Any] = {}
        top: dict[str, Any] = {}
        for key, value in mapping.items():
            if isinstance(value, list):
                value = tuple(value)
            if key == "second_blur_prob":
                second["blur_prob"] = value
            elif key in ("final_sinc_prob", "blur_kernel_size", "scale"):
                top[key] = value
            elif key == "blur_kernel_size2":
                continue
            elif key.endswith("2") and key[:-1] in stage_names:
                second[key[:-1]] = value
            else:
                first[key] = value
        if "blur_kernel_size2" in mapping and mapping["blur_kernel_size2"] != top.get("blur_kernel_size", 21):
            raise ValueError(
                f"blur_kernel_size2: must equal blur_kernel_size ({top.get('blur_kernel_size', 21)}), "
                f"got {mapping['blur_kernel_size2']!r}"
            )
        defaults = cls()
        try:
            first_cfg = replace(defaults.first, **first)
        except ValueError as e:
            raise ValueError(_rename_field(str(e), {})) from None
        try:
            second_cfg = replace(defaults.second, **second)
        except ValueError as e:
            renamed = {name: name + "2" for name in stage_names} | {"blur_prob": "second_blur_prob"}
            raise ValueError(_rename_field(str(e), renamed)) from None
        return cls(first=first_cfg, second=second_cfg, **top)


def _rename_field(message: str, names: Mapping[str, str]) -> str:
    """Rewrite a "field: reason" message to name the official flat key (``resize_prob2``)."""
    name, sep, reason = message.partition(":")
    return f"{names.get(name, name)}{sep}{reason}"
