"""The PyTorch ``TileRunner``: runs an ``SRModel``'s network on batches of tiles, on CPU or CUDA.

Choices, each measured (bench/README.md):

- channels_last everywhere: oneDNN (CPU) and cuDNN (CUDA) pick their fastest NHWC kernels;
  on the CPU it is 1.3x (x4plus) to 2.2x (animevideov3 at 320x180) faster than NCHW.
- CUDA: weights cast once to fp16 (default, as the official CLI) or bf16, cudnn.benchmark on
  (a process-wide flag; every tile of an image has one shape, so autotuning pays at once),
  tiles batched. A tile whose reduced-precision output is not finite is redone by an fp32 copy
  of the weights, made on the device the first time it is needed.
- CPU: eager, PyTorch's default thread count (one per core it may run on). The default CPU
  engine is OpenVINO (``openvino_runner``); this path runs with ``--engine torch`` and where
  openvino is not installed. Precision "auto" is bf16 where the CPU has it natively (AMX or
  AVX512_BF16: bf16 weights and activations, channels_last, 2-3x faster than fp32, ~52-55 dB
  PSNR against fp32 on 8-bit outputs), fp32 elsewhere; a bf16 tile that is not finite is
  redone in fp32 as on CUDA. In fp32, oneDNN's direct convolutions already run near the CPU's
  fp32 peak; TorchScript freezing (``optimize_for_inference``) was 23% slower and prepacked
  oneDNN conv+activation ops only 2% faster, so neither is used.
"""

from __future__ import annotations

import copy
import logging
import threading

import torch
from torch import Tensor, nn

from soccersr import hardware
from soccersr.infer.devices import (
    DTYPES,
    Precision,
    activation_bytes_per_pixel,
    auto_batch_size,
    auto_tile_side,
    memory_budget,
)
from soccersr.infer.tiling import Size
from soccersr.weights.model import SRModel

logger = logging.getLogger(__name__)


def _prepared(net: nn.Module, device: torch.device, dtype: torch.dtype) -> nn.Module:
    """A private copy of ``net`` on ``device`` in ``dtype``, NHWC, eval, no grads (the model
    object is shared with the caller and other Upscalers, so it is never modified)."""
    copied = copy.deepcopy(net).eval()
    copied.requires_grad_(False)
    return copied.to(device=device, dtype=dtype, memory_format=torch.channels_last)


class TorchRunner:
    """Runs ``model.net`` on tiles. Thread-safe: ``run`` only reads the weights."""

    def __init__(self, model: SRModel, *, device: torch.device, precision: Precision) -> None:
        self.device = device
        self.precision: Precision = precision
        self.reduced_precision = precision != "fp32"
        self._model = model
        self._dtype = DTYPES[precision]
        self._net = _prepared(model.net, device, self._dtype)
        self._fp32_net: nn.Module | None = self._net if precision == "fp32" else None
        self._lock = threading.Lock()
        if device.type == "cpu" and precision == "bf16" and not hardware.native_bf16():
            logger.warning("this CPU has no native bf16 (AMX or AVX512_BF16): bf16 is emulated and slower than fp32")
        if device.type == "cuda":
            # Tiles of an image all share one size, so the per-shape autotuning pays off at once.
            torch.backends.cudnn.benchmark = True

    def run(self, windows: Tensor) -> Tensor:
        """(N, 3, h, w) float32 CPU -> (N, 3, h*net_scale, w*net_scale) float32 CPU, unclamped."""
        return self._forward(self._net, windows, self._dtype)

    def run_fp32(self, windows: Tensor) -> Tensor:
        """The same in float32 (for tiles whose reduced-precision output was not finite)."""
        with self._lock:
            if self._fp32_net is None:
                self._fp32_net = _prepared(self._model.net, self.device, torch.float32)
            net = self._fp32_net
        return self._forward(net, windows, torch.float32)

    def _forward(self, net: nn.Module, windows: Tensor, dtype: torch.dtype) -> Tensor:
        with torch.inference_mode():
            x = windows.to(self.device, non_blocking=True).to(dtype).contiguous(memory_format=torch.channels_last)
            out = net(x)
            return out.to("cpu", torch.float32)

    def _bytes_per_pixel(self) -> float:
        return activation_bytes_per_pixel(self._model.arch, self._model.arch_kwargs, self.precision)

    def auto_tile(self, overlap: int) -> int:
        """Largest tile side whose window fits the memory budget of one forward pass."""
        return auto_tile_side(self._bytes_per_pixel(), memory_budget(self.device), overlap)

    def auto_batch(self, window: Size) -> int:
        """Windows per forward pass (1 on the CPU)."""
        return auto_batch_size(self._bytes_per_pixel(), memory_budget(self.device), window)
