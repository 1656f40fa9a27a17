"""Defaults and choices the command line, the library and the web app share. Standard library only,
so ``soccersr --help`` stays instant; the modules that act on these values import them from here.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_MAX_PIXELS = 40_000_000
"""Largest input accepted by default (40 megapixels: above any common camera photo; its x4
output is already 640 megapixels)."""

PRECISIONS: tuple[str, ...] = ("auto", "fp32", "fp16", "bf16")
"""Compute precision: auto picks per device (see ``infer.devices.resolve_precision``)."""

ENGINES: tuple[str, ...] = ("auto", "torch", "openvino", "onnxruntime")
"""Inference backends (see ``infer.backends``): auto picks per device and model file."""

DEFAULT_TILE_OVERLAP = 32
"""Context margin around each tile core, in input pixels (measured in ``infer.engine``)."""

OUTPUT_FORMATS: tuple[str, ...] = ("auto", "png", "jpeg", "webp", "tiff")
"""Values of ``--format``: auto keeps the input's format."""

FORMAT_ALIASES = {"jpg": "jpeg", "tif": "tiff"}
"""Other spellings accepted for an output format."""


def normalize_format(name: str) -> str:
    """'JPG' -> 'jpeg', 'tif' -> 'tiff'; raises ValueError for a format we cannot write."""
    fmt = FORMAT_ALIASES.get(name.lower(), name.lower())
    if fmt not in OUTPUT_FORMATS:
        raise ValueError(f"unknown output format {name!r}: expected one of {', '.join(OUTPUT_FORMATS)} (or jpg, tif)")
    return fmt


@dataclass(frozen=True)
class EngineOptions:
    """How a model is run; every entry point (upscale, eval, video, serve, cluster) builds its
    engine from one of these with ``infer.backends.open_upscaler``, so defaults are the same
    everywhere."""

    engine: str = "auto"
    device: str = "auto"
    precision: str = "auto"
    tile: int | str = "auto"
    """Largest tile side in input pixels, 0 for no tiling, or 'auto' (from the memory available)."""
    tile_overlap: int = DEFAULT_TILE_OVERLAP
    batch_size: int | str = "auto"

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise ValueError(f"engine must be one of {', '.join(ENGINES)}, got {self.engine!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if not (self.tile == "auto" or (isinstance(self.tile, int) and self.tile >= 0)):
            raise ValueError(f"tile must be 'auto' or an integer >= 0, got {self.tile!r}")
        if not isinstance(self.tile_overlap, int) or self.tile_overlap < 0:
            raise ValueError(f"tile_overlap must be an integer >= 0, got {self.tile_overlap!r}")
        if not (self.batch_size == "auto" or (isinstance(self.batch_size, int) and self.batch_size >= 1)):
            raise ValueError(f"batch_size must be 'auto' or an integer >= 1, got {self.batch_size!r}")
