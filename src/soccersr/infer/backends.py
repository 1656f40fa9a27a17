"""Which backend runs a model, and the one function every entry point builds its engine with.

    upscaler = open_upscaler("soccer-x4plus", EngineOptions(device="cpu"))   # upscale, eval, video, serve, cluster
    upscaler = open_upscaler("model.onnx", EngineOptions())                   # an exported file: ONNX Runtime

Backends: OpenVINO (the CPU default, ``openvino_runner``), PyTorch (CUDA, and the CPU where
openvino is missing or with ``engine="torch"``), ONNX Runtime (exported ``.onnx`` files).
``create_runner`` makes the ``TileRunner`` of one backend for an ``SRModel``; ``open_upscaler``
also loads the model (a built-in name, a weights file or an exported ``.onnx``) and wraps the
runner in the tiled engine. Keeping the choice here is what makes the defaults the same for
the command line, evaluation, video, the web app and the cluster workers.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path

import torch

from soccersr import weights
from soccersr.infer.devices import resolve_device, resolve_precision
from soccersr.infer.engine import TileEngine, TileRunner, Upscaler
from soccersr.infer.onnx_backend import load_onnx_upscaler
from soccersr.infer.openvino_runner import OpenVinoRunner, import_openvino, openvino_available
from soccersr.infer.torch_runner import TorchRunner
from soccersr.options import ENGINES, EngineOptions
from soccersr.weights.model import SRModel

logger = logging.getLogger(__name__)
_DEFAULT_OPTIONS = EngineOptions()  # frozen: one shared default is safe


def resolve_engine(engine: str, device: torch.device) -> str:
    """'auto' -> the backend for ``device``: OpenVINO on the CPU (2-9x faster than PyTorch there,
    bench/README.md) where the package imports, else PyTorch (with one info line per process);
    PyTorch on CUDA (the only backend with CUDA kernels we ship).

    Raises:
        ValueError: an unknown engine, or one that cannot run on ``device``.
        MissingExtraError: ``engine="openvino"`` without the openvino package.
    """
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}: expected one of {', '.join(ENGINES)}")
    if engine == "auto":
        if device.type != "cpu":
            return "torch"
        if openvino_available():
            return "openvino"
        _log_openvino_missing()
        return "torch"
    if engine == "openvino":
        if device.type != "cpu":
            raise ValueError(f"engine 'openvino' runs on the CPU, not {device}: use --engine torch (or auto) on CUDA")
        import_openvino()  # MissingExtraError, one line, when it is not installed
    return engine


@functools.cache
def _log_openvino_missing() -> None:
    logger.info("openvino is not installed: running on the CPU with PyTorch (slower; pip install openvino)")


def create_runner(
    model: SRModel, *, engine: str = "auto", device: str | torch.device = "auto", precision: str = "auto"
) -> TileRunner:
    """The ``TileRunner`` of backend ``engine`` for ``model`` on ``device``.

    Raises:
        ValueError: an unknown engine, device or precision, or a combination that cannot run.
        MissingExtraError: ``engine="openvino"`` without the openvino package.
    """
    resolved = resolve_device(device)
    backend = resolve_engine(engine, resolved)
    chosen = resolve_precision(precision, resolved)
    if backend == "torch":
        runner: TileRunner = TorchRunner(model, device=resolved, precision=chosen)
    elif backend == "openvino":
        runner = OpenVinoRunner(model, precision=chosen)
    else:
        raise ValueError(
            f"engine {backend!r} runs an exported .onnx file (`soccersr export --format onnx`), not {model.name}; "
            "use --engine auto, torch or openvino"
        )
    logger.debug("engine %s on %s, %s, for %s", backend, resolved, getattr(runner, "precision", chosen), model.name)
    return runner


def open_upscaler(model: str | Path | SRModel, options: EngineOptions = _DEFAULT_OPTIONS) -> TileEngine:
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
        return load_onnx_upscaler(model, device=options.device, precision=options.precision, **tiling)
    if not isinstance(model, SRModel):
        model = weights.load_model(model)
    return Upscaler(model, engine=options.engine, device=options.device, precision=options.precision, **tiling)
