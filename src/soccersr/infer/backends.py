"""Which backend runs a model, and the one function every entry point builds its engine with.

    upscaler = open_upscaler("soccer-x4plus", EngineOptions(device="cpu"))   # upscale, eval, video, serve, cluster
    upscaler = open_upscaler("model.onnx", EngineOptions())                   # an exported file: ONNX Runtime

``create_runner`` makes the ``TileRunner`` of one backend for an ``SRModel``; ``open_upscaler``
also loads the model (a built-in name, a weights file or an exported ``.onnx``) and wraps the
runner in the tiled engine. Keeping the choice here is what makes the defaults the same for
the command line, evaluation, video, the web app and the cluster workers.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from soccersr.infer.devices import resolve_device, resolve_precision
from soccersr.infer.engine import TileEngine, TileRunner, Upscaler
from soccersr.options import ENGINES, EngineOptions
from soccersr.weights.model import SRModel

logger = logging.getLogger(__name__)


def resolve_engine(engine: str, device: torch.device) -> str:
    """'auto' -> the backend for ``device``: PyTorch (the only one with CUDA kernels we ship)."""
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}: expected one of {', '.join(ENGINES)}")
    if engine == "auto":
        return "torch"
    return engine


def create_runner(
    model: SRModel, *, engine: str = "auto", device: str | torch.device = "auto", precision: str = "auto"
) -> TileRunner:
    """The ``TileRunner`` of backend ``engine`` for ``model`` on ``device``.

    Raises:
        ValueError: an unknown engine, device or precision, or a combination that cannot run.
    """
    resolved = resolve_device(device)
    backend = resolve_engine(engine, resolved)
    if backend == "torch":
        from soccersr.infer.torch_runner import TorchRunner

        return TorchRunner(model, device=resolved, precision=resolve_precision(precision, resolved))
    raise ValueError(f"engine {backend!r} cannot run {model.name} here")


def open_upscaler(model: str | Path | SRModel, options: EngineOptions = EngineOptions()) -> TileEngine:
    """The tiled engine for a built-in model name, a weights file, an exported ``.onnx`` file or a
    loaded ``SRModel``, run as ``options`` say.

    Raises:
        WeightsError: an unknown model or unusable weights file.
        OnnxModelError: an unusable .onnx file.
        ValueError: bad options.
    """
    tiling = {"tile": options.tile, "tile_overlap": options.tile_overlap, "batch_size": options.batch_size}
    if not isinstance(model, SRModel) and str(model).lower().endswith(".onnx"):
        if options.engine not in ("auto", "onnxruntime"):
            raise ValueError(f"{model}: an .onnx file runs with --engine onnxruntime, not {options.engine!r}")
        from soccersr.infer.onnx_backend import load_onnx_upscaler

        return load_onnx_upscaler(model, device=options.device, precision=options.precision, **tiling)
    if not isinstance(model, SRModel):
        from soccersr.weights import load_model

        model = load_model(model)
    return Upscaler(model, engine=options.engine, device=options.device, precision=options.precision, **tiling)
