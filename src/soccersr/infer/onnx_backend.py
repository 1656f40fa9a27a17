"""Run an exported ``.onnx`` model with ONNX Runtime, through the same engine as PyTorch.

    upscaler = load_onnx_upscaler("x4plus.onnx", device="cpu")   # an engine.TileEngine
    out = upscaler.upscale(images)                                # same contract, tiling, progress

``OnnxRunner`` is the engine's ``TileRunner`` over an ONNX Runtime session, so tiling,
padding to the size multiple, out-of-memory splitting, progress and the post-resize are the
engine's, shared with the PyTorch backend.

The file's metadata (written by ``soccersr export --format onnx``) says what the graph is:
scale, network scale, input size multiple and the fixed post-resize. The graph holds only the
network; the post-resize (animevideov3 x2/x3: "x4 network, then bicubic x0.5/x0.75") is left
out on purpose, because it must run once on the stitched image, not on each tile. The
inference engine applies it, exactly as for a PyTorch model.

Graph contract: input ``input`` float32 RGB in [0, 1], (B, 3, H, W) with H, W multiples of
``size_multiple`` -> output ``output`` float32 RGB, unclamped, (B, 3, H*net_scale, W*net_scale).
B, H and W are dynamic. fp16 exports keep float32 input/output (casts inside the graph).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from soccersr.archs import GENERATORS
from soccersr.errors import UsageError
from soccersr.infer.devices import activation_bytes_per_pixel, auto_batch_size, auto_tile_side, memory_budget
from soccersr.infer.engine import DEFAULT_OVERLAP, TileEngine
from soccersr.infer.tiling import Size
from soccersr.weights.model import post_resize_factor

logger = logging.getLogger(__name__)

METADATA_VERSION = "1"
INPUT_NAME = "input"
OUTPUT_NAME = "output"


class OnnxModelError(UsageError, ValueError):
    """An .onnx file cannot be used (message: the file and the reason, in one line).

    Exit code 2 (a usage error): nothing can run without a model."""


@dataclass(frozen=True)
class OnnxModelInfo:
    """What the metadata of an exported .onnx file says about its graph."""

    name: str
    """The model it was exported from (built-in name or weights file name)."""
    arch: str
    arch_kwargs: Mapping[str, int | str] = field(repr=False)
    net_scale: int
    """Output/input size ratio of the graph."""
    scale: float
    """Output/input size ratio of the whole model (graph + post-resize)."""
    size_multiple: int
    """H and W fed to the graph must be multiples of this."""
    precision: str
    """'fp32' or 'fp16' (weights and arithmetic; the graph's input/output stay float32)."""
    source: str = ""
    soccersr_version: str = ""

    @property
    def post_resize(self) -> float | None:
        """Factor of the bicubic resize to apply after the graph (not in the graph), or None."""
        return post_resize_factor(self.scale, self.net_scale)

    @property
    def input_contract(self) -> str:
        text = f"RGB float32 [0,1] NCHW -> RGB float32 unclamped NCHW, x{self.net_scale}"
        if self.post_resize is not None:
            text += f"; then a bicubic resize by {self.post_resize:g} outside the graph (x{self.scale:g} overall)"
        if self.size_multiple > 1:
            text += f"; H and W multiples of {self.size_multiple}"
        return text

    def to_metadata(self) -> dict[str, str]:
        """String key/value pairs for the ONNX ``metadata_props``."""
        return {
            "soccersr_metadata_version": METADATA_VERSION,
            "name": self.name,
            "architecture": self.arch,
            "architecture_kwargs": json.dumps(dict(self.arch_kwargs), sort_keys=True),
            "scale": f"{self.scale:g}",
            "net_scale": str(self.net_scale),
            "post_resize": "none" if self.post_resize is None else f"{self.post_resize!r}",
            "size_multiple": str(self.size_multiple),
            "precision": self.precision,
            "source_model": self.source,
            "soccersr_version": self.soccersr_version,
            "input_contract": self.input_contract,
        }

    @classmethod
    def from_metadata(cls, props: Mapping[str, str], *, origin: str) -> OnnxModelInfo:
        """Parse ``metadata_props``; ``origin`` (the file name) goes into error messages."""
        _check_metadata_version(props, origin)
        info = cls._parse(props, origin)
        info._validate(origin)
        return info

    @classmethod
    def _parse(cls, props: Mapping[str, str], origin: str) -> OnnxModelInfo:
        """The fields as written, converted to their types (not yet checked)."""

        def get(key: str) -> str:
            try:
                return props[key]
            except KeyError:
                raise OnnxModelError(f"{origin}: metadata key {key!r} is missing") from None

        try:
            return cls(
                name=get("name"),
                arch=get("architecture"),
                arch_kwargs=json.loads(get("architecture_kwargs")),
                net_scale=int(get("net_scale")),
                scale=float(get("scale")),
                size_multiple=int(get("size_multiple")),
                precision=get("precision"),
                source=props.get("source_model", ""),
                soccersr_version=props.get("soccersr_version", ""),
            )
        except OnnxModelError:  # a missing key (it is a ValueError too): already its own message
            raise
        except (ValueError, TypeError) as exc:
            raise OnnxModelError(f"{origin}: unreadable metadata value ({exc})") from None

    def _validate(self, origin: str) -> None:
        if not isinstance(self.arch_kwargs, dict):
            raise OnnxModelError(f"{origin}: metadata key 'architecture_kwargs' is not a JSON object")
        if self.net_scale < 1 or self.size_multiple < 1:
            raise OnnxModelError(
                f"{origin}: bad metadata (net_scale={self.net_scale}, scale={self.scale}, size_multiple={self.size_multiple})"
            )
        # As for weights files: the network, then at most a fixed downscale, never below x1.
        if not 1 <= self.scale <= self.net_scale:
            raise OnnxModelError(
                f"{origin}: metadata scale {self.scale:g} does not fit a x{self.net_scale} network "
                f"(expected 1 to {self.net_scale})"
            )
        names = [spec.name for spec in GENERATORS]
        if self.arch not in names:  # its memory estimate sizes the tiles
            raise OnnxModelError(f"{origin}: metadata architecture {self.arch!r} is not one of {names}")
        if self.precision not in ("fp32", "fp16"):
            raise OnnxModelError(f"{origin}: metadata key 'precision' is {self.precision!r}, expected 'fp32' or 'fp16'")


def _check_metadata_version(props: Mapping[str, str], origin: str) -> None:
    if "soccersr_metadata_version" not in props:
        raise OnnxModelError(
            f"{origin}: no soccersr metadata (scale, size multiple); export the model with `soccersr export --format onnx`"
        )
    if props["soccersr_metadata_version"] != METADATA_VERSION:
        raise OnnxModelError(
            f"{origin}: soccersr metadata version {props['soccersr_metadata_version']!r} is not supported "
            f"(expected {METADATA_VERSION!r})"
        )


def _providers(device: str) -> list[str | tuple[str, dict[str, str]]]:
    """ONNX Runtime execution providers for ``device``: 'cpu', 'cuda', 'cuda:N' or 'auto'."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    name, _, index = device.strip().lower().partition(":")
    if name == "cpu" and not index:
        return ["CPUExecutionProvider"]
    if name not in ("cuda", "auto") or (index and (name == "auto" or not index.isdigit())):
        raise OnnxModelError(f"unknown ONNX Runtime device {device!r}: expected 'auto', 'cpu', 'cuda' or 'cuda:N'")
    if "CUDAExecutionProvider" not in available:
        if name == "cuda":
            raise OnnxModelError(
                f"device {device!r}: the CUDA execution provider is not available (installed: {', '.join(available)}); "
                "install onnxruntime-gpu or use --device cpu"
            )
        return ["CPUExecutionProvider"]
    return [("CUDAExecutionProvider", {"device_id": index or "0"}), "CPUExecutionProvider"]


def create_session(model: Path | bytes, *, device: str = "cpu", threads: int | None = None):  # -> ort.InferenceSession
    """An ONNX Runtime session for an exported model file (or its bytes).

    ``threads``: intra-op threads; None = one per CPU core of this process (ONNX Runtime's own
    default counts physical cores of the whole machine, which oversubscribes a CPU-limited
    container). Graph optimisation: all levels; the last one (NCHWc layout for x86 convs) alone
    makes x4plus about 1.3x faster than ``EXTENDED`` on the CPU.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads if threads is not None else _cpu_count()
    # The graph is one chain of convs: nothing for parallel (inter-op) execution to overlap.
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # Idle worker threads sleep instead of spinning: spinning keeps a core busy between ops and
    # starves the image decode/encode threads; measured as fast or faster on the 2-core CPU.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    source = model if isinstance(model, bytes) else str(model)
    try:
        return ort.InferenceSession(source, sess_options=options, providers=_providers(device))
    except OnnxModelError:
        raise
    except Exception as exc:  # onnxruntime raises its own exception types (Fail, InvalidGraph, NoSuchFile, ...)
        origin = "<bytes>" if isinstance(model, bytes) else str(model)
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise OnnxModelError(f"{origin}: ONNX Runtime cannot load it ({reason})") from None


def _cpu_count() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


# ONNX Runtime reports a failed allocation as a generic RuntimeException (it has no typed
# out-of-memory error); these are the messages of its arena, of std::bad_alloc and of CUDA.
_OOM_MESSAGES = ("failed to allocate memory", "bad_alloc", "bad allocation", "out of memory")


class OnnxRunner:
    """The engine's ``TileRunner`` over an ONNX Runtime session. Thread-safe (``session.run`` is).

    Args:
        path: an ``.onnx`` file written by ``soccersr export --format onnx``.
        device: 'cpu' (default), 'cuda', 'cuda:N' or 'auto' (CUDA provider when installed).
        threads: intra-op threads (see ``create_session``).

    Raises:
        OnnxModelError: unreadable file, no or bad soccersr metadata, unexpected graph interface
            (names, a fixed batch / height / width, not 3 channels, a scale other than the metadata's).
    """

    def __init__(self, path: str | Path, *, device: str = "cpu", threads: int | None = None) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise OnnxModelError(f"{self.path}: no such file")
        self._session = create_session(self.path, device=device, threads=threads)
        props = dict(self._session.get_modelmeta().custom_metadata_map)
        self.info = OnnxModelInfo.from_metadata(props, origin=str(self.path))
        self._check_interface()
        provider = self._session.get_providers()[0]
        if provider == "CUDAExecutionProvider":
            options = self._session.get_provider_options().get(provider, {})
            self.device = torch.device("cuda", int(options.get("device_id", 0)))
        else:
            self.device = torch.device("cpu")
        self.reduced_precision = self.info.precision == "fp16"

    def _check_interface(self) -> None:
        inputs, outputs = self._session.get_inputs(), self._session.get_outputs()
        names = ([i.name for i in inputs], [o.name for o in outputs])
        if names != ([INPUT_NAME], [OUTPUT_NAME]):
            raise OnnxModelError(
                f"{self.path}: graph inputs/outputs are {names}, expected ['{INPUT_NAME}'] -> ['{OUTPUT_NAME}']"
            )
        if inputs[0].type != "tensor(float)" or len(inputs[0].shape) != 4:
            raise OnnxModelError(
                f"{self.path}: input is {inputs[0].type} of rank {len(inputs[0].shape)}, expected float32 NCHW"
            )
        # ONNX Runtime gives a dynamic axis as its name (or None), a fixed one as an int. The engine
        # feeds RGB tiles of any size, several at a time: anything fixed but the channels fails
        # on the first image, as onnxruntime's InvalidArgument, so it is refused here.
        shape = list(inputs[0].shape)
        channels = shape[1]
        if isinstance(channels, int) and channels != 3:
            raise OnnxModelError(f"{self.path}: input shape is {shape}; expected 3 (RGB) channels")
        if any(isinstance(d, int) for d in (shape[0], *shape[2:])):
            raise OnnxModelError(
                f"{self.path}: input shape is {shape}; the engine feeds tiles of any size in batches, so batch, "
                "height and width must be dynamic (soccersr export --format onnx)"
            )
        self._check_scale()

    def _check_scale(self) -> None:
        """Run a tiny input: the graph's real output size must be what the metadata says."""
        side = -(-8 // self.info.size_multiple) * self.info.size_multiple
        probe = np.zeros((1, 3, side, side), np.float32)
        try:
            (out,) = self._session.run([OUTPUT_NAME], {INPUT_NAME: probe})
        except Exception as exc:  # onnxruntime's own types (InvalidArgument, Fail, RuntimeException, ...)
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise OnnxModelError(f"{self.path}: the graph fails on a 1x3x{side}x{side} test input ({reason})") from None
        want = (1, 3, side * self.info.net_scale, side * self.info.net_scale)
        if tuple(out.shape) != want:
            raise OnnxModelError(
                f"{self.path}: the graph turns a 1x3x{side}x{side} input into {'x'.join(map(str, out.shape))}, "
                f"but its metadata says x{self.info.net_scale} ({'x'.join(map(str, want))})"
            )

    def run(self, windows: Tensor) -> Tensor:
        """(N, 3, h, w) float32 CPU -> (N, 3, h*net_scale, w*net_scale) float32 CPU, unclamped."""
        from onnxruntime.capi.onnxruntime_pybind11_state import RuntimeException

        x = windows.detach().to("cpu", torch.float32).contiguous().numpy()
        try:
            (out,) = self._session.run([OUTPUT_NAME], {INPUT_NAME: x})
        except RuntimeException as exc:
            message = str(exc)
            if any(m in message.lower() for m in _OOM_MESSAGES):
                # The engine splits the work on this exact type.
                raise torch.OutOfMemoryError(f"{self.path}: out of memory in ONNX Runtime ({message[:200]})") from None
            raise
        return torch.from_numpy(out)

    def run_fp32(self, windows: Tensor) -> Tensor:
        """A float16 file has no float32 weights to fall back on: fail with the remedy."""
        raise RuntimeError(
            f"{self.path}: the float16 graph overflowed (inf/NaN) on {windows.shape[0]} tile(s); "
            "export the model without --fp16"
        )

    def _bytes_per_pixel(self) -> float:
        # ONNX Runtime's CPU peak was measured at 13-15.5 kB per input pixel for x4plus, under
        # the PyTorch estimate (16.6 kB), so the same estimate and budgets apply. On the CPU,
        # float16 graphs compute partly in float32: count them as float32 there.
        precision = "fp16" if self.reduced_precision and self.device.type == "cuda" else "fp32"
        return activation_bytes_per_pixel(self.info.arch, self.info.arch_kwargs, precision)

    def auto_tile(self, overlap: int) -> int:
        """Largest tile side whose window fits the memory budget (as ``TorchRunner``)."""
        return auto_tile_side(self._bytes_per_pixel(), memory_budget(self.device), overlap)

    def auto_batch(self, window: Size) -> int:
        """1 on the CPU, what fits on a visible GPU (as ``TorchRunner``)."""
        return auto_batch_size(self._bytes_per_pixel(), memory_budget(self.device), window)


def load_onnx_upscaler(
    path: str | Path,
    *,
    device: str = "auto",
    precision: str = "auto",
    tile: int | str = "auto",
    tile_overlap: int = DEFAULT_OVERLAP,
    batch_size: int | str = "auto",
    threads: int | None = None,
) -> TileEngine:
    """An ``engine.TileEngine`` that runs an exported .onnx file with ONNX Runtime.

    Same arguments and behaviour as ``Upscaler(model, ...)``, except: ``precision`` is fixed by
    the file ('auto', or the file's own 'fp32'/'fp16'; anything else is an error), and
    ``device`` picks an ONNX Runtime execution provider ('auto': CUDA when onnxruntime-gpu is
    installed, else CPU).

    Raises:
        OnnxModelError: unusable file or device, or a precision the file does not have.
        ValueError: bad tile / tile_overlap / batch_size.
    """
    runner = OnnxRunner(path, device=device, threads=threads)
    if precision not in ("auto", runner.info.precision):
        raise OnnxModelError(
            f"{path}: is a {runner.info.precision} export; precision {precision!r} needs another export "
            f"(`soccersr export --format onnx{' --fp16' if precision == 'fp16' else ''}`)"
        )
    logger.info(
        "ONNX Runtime: %s on %s (%s, x%g)", Path(path).name, runner.device, runner.info.precision, runner.info.scale
    )
    return TileEngine(runner, runner.info, tile=tile, tile_overlap=tile_overlap, batch_size=batch_size)
