"""The OpenVINO ``TileRunner``: the default on the CPU (2-9x faster than PyTorch there, bench/README.md).

How a model gets to OpenVINO, with no telemetry::

    SRModel.net --torch.onnx.export--> ONNX bytes --Core.read_model--> ov.Model
                --Core.compile_model("CPU", precision hint)--> CompiledModel --export_model--> disk cache

``openvino.convert_model`` is not used: it starts OpenVINO's usage telemetry, which treats a
missing consent file as consent. A photo desk's tool must not phone home. ``read_model``,
``compile_model``, ``import_model`` and inference run in the C++ runtime and send nothing (a
test patches the telemetry to fail and runs this whole path). The ONNX export is PyTorch's
TorchScript exporter, which needs the ``onnx`` package at run time.

Choices, each measured on the 2-core Xeon with AMX (bench/README.md):

- One compile for dynamic batch, height and width. A static compile for one tile shape was no
  faster per inference, but every image size would cost its own compile (seconds), so every
  tile and image size runs on the one compiled model and nothing recompiles per call.
- ``INFERENCE_PRECISION_HINT`` set explicitly (OpenVINO would pick bf16 by itself on a CPU
  where it is native); the precision that was actually compiled is read back, so a bf16
  request on a CPU without bf16 runs, and reports, fp32.
- ``PERFORMANCE_HINT=LATENCY`` and one thread per CPU this process may run on.
- Compiled models are cached on disk (``export_model``/``import_model``) under the soccersr
  cache folder: a second start skips the export and the compile (~20 s for x4plus on 2 busy
  cores; ~1 s to import). The key covers everything that changes the compiled code: the
  weights, architecture, precision, threads, the OpenVINO and PyTorch versions and the CPU.
  An entry is checked against its own sha256 before use; a damaged or stale one is rebuilt
  with one warning. Entries are written atomically.

Thread-safe: the compiled model is shared, and each call takes an idle infer request from a
pool (an infer request serves one call at a time).
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import logging
import os
import re
import threading
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from soccersr import hardware
from soccersr.errors import MissingExtraError
from soccersr.infer.devices import Precision, activation_bytes_per_pixel, auto_batch_size, auto_tile_side
from soccersr.infer.tiling import Size
from soccersr.io.atomic import atomic_write_bytes
from soccersr.weights.builtin import default_cache_dir
from soccersr.weights.model import SRModel

logger = logging.getLogger(__name__)

CACHE_FORMAT = "soccersr-openvino-cache/1"
"""First line of every cache entry; bump it when the entry layout or the export changes."""
CACHE_SUBDIR = "openvino"
ONNX_OPSET = 17
_TRACE_SIZE = 8  # a multiple of every size multiple (1, 2, 4)
_OV_PRECISION = {"fp32": "f32", "bf16": "bf16"}
_OOM_MESSAGES = ("bad_alloc", "out of memory", "failed to allocate", "cannot allocate", "not enough memory")


class OpenVinoCacheError(Exception):
    """A cache entry cannot be used (the message says why); it is rebuilt."""


def import_openvino() -> Any:
    """The ``openvino`` module, or a one-line ``MissingExtraError`` when it is not installed."""
    try:
        import openvino
    except ImportError:
        raise MissingExtraError("--engine openvino", "openvino", "openvino") from None
    return openvino


@functools.cache
def shared_core() -> Any:
    """The process's one ``openvino.Core``, kept until exit.

    Why one, and never freed: on a CPU with AMX the CPU plugin gives the thread that compiles a
    bigger signal stack (``sigaltstack``) and puts the previous one back when its Core is freed.
    Cores freed in the order they were made leave that thread's signal stack pointing at unmapped
    (or reused) memory, and the next signal with a handler (Ctrl-C, a child's SIGCHLD) kills the
    process with SIGSEGV or scribbles over live memory.
    """
    return import_openvino().Core()


def openvino_available() -> bool:
    """True when ``openvino`` imports (``engine="auto"`` then picks it on the CPU)."""
    try:
        import_openvino()
    except MissingExtraError:
        return False
    return True


def default_threads() -> int:
    """One inference thread per CPU this process may run on (OpenVINO's own default counts
    physical cores of the whole machine, which oversubscribes a CPU-limited container)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def cache_folder(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Where compiled models are cached: ``<soccersr cache>/openvino``."""
    return Path(cache_dir if cache_dir is not None else default_cache_dir()) / CACHE_SUBDIR


# ---------------------------------------------------------------------------------------------
# Export and cache key


def onnx_bytes(model: SRModel) -> bytes:
    """``model.net`` as an ONNX graph with dynamic batch, height and width (float32 in and out)."""
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        # The TorchScript exporter is deprecated in favour of the dynamo one, which needs
        # onnxscript; see soccersr.export.onnx for why the TorchScript one is used.
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        torch.onnx.export(
            model.net,
            (torch.zeros(1, 3, _TRACE_SIZE, _TRACE_SIZE),),
            buffer,
            dynamo=False,
            opset_version=ONNX_OPSET,
            input_names=["input"],
            output_names=["output"],
            dynamic_axes={"input": {0: "batch", 2: "height", 3: "width"}, "output": {0: "batch", 2: "oh", 3: "ow"}},
        )
    return buffer.getvalue()


def weights_sha256(model: SRModel) -> str:
    """sha256 of the network's parameters and buffers (names, dtypes, shapes and bytes)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.net.state_dict().items()):
        flat = tensor.detach().to("cpu").contiguous().reshape(-1)
        digest.update(f"{name}|{flat.dtype}|{tuple(tensor.shape)}\n".encode())
        digest.update(flat.view(torch.uint8).numpy())
    return digest.hexdigest()


def cache_key(model: SRModel, precision: Precision, threads: int, ov_version: str) -> str:
    """sha256 of everything that changes the compiled model: a different model, weights,
    precision, thread count, OpenVINO or PyTorch (exporter) version, or CPU never shares an entry."""
    facts = {
        "format": CACHE_FORMAT,
        "openvino": ov_version,
        "torch": torch.__version__,
        "opset": ONNX_OPSET,
        "arch": model.arch,
        "arch_kwargs": {k: model.arch_kwargs[k] for k in sorted(model.arch_kwargs)},
        "net_scale": model.net_scale,
        "size_multiple": model.size_multiple,
        "precision": precision,
        "threads": threads,
        "cpu": hardware.cpu_name(),
        "cpu_flags": sorted(hardware.cpu_flags()),
        "weights": weights_sha256(model),
    }
    return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()


def cache_path(folder: Path, model: SRModel, precision: Precision, key: str) -> Path:
    """``<folder>/<model name>-<precision>-<key>.ovblob`` (the name is only for people)."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", model.name)[:64] or "model"
    return folder / f"{name}-{precision}-{key[:32]}.ovblob"


def write_entry(path: Path, key: str, blob: bytes) -> None:
    """Header (format, key, sha256 of the blob), then the blob; atomic."""
    header = f"{CACHE_FORMAT}\n{key}\n{hashlib.sha256(blob).hexdigest()}\n".encode("ascii")
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, header + blob)


def read_entry(path: Path, key: str) -> bytes:
    """The blob of a cache entry, after checking its header and checksum.

    Raises:
        OpenVinoCacheError: unreadable, another format or key (stale), or a damaged blob.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise OpenVinoCacheError(f"unreadable ({exc.strerror or exc})") from None
    lines = data.split(b"\n", 3)
    if len(lines) != 4:
        raise OpenVinoCacheError("truncated header")
    fmt, entry_key, checksum, blob = lines
    if fmt != CACHE_FORMAT.encode("ascii"):
        raise OpenVinoCacheError(f"format {fmt[:40]!r}, expected {CACHE_FORMAT!r}")
    if entry_key != key.encode("ascii"):
        raise OpenVinoCacheError("compiled for another model, precision, OpenVINO version or CPU (stale)")
    if hashlib.sha256(blob).hexdigest().encode("ascii") != checksum:
        raise OpenVinoCacheError("the compiled model does not match its checksum (damaged)")
    return blob


# ---------------------------------------------------------------------------------------------
# Compile (or load from the cache)


def compile_config(precision: Precision, threads: int) -> dict[str, str]:
    return {
        "INFERENCE_PRECISION_HINT": _OV_PRECISION[precision],
        "PERFORMANCE_HINT": "LATENCY",
        "INFERENCE_NUM_THREADS": str(threads),
    }


def load_compiled(core: Any, model: SRModel, precision: Precision, threads: int, folder: Path | None) -> Any:
    """The ``CompiledModel`` of ``model`` for the CPU: from the cache in ``folder`` when a valid
    entry is there, else exported, compiled and cached (``folder`` None: no cache)."""
    import openvino

    config = compile_config(precision, threads)
    path = key = None
    if folder is not None:
        key = cache_key(model, precision, threads, openvino.get_version())
        path = cache_path(folder, model, precision, key)
        if path.exists():
            try:
                blob = read_entry(path, key)
                try:
                    return core.import_model(blob, "CPU", config)
                except RuntimeError as exc:
                    raise OpenVinoCacheError(
                        f"OpenVINO cannot import it ({str(exc).strip().splitlines()[0][:200]})"
                    ) from None
            except OpenVinoCacheError as why:
                logger.warning("%s: rebuilding the compiled model: %s", path, why)
    logger.info(
        "OpenVINO: compiling %s for this CPU (%s), once%s",
        model.name,
        precision,
        f"; cached in {folder}" if folder is not None else "",
    )
    compiled = core.compile_model(core.read_model(onnx_bytes(model), b""), "CPU", config)
    if path is not None and key is not None:
        try:
            stream = io.BytesIO()
            compiled.export_model(stream)
            write_entry(path, key, stream.getvalue())
        except (OSError, RuntimeError) as exc:
            logger.warning("%s: cannot write the compiled-model cache (%s); compiling again next time", path, exc)
    return compiled


def compiled_precision(compiled: Any) -> Precision:
    """The precision OpenVINO actually compiled for ("bf16" or "fp32")."""
    hint = compiled.get_property("INFERENCE_PRECISION_HINT")  # an openvino.Type
    return "bf16" if getattr(hint, "get_type_name", lambda: str(hint))() == "bf16" else "fp32"


class _RequestPool:
    """Infer requests of one compiled model; each call borrows an idle one (or makes one)."""

    def __init__(self, compiled: Any) -> None:
        self.compiled = compiled
        self._idle: list[Any] = []
        self._lock = threading.Lock()

    def run(self, x: np.ndarray) -> np.ndarray:
        with self._lock:
            request = self._idle.pop() if self._idle else self.compiled.create_infer_request()
        try:
            # share_outputs=False (the default): the result is a copy, not the request's buffer.
            return request.infer({0: x}, share_inputs=True)[0]
        finally:
            with self._lock:
                self._idle.append(request)


def _is_out_of_memory(exc: BaseException) -> bool:
    return isinstance(exc, MemoryError) or any(m in str(exc).lower() for m in _OOM_MESSAGES)


class OpenVinoRunner:
    """Runs an ``SRModel``'s network with OpenVINO on the CPU. Thread-safe.

    Args:
        model: the model; its network is exported, never modified.
        precision: "fp32" or "bf16" (what ``devices.resolve_precision`` gives for the CPU).
            ``self.precision`` is what was compiled: fp32 where the CPU has no bf16.
        threads: inference threads; None: one per CPU this process may run on.
        cache_dir: the soccersr cache folder (compiled models go to its ``openvino/``);
            None: ``weights.builtin.default_cache_dir()``. ``use_cache=False``: no disk cache.

    Raises:
        MissingExtraError: openvino is not installed.
        ValueError: a precision OpenVINO's CPU plugin does not run here (fp16).
    """

    def __init__(
        self,
        model: SRModel,
        *,
        precision: Precision,
        threads: int | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        use_cache: bool = True,
    ) -> None:
        if precision not in _OV_PRECISION:
            raise ValueError(f"precision {precision!r} is not supported by the OpenVINO CPU engine: use fp32 or bf16")
        import_openvino()  # a missing extra is a MissingExtraError even once a Core exists
        self.device = torch.device("cpu")
        self._model = model
        self._threads = threads if threads is not None else default_threads()
        self._folder = cache_folder(cache_dir) if use_cache else None
        self._core = shared_core()
        compiled = load_compiled(self._core, model, precision, self._threads, self._folder)
        self.precision: Precision = compiled_precision(compiled)
        if self.precision != precision:
            logger.info("OpenVINO runs %s in %s on this CPU (%s was asked for)", model.name, self.precision, precision)
        self.reduced_precision = self.precision != "fp32"
        self._pool = _RequestPool(compiled)
        self._fp32_pool: _RequestPool | None = None if self.reduced_precision else self._pool
        self._lock = threading.Lock()

    def run(self, windows: Tensor) -> Tensor:
        """(N, 3, h, w) float32 CPU -> (N, 3, h*net_scale, w*net_scale) float32 CPU, unclamped."""
        return self._infer(self._pool, windows)

    def run_fp32(self, windows: Tensor) -> Tensor:
        """The same in float32 (for tiles whose bf16 output was not finite); compiled on first use."""
        with self._lock:
            if self._fp32_pool is None:
                self._fp32_pool = _RequestPool(
                    load_compiled(self._core, self._model, "fp32", self._threads, self._folder)
                )
            pool = self._fp32_pool
        return self._infer(pool, windows)

    def _infer(self, pool: _RequestPool, windows: Tensor) -> Tensor:
        x = windows.detach().to("cpu", torch.float32).contiguous().numpy()
        try:
            out = pool.run(x)
        except (MemoryError, RuntimeError) as exc:
            if _is_out_of_memory(exc):
                # The engine splits the work on this exact type.
                raise torch.OutOfMemoryError(f"out of memory in OpenVINO on {tuple(x.shape)} ({exc})") from None
            raise
        return torch.from_numpy(np.ascontiguousarray(out, dtype=np.float32))

    def _bytes_per_pixel(self) -> float:
        return activation_bytes_per_pixel(self._model.arch, self._model.arch_kwargs, self.precision)

    def auto_tile(self, overlap: int) -> int:
        """Largest tile side whose window fits the CPU memory budget."""
        return auto_tile_side(self._bytes_per_pixel(), None, overlap)

    def auto_batch(self, window: Size) -> int:
        """1: batching does not speed up the CPU's convolutions."""
        return auto_batch_size(self._bytes_per_pixel(), None, window)
