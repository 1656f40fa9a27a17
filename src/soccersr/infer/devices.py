"""Device and precision choice, and how much memory a tile needs.

``resolve_device`` / ``resolve_precision`` turn the user's strings ("auto", "cuda:1", "bf16")
into concrete values and reject impossible combinations with one-line errors. The memory
estimates let the engine pick a tile size that fits: activation bytes per input pixel of a
network, measured (see bench/README.md) rather than guessed, with headroom.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Literal

import torch

from soccersr import hardware
from soccersr.archs import generator_spec
from soccersr.infer.tiling import Size
from soccersr.options import PRECISIONS

Precision = Literal["fp32", "fp16", "bf16"]
DTYPES: Mapping[str, torch.dtype] = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}

logger = logging.getLogger(__name__)


def resolve_device(device: str | torch.device) -> torch.device:
    """'auto' (CUDA if available, else CPU), 'cpu', 'cuda' or 'cuda:N' -> a usable torch.device."""
    name = str(device) if isinstance(device, torch.device) else device.strip().lower()
    if name == "auto":
        return torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else torch.device("cpu")
    try:
        resolved = torch.device(name)
    except RuntimeError:
        raise ValueError(f"unknown device {device!r}: expected 'auto', 'cpu', 'cuda' or 'cuda:N'") from None
    if resolved.type == "cpu":
        return torch.device("cpu")
    if resolved.type != "cuda":
        raise ValueError(f"unsupported device {device!r}: expected 'auto', 'cpu', 'cuda' or 'cuda:N'")
    if not torch.cuda.is_available():
        raise ValueError(f"device {device!r}: CUDA is not available in this PyTorch build or on this machine")
    index = torch.cuda.current_device() if resolved.index is None else resolved.index
    if not 0 <= index < torch.cuda.device_count():
        raise ValueError(f"device {device!r}: no such GPU (this machine has {torch.cuda.device_count()})")
    return torch.device("cuda", index)


def resolve_precision(precision: str, device: torch.device) -> Precision:
    """'auto' -> fp16 on CUDA; on the CPU bf16 where it is native (AMX or AVX512_BF16), else fp32.

    fp16 rather than bf16 on CUDA: it is the official default, both run on the same tensor
    cores, and fp16 keeps 3 more mantissa bits (8x smaller rounding errors); its narrow range
    (65504) is what bf16 would buy, and the engine already redoes any tile that overflows in
    fp32. On a CPU with native bf16 it is 2-9x faster than fp32 (bench/README.md) at ~52 dB
    PSNR against fp32 on 8-bit outputs; elsewhere PyTorch emulates it, slower than fp32 (the torch
    runner warns), and OpenVINO runs fp32 instead (it says so). fp16 on the CPU is refused (slow and
    incomplete in PyTorch)."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
    if precision == "auto":
        if device.type == "cuda":
            return "fp16"
        return "bf16" if hardware.native_bf16() else "fp32"
    if device.type == "cpu" and precision == "fp16":
        raise ValueError("precision 'fp16' is not supported on the CPU: use fp32 or bf16")
    if device.type == "cuda" and precision == "bf16" and not torch.cuda.is_bf16_supported():
        raise ValueError(f"precision 'bf16' is not supported by {torch.cuda.get_device_name(device)}: use fp16 or fp32")
    return precision  # type: ignore[return-value]


def activation_bytes_per_pixel(arch: str, arch_kwargs: Mapping[str, int | str], precision: Precision) -> float:
    """Peak activation memory of one forward pass, in bytes per *input* pixel.

    Each architecture's estimate (``ArchSpec.activation_floats_per_pixel``) is rounded up from
    measurements: the growth of ru_maxrss between untiled 96x128 and 144x192 CPU upscales,
    see bench/README.md.
    """
    element = 4 if precision == "fp32" else 2
    return element * generator_spec(arch).activation_floats_per_pixel(arch_kwargs)


def free_device_memory(device: torch.device) -> int:
    """Bytes the caching allocator can still get on a CUDA device (free + cached by us)."""
    free, _total = torch.cuda.mem_get_info(device)
    reserved = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    return int(free + reserved)


# CPU: share of the memory this process may still use (``hardware.available_memory``: the
# kernel's MemAvailable and any cgroup limit) that one window's activations may take. The rest
# covers the runtime, the weights, the input, the x4 output and other processes. Where the
# memory cannot be read (not Linux), a fixed budget that kept a 1920x1080 x4plus fp32 upscale
# within 2 GiB.
CPU_MEMORY_SHARE = 0.5
CPU_FALLBACK_BUDGET = 3 << 29  # 1.5 GiB
CPU_MIN_BUDGET = 1 << 28  # 256 MiB: below this the tiles are mostly margin; the OOM path takes over
# CUDA: share of the free memory one batch of tiles may take (cuDNN workspaces and allocator
# slack need the rest).
CUDA_MEMORY_SHARE = 0.5
# Largest tile side the auto setting picks. Beyond this, larger tiles stop paying for
# themselves (the overlap is already a small share) and one tile's result gets large. On the
# CPU a 512 px core in a 576 px window does 1.27x the work of an untiled pass, and keeps a
# 1920x1080 x4plus bf16 upscale under 4 GiB; any frame up to 576x576 (480x270 video) runs in
# one pass.
MAX_AUTO_TILE = 1024
CPU_MAX_AUTO_TILE = 512
MAX_AUTO_BATCH = 16


def memory_budget(device: torch.device) -> float | None:
    """Bytes one forward pass may take on a CUDA device that PyTorch sees; None on the CPU (whose
    budget ``cpu_memory_budget`` gives; ``auto_tile_side`` applies it)."""
    if device.type != "cuda" or not torch.cuda.is_available():
        return None
    return free_device_memory(device) * CUDA_MEMORY_SHARE


def cpu_memory_budget() -> float:
    """Bytes one window's activations may take on the CPU, from the memory available now."""
    available = hardware.available_memory()
    if available is None:
        return float(CPU_FALLBACK_BUDGET)
    return max(float(CPU_MIN_BUDGET), available * CPU_MEMORY_SHARE)


def auto_tile_side(per_pixel: float, cuda_budget: float | None, overlap: int) -> int:
    """Largest tile side whose window fits the budget: ``cuda_budget`` bytes on a GPU, or the CPU's
    (``cuda_budget`` None: ``cpu_memory_budget``). ``per_pixel``: activation bytes per input
    pixel. Every runner uses it, once per engine, and the choice is logged (debug level, ``-v``)."""
    if cuda_budget is not None:
        budget, ceiling, where = cuda_budget, MAX_AUTO_TILE, "CUDA"
    else:
        budget, ceiling, where = cpu_memory_budget(), CPU_MAX_AUTO_TILE, "CPU"
    window = int((budget / per_pixel) ** 0.5)
    tile = max(32, min(ceiling, window - 2 * overlap))
    side = tile + 2 * overlap
    logger.debug(
        "auto tile on the %s: %d px (windows up to %dx%d px, ~%.0f MiB of activations; budget %.0f MiB); "
        "smaller images run in one pass",
        where,
        tile,
        side,
        side,
        side * side * per_pixel / 2**20,
        budget / 2**20,
    )
    return tile


def auto_batch_size(per_pixel: float, cuda_budget: float | None, window: Size) -> int:
    """Windows per forward pass: 1 on the CPU (batching does not speed up its convolutions and
    multiplies memory; the tile side already takes what the memory allows), as many as fit
    ``cuda_budget`` on a GPU."""
    if cuda_budget is None:
        return 1
    return max(1, min(MAX_AUTO_BATCH, int(cuda_budget // (per_pixel * window.h * window.w))))
