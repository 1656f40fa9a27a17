"""Configuration of the Real-ESRGAN high-order degradation, defaults = the official x4plus recipe.

``StageConfig`` describes one order of the degradation; its field names are the official YAML keys
without the ``2`` suffix (``resize_prob2`` -> ``second.resize_prob``), and ``second_blur_prob`` is
``second.blur_prob``. ``OFFICIAL_KEYS`` is that translation; ``DegradationConfig.from_flat_keys``
reads the official flat key layout with it, and errors name the key the user wrote.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import field
from typing import Annotated, Any, Literal, get_args

from pydantic import Field

from soccersr.schema import (
    Float,
    Loc,
    NonNegativeFloat,
    PositiveFloat,
    PositiveInt,
    Probability,
    config_dataclass,
    parse,
    require,
)

BlurKernel = Literal["iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso", "plateau_aniso"]
# Blur kernel families of the official recipe, in the order used for per-sample type indices.
# "sinc" is not a member of ``kernel_list``: it replaces the blur with probability ``sinc_prob``.
BLUR_KERNELS: tuple[str, ...] = get_args(BlurKernel)
KERNEL_TYPES: tuple[str, ...] = (*BLUR_KERNELS, "sinc")

_PROB_TOLERANCE = 1e-6
JpegQuality = Annotated[Float, Field(ge=1, le=100)]


@config_dataclass
class StageConfig:
    """One order of the degradation: blur -> resize -> noise -> JPEG (defaults: the first order)."""

    blur_prob: Probability = 1.0
    """Probability that a sample is blurred (official: 1 for the first order, ``second_blur_prob``)."""
    kernel_list: tuple[BlurKernel, ...] = BLUR_KERNELS  # type: ignore[assignment]
    kernel_prob: tuple[Probability, ...] = (0.45, 0.25, 0.12, 0.03, 0.12, 0.03)
    sinc_prob: Probability = 0.1
    """Probability that the blur kernel is a sinc (circular low-pass) kernel instead."""
    blur_sigma: tuple[PositiveFloat, PositiveFloat] = (0.2, 3.0)
    betag_range: tuple[PositiveFloat, PositiveFloat] = (0.5, 4.0)
    """Shape of the generalized Gaussian kernels; half of the draws below 1, half above."""
    betap_range: tuple[PositiveFloat, PositiveFloat] = (1.0, 2.0)
    """Shape of the plateau kernels; half of the draws below 1, half above."""
    resize_prob: tuple[Probability, Probability, Probability] = (0.2, 0.7, 0.1)
    """Probabilities of up, down, keep."""
    resize_range: tuple[PositiveFloat, PositiveFloat] = (0.15, 1.5)
    gaussian_noise_prob: Probability = 0.5
    """Probability of Gaussian noise; Poisson noise otherwise."""
    noise_range: tuple[NonNegativeFloat, NonNegativeFloat] = (1.0, 30.0)
    """Gaussian noise sigma, on the 0-255 scale."""
    poisson_scale_range: tuple[NonNegativeFloat, NonNegativeFloat] = (0.05, 3.0)
    gray_noise_prob: Probability = 0.4
    jpeg_range: tuple[JpegQuality, JpegQuality] = (30.0, 95.0)

    def __post_init__(self) -> None:
        require(len(self.kernel_list) > 0, "kernel_list", "must name at least one kernel")
        require(
            len(set(self.kernel_list)) == len(self.kernel_list),
            "kernel_list",
            f"names must be unique, got {list(self.kernel_list)}",
        )
        require(
            len(self.kernel_prob) == len(self.kernel_list),
            "kernel_prob",
            f"expected {len(self.kernel_list)} probabilities (one per kernel_list name), got {len(self.kernel_prob)}",
        )
        for name in ("kernel_prob", "resize_prob"):
            total = sum(getattr(self, name))
            require(abs(total - 1.0) <= _PROB_TOLERANCE, name, f"probabilities must sum to 1, got {total:.6g}")
        for name in (
            "blur_sigma",
            "betag_range",
            "betap_range",
            "resize_range",
            "noise_range",
            "poisson_scale_range",
            "jpeg_range",
        ):
            lo, hi = getattr(self, name)
            require(lo <= hi, name, f"range is not ordered: {lo} > {hi}")
        # Half of the beta draws are below 1 and half above; "up" draws from [1, high], "down" from [low, 1].
        for name in ("betag_range", "betap_range", "resize_range"):
            lo, hi = getattr(self, name)
            require(lo <= 1 <= hi, name, f"range [{lo}, {hi}] must contain 1")


_SECOND_STAGE = StageConfig(
    blur_prob=0.8,
    blur_sigma=(0.2, 1.5),
    resize_prob=(0.3, 0.4, 0.3),
    resize_range=(0.3, 1.2),
    noise_range=(1.0, 25.0),
    poisson_scale_range=(0.05, 2.5),
)


@config_dataclass
class DegradationConfig:
    """The whole second-order degradation (defaults: ``options/train_realesrgan_x4plus.yml``)."""

    scale: PositiveInt = 4
    first: StageConfig = field(default_factory=StageConfig)
    second: StageConfig = _SECOND_STAGE
    final_sinc_prob: Probability = 0.8
    """Probability of the final sinc filter (an identity pulse otherwise)."""
    blur_kernel_size: PositiveInt = 21
    """All kernels are zero-padded to this size."""
    kernel_range: tuple[PositiveInt, PositiveInt] = (7, 21)
    """Odd kernel sizes drawn uniformly from this inclusive range."""
    web_prob: Probability = 0.0
    """soccersr: the share of samples degraded the mild ``web`` way (blur, bicubic, JPEG) instead, so a
    model also learns inputs that kept their detail; 0 is the official recipe."""

    def __post_init__(self) -> None:
        k = self.blur_kernel_size
        require(k % 2 == 1, "blur_kernel_size", f"expected a positive odd integer, got {k}")
        lo, hi = self.kernel_range
        require(
            lo % 2 == 1 and hi % 2 == 1 and lo <= hi <= k,
            "kernel_range",
            f"expected odd low <= high <= blur_kernel_size ({k}), got [{lo}, {hi}]",
        )

    @property
    def kernel_sizes(self) -> tuple[int, ...]:
        """The odd kernel sizes a kernel is drawn from (uniformly)."""
        return tuple(range(self.kernel_range[0], self.kernel_range[1] + 1, 2))

    @classmethod
    def flat_keys(cls) -> frozenset[str]:
        """The official flat YAML keys that ``from_flat_keys`` understands."""
        return frozenset(
            [*OFFICIAL_KEYS, "final_sinc_prob", "blur_kernel_size", "blur_kernel_size2", "scale", "web_prob"]
        )

    @classmethod
    def from_flat_keys(cls, mapping: Mapping[str, Any]) -> DegradationConfig:
        """Build a config from the official flat keys (``resize_prob``, ``resize_prob2``, ...).

        Keys that are absent keep their defaults; a bad or unknown key raises ``ConfigError`` naming it.
        """
        return parse(cls, nest_flat_keys(mapping), key_path=flat_key_path)


# The official flat key of every stage field: the first order's keys as they are, the second's with a
# "2" suffix, and the blur probability of the first order fixed at 1.
OFFICIAL_KEYS: Mapping[str, tuple[str, str]] = {
    **{f.name: ("first", f.name) for f in dataclasses.fields(StageConfig) if f.name != "blur_prob"},
    **{f.name + "2": ("second", f.name) for f in dataclasses.fields(StageConfig) if f.name != "blur_prob"},
    "second_blur_prob": ("second", "blur_prob"),
}
_FLAT_KEY = {nested: flat for flat, nested in OFFICIAL_KEYS.items()}


def nest_flat_keys(mapping: Mapping[str, Any]) -> dict[str, Any]:
    """The official flat keys as ``DegradationConfig`` fields; absent keys keep the stage's defaults.

    ``blur_kernel_size2`` is accepted only when equal to ``blur_kernel_size`` (the official code pads
    every kernel to 21 regardless)."""
    out: dict[str, Any] = {"first": {}, "second": dataclasses.asdict(_SECOND_STAGE)}
    for key, value in mapping.items():
        if key in OFFICIAL_KEYS:
            stage, name = OFFICIAL_KEYS[key]
            out[stage][name] = value
        elif key != "blur_kernel_size2":
            out[key] = value  # a top-level field, or an unknown key the schema reports
    size = mapping.get("blur_kernel_size", 21)
    require(
        mapping.get("blur_kernel_size2", size) == size,
        "blur_kernel_size2",
        f"must equal blur_kernel_size ({size}), got {mapping.get('blur_kernel_size2')!r}",
    )
    return out


def flat_key_path(loc: Loc) -> Loc:
    """The official key of a location in ``DegradationConfig`` (``second.resize_prob`` -> ``resize_prob2``)."""
    return (_FLAT_KEY[loc[:2]], *loc[2:]) if loc[:2] in _FLAT_KEY else loc


def second_order_settings(cfg: DegradationConfig) -> dict[str, Any]:
    """``cfg`` as a plain dict without ``web_prob``: what ``degrade`` and ``degrade_image`` use (for
    reports and cache keys, which the training-only mix must not change)."""
    out = dataclasses.asdict(cfg)
    del out["web_prob"]
    return out


def flatten(cfg: DegradationConfig) -> dict[str, Any]:
    """The official flat keys of ``cfg`` (the inverse of ``nest_flat_keys``), without ``scale``."""
    out = {flat: getattr(getattr(cfg, stage), name) for flat, (stage, name) in OFFICIAL_KEYS.items()}
    out = {**out, "final_sinc_prob": cfg.final_sinc_prob, "blur_kernel_size": cfg.blur_kernel_size}
    return {**out, "web_prob": cfg.web_prob} if cfg.web_prob else out  # absent: the official file, as it was
