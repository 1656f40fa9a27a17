"""Export an ``SRModel`` to ONNX, checked and compared with PyTorch before anything is written.

Exporter: PyTorch's TorchScript-based exporter (``torch.onnx.export(..., dynamo=False)``),
deprecated since torch 2.9 but present and tested in 2.13. The dynamo exporter needs the
``onnxscript`` package, which we do not depend on; tried with onnxscript 0.7.2, it gives the
same operators for these networks (Conv, LeakyRelu/PRelu, Concat, Resize with constant scales,
DepthToSpace, Reshape/Transpose for the pixel-unshuffle) and the same numbers, but exports
more slowly. When the TorchScript exporter is removed, switch to ``dynamo=True`` with
``dynamic_shapes`` (H and W of x2/x1 RRDBNet declared as multiples of 2/4).

What the file holds:

* the network only (see ``soccersr.infer.onnx_backend`` for why a post-resize stays outside);
* dynamic batch, height and width: input ``input`` (batch, 3, height, width) float32,
  output ``output`` (batch, 3, out_height, out_width) float32, unclamped;
* with ``fp16``: float16 weights and arithmetic behind float32 input/output casts, so every
  runtime feeds the same tensors;
* ``metadata_props``: ``OnnxModelInfo.to_metadata()`` plus ``parity_max_abs_diff``.

Before the file is written: ``onnx.checker.check_model(full_check=True)``, then ONNX Runtime
(CPU) and PyTorch (float32) run the same deterministic probe images: a 37x53 crop (rounded up
to the input size multiple, so never a multiple of 8) and a batch of two at another size, to
prove the dynamic axes. The largest absolute difference must stay within the tolerance.
The file is written to a temporary name and renamed, so a failed export leaves nothing.
"""

from __future__ import annotations

import copy
import io
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from soccersr import __version__
from soccersr.export import ExportError, write_atomic
from soccersr.infer.onnx_backend import INPUT_NAME, OUTPUT_NAME, OnnxModelInfo, create_session
from soccersr.weights.model import SRModel

logger = logging.getLogger(__name__)

DEFAULT_OPSET = 17
"""Everything in these graphs is unchanged since opset 13; 17 is read by ONNX Runtime >= 1.11,
TensorRT >= 8.6 and OpenVINO alike. 20 is the newest the TorchScript exporter writes."""
MIN_OPSET = 13
MAX_OPSET = 20

FP32_TOLERANCE = 1e-3
"""Max abs difference from PyTorch for a float32 export (observed: 2.1e-6 on x4plus)."""
FP16_TOLERANCE = 2e-2
"""Max abs difference from PyTorch float32 for a float16 export: float16 has an 11-bit
mantissa (relative step 1e-3) and errors add up over 23 RRDB blocks; observed 2.6e-3 on x4plus.
2e-2 (5 levels of 8 bits) still catches a broken graph, whose errors are of order 0.1-1."""

PROBE_SIZES: tuple[tuple[int, int, int], ...] = ((1, 37, 53), (2, 29, 22))
"""(batch, height, width) of the parity probes, before rounding up to the size multiple."""
_TRACE_SIZE = 8  # a multiple of every size multiple (1, 2, 4); small because fp16 on the CPU is slow


@dataclass(frozen=True)
class OnnxExportResult:
    path: Path
    opset: int
    precision: str
    max_abs_diff: float
    """Largest |ONNX Runtime - PyTorch float32| over all probes."""
    tolerance: float
    probe_shapes: tuple[tuple[int, int, int, int], ...]
    num_bytes: int


class _Float32Interface(nn.Module):
    """float32 in -> float16 network -> float32 out, so the graph's interface does not depend on precision."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.half()).float()


def model_info(model: SRModel, *, fp16: bool = False) -> OnnxModelInfo:
    """The metadata an export of ``model`` carries."""
    return OnnxModelInfo(
        name=model.name,
        arch=model.arch,
        arch_kwargs=dict(model.arch_kwargs),
        net_scale=model.net_scale,
        scale=float(model.scale),
        size_multiple=model.size_multiple,
        precision="fp16" if fp16 else "fp32",
        source=model.source,
        soccersr_version=__version__,
    )


def probe_image(batch: int, height: int, width: int, *, seed: int = 0) -> torch.Tensor:
    """A deterministic, photo-like test batch (B, 3, H, W) in [0, 1], on 8-bit levels.

    Grass-like stripes, a white pitch line, a few saturated blobs and fine noise: smooth areas,
    hard edges and texture, so the probe exercises the network the way a real crop does
    (a uniform or pure-noise input can hide errors in the upsampling path).
    """
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    images = np.empty((batch, 3, height, width), np.float32)
    for b in range(batch):
        stripes = 0.5 + 0.5 * np.sin(x / (3.0 + 2.0 * rng.random()) + rng.random() * 6.28)
        img = np.stack([0.15 + 0.1 * stripes, 0.45 + 0.15 * stripes, 0.12 + 0.08 * stripes])
        line = np.abs(y - (0.3 + 0.4 * rng.random()) * height - 0.4 * (x - width / 2)) < 1.5
        img[:, line] = 0.95
        for _ in range(3):
            cy, cx = rng.random() * height, rng.random() * width
            blob = (y - cy) ** 2 / 9.0 + (x - cx) ** 2 / 4.0 < 1.0
            img[:, blob] = rng.random(3)[:, None]
        img += rng.normal(0.0, 0.03, img.shape).astype(np.float32)
        images[b] = np.round(np.clip(img, 0.0, 1.0) * 255.0) / 255.0
    return torch.from_numpy(images)


def max_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    """Largest absolute difference; infinite when the shapes differ or anything is not finite."""
    if a.shape != b.shape:
        return float("inf")
    diff = np.abs(a.astype(np.float64) - b.astype(np.float64))
    return float(diff.max()) if np.isfinite(diff).all() else float("inf")


def probe_shapes(size_multiple: int) -> tuple[tuple[int, int, int, int], ...]:
    """The (B, 3, H, W) shapes of the parity probes for a model with this input size multiple."""

    def up(n: int) -> int:
        return -(-n // size_multiple) * size_multiple

    return tuple((b, 3, up(h), up(w)) for b, h, w in PROBE_SIZES)


def to_onnx_bytes(model: SRModel, *, fp16: bool = False, opset: int = DEFAULT_OPSET) -> bytes:
    """The serialised ONNX model of ``model.net`` with dynamic axes and metadata (not yet checked)."""
    import onnx

    net: nn.Module = _Float32Interface(copy.deepcopy(model.net).half()) if fp16 else model.net
    dummy = torch.zeros(1, 3, _TRACE_SIZE, _TRACE_SIZE)
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        # The TorchScript exporter is deprecated in favour of the dynamo one (see the module docstring).
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
        warnings.filterwarnings("ignore", message=".*will be removed.*", category=DeprecationWarning)
        torch.onnx.export(
            net,
            (dummy,),
            buffer,
            dynamo=False,
            opset_version=opset,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={
                INPUT_NAME: {0: "batch", 2: "height", 3: "width"},
                OUTPUT_NAME: {0: "batch", 2: "out_height", 3: "out_width"},
            },
        )
    proto = onnx.load_from_string(buffer.getvalue())
    info = model_info(model, fp16=fp16)
    onnx.helper.set_model_props(proto, info.to_metadata())
    proto.doc_string = f"soccersr {__version__} export of {model.name}: {info.input_contract}"
    return proto.SerializeToString()


def check_parity(onnx_bytes: bytes, model: SRModel) -> tuple[float, tuple[tuple[int, int, int, int], ...]]:
    """Largest |ONNX Runtime - PyTorch| over the probes, and the probe shapes."""
    session = create_session(onnx_bytes, device="cpu")
    shapes = probe_shapes(model.size_multiple)
    worst = 0.0
    for seed, (b, _, h, w) in enumerate(shapes):
        x = probe_image(b, h, w, seed=seed)
        with torch.no_grad():
            expected = model.net(x).numpy()
        (got,) = session.run([OUTPUT_NAME], {INPUT_NAME: x.numpy()})
        worst = max(worst, max_abs_diff(got, expected))
    return worst, shapes


def export_onnx(
    model: SRModel,
    path: str | Path,
    *,
    fp16: bool = False,
    opset: int = DEFAULT_OPSET,
    tolerance: float | None = None,
) -> OnnxExportResult:
    """Export ``model`` to ``path`` as ONNX; see the module docstring for what is checked.

    Args:
        model: a loaded model (``soccersr.weights.load_model``), float32 on the CPU.
        path: output file; its folder is created; an existing file is replaced atomically.
        fp16: float16 weights and arithmetic (float32 input/output).
        opset: ONNX opset, MIN_OPSET..MAX_OPSET.
        tolerance: max abs difference from PyTorch; default FP32_TOLERANCE / FP16_TOLERANCE.

    Raises:
        ExportError: bad opset, checker failure or parity failure (nothing is written then).
    """
    import onnx

    path = Path(path)
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise ExportError(f"{path}: opset {opset} is not supported (use {MIN_OPSET}..{MAX_OPSET})")
    if tolerance is None:
        tolerance = FP16_TOLERANCE if fp16 else FP32_TOLERANCE

    data = to_onnx_bytes(model, fp16=fp16, opset=opset)
    proto = onnx.load_from_string(data)
    try:
        onnx.checker.check_model(proto, full_check=True)
    except onnx.checker.ValidationError as exc:
        reason = str(exc).strip().splitlines()[0]
        raise ExportError(f"{path}: the exported graph fails the ONNX checker ({reason}); nothing written") from None

    worst, shapes = check_parity(data, model)
    shape_text = ", ".join("x".join(map(str, s)) for s in shapes)
    if not worst <= tolerance:
        raise ExportError(
            f"{path}: ONNX Runtime output differs from PyTorch by {worst:.3g} (tolerance {tolerance:g}) "
            f"on inputs {shape_text}; nothing written"
        )
    logger.info("ONNX parity with PyTorch: max abs diff %.3g on %s (tolerance %g)", worst, shape_text, tolerance)
    onnx.helper.set_model_props(
        proto, {**{p.key: p.value for p in proto.metadata_props}, "parity_max_abs_diff": f"{worst:.3g}"}
    )
    data = proto.SerializeToString()

    write_atomic(path, data)
    return OnnxExportResult(
        path=path,
        opset=opset,
        precision="fp16" if fp16 else "fp32",
        max_abs_diff=worst,
        tolerance=tolerance,
        probe_shapes=shapes,
        num_bytes=len(data),
    )
