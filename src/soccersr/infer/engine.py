"""The tiled inference engine: every entry point (CLI, eval, Python API) upscales through it.

Input contract (the one place it is written down)::

    images: float32 RGB in [0, 1], shape (B, 3, H, W), on the CPU
    ->      float32 RGB clamped to [0, 1], shape (B, 3, round(H*scale), round(W*scale)), on the CPU

uint8/uint16, BGR, alpha and gray are the IO layer's business (``soccersr.io.images`` and
``pipeline``); an output scale other than the model's ("--outscale") too.

What happens to a batch:

1. Reflect-pad bottom/right to a multiple of ``model.size_multiple`` (x2/x1 RRDBNet
   pixel-unshuffle their input); the padding is cropped off the result.
2. Cut into tiles (``tiling.plan_tiles``) on the CPU: evenly sized cores, each seen with an
   ``overlap`` margin, all windows one size. Windows go to the device one batch at a time and
   results come back at once, so the whole image never has to fit on the device.
3. Paste each tile's core into the output (the margins are dropped, no blending: with a margin
   that covers the network's receptive field the result equals untiled inference).
4. Apply the model's fixed post-resize (animevideov3 x2/x3: bicubic, align_corners=False, no
   antialias, as ncnn's Interp) to the stitched image: it is not local, so tiles never see it.
5. Clamp to [0, 1].

Failures handled on the way: ``torch.OutOfMemoryError`` (by type) halves the batch, then the
tile size (down to ``MIN_TILE``), keeps the tiles already done and goes on; the smaller size is
remembered for later calls. A tile whose reduced-precision (fp16/bf16) output is not finite is
redone in fp32.

Backends plug in through ``TileRunner`` (``infer.backends`` makes them): ``TileEngine(runner,
facts)`` gives any of them the same tiling, OOM handling, progress and post-resize, and
``Upscaler(model, engine=..., device=..., precision=...)`` picks the backend for a model.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import Tensor

from soccersr.infer.tiling import Size, Tile, plan_tiles
from soccersr.options import DEFAULT_TILE_OVERLAP
from soccersr.weights.model import SRModel

logger = logging.getLogger(__name__)

ProgressFn = Callable[[int, int], None]

DEFAULT_OVERLAP = DEFAULT_TILE_OVERLAP
"""Context margin around each tile core, in input pixels. The compact models (receptive field
18 px) are exact from 24 on. x4plus (receptive field ~350 px) converges slowly: on a real
200x150 soccer crop cut into 64 px tiles, the mean/max error against untiled inference is
3.1e-3/0.19 at the official 10 px, 1.9e-3/0.10 at 16 and 5.0e-4/0.044 at 32
(bench/README.md). Feathered blending of the margins made it worse (1.1e-3/0.077 at 32)."""
MIN_TILE = 32
"""Out-of-memory splitting stops here: smaller tiles would be mostly margin."""


class ModelFacts(Protocol):
    """What the engine needs to know about a model besides how to run it
    (``SRModel`` and ``onnx_backend.OnnxModelInfo`` both fit)."""

    @property
    def name(self) -> str: ...

    @property
    def net_scale(self) -> int: ...

    @property
    def scale(self) -> float: ...

    @property
    def size_multiple(self) -> int: ...

    @property
    def post_resize(self) -> float | None: ...


class TileRunner(Protocol):
    """Runs a network on a batch of same-size tiles. Implementations must be thread-safe.

    ``run`` and ``run_fp32`` take (N, 3, h, w) float32 RGB on the CPU, h and w multiples of the
    model's ``size_multiple``, and return (N, 3, h*net_scale, w*net_scale) float32 on the CPU,
    unclamped. They raise ``torch.OutOfMemoryError`` when a batch does not fit (the engine then
    splits the work).
    """

    device: torch.device
    reduced_precision: bool
    """True when ``run`` computes in fp16/bf16: the engine then checks outputs for inf/NaN."""

    def run(self, windows: Tensor) -> Tensor: ...

    def run_fp32(self, windows: Tensor) -> Tensor:
        """Like ``run``, in float32 (only called when ``reduced_precision``)."""
        ...

    def auto_tile(self, overlap: int) -> int:
        """Tile side (input pixels) for ``tile="auto"``."""
        ...

    def auto_batch(self, window: Size) -> int:
        """Windows per ``run`` call for ``batch_size="auto"``."""
        ...


@dataclass(frozen=True)
class _Work:
    image: int
    tile: Tile


class TileEngine:
    """Upscales batches of images with one ``TileRunner``. Thread-safe and re-entrant.

    Build one with ``Upscaler(model, ...)`` (picks the backend) or ``infer.backends.open_upscaler``
    (also takes an .onnx file); this constructor takes a runner that is already made.

    Args:
        runner: runs the network on batches of tiles (PyTorch, OpenVINO, ONNX Runtime).
        facts: the model's scales and size multiple (an ``SRModel`` or ``OnnxModelInfo``).
        tile: largest tile side in input pixels; 0 for no tiling (the whole image in one pass;
            if that runs out of memory it is tiled anyway); "auto": from the runner's memory
            budget, and images that fit that budget in one pass are not tiled.
        tile_overlap: context margin around each tile, in input pixels.
        batch_size: tiles per forward pass, or "auto" (the runner decides).
    """

    def __init__(
        self,
        runner: TileRunner,
        facts: ModelFacts,
        *,
        tile: int | str = "auto",
        tile_overlap: int = DEFAULT_OVERLAP,
        batch_size: int | str = "auto",
    ) -> None:
        if not (tile == "auto" or (isinstance(tile, int) and tile >= 0)):
            raise ValueError(f"tile must be 'auto' or an integer >= 0, got {tile!r}")
        if not isinstance(tile_overlap, int) or tile_overlap < 0:
            raise ValueError(f"tile_overlap must be an integer >= 0, got {tile_overlap!r}")
        if not (batch_size == "auto" or (isinstance(batch_size, int) and batch_size >= 1)):
            raise ValueError(f"batch_size must be 'auto' or an integer >= 1, got {batch_size!r}")
        if facts.net_scale < 1 or facts.size_multiple < 1:
            raise ValueError(f"bad model facts: net_scale={facts.net_scale}, size_multiple={facts.size_multiple}")
        self.runner = runner
        self.name = facts.name
        self._net_scale = int(facts.net_scale)
        self._scale = facts.scale
        self._multiple = int(facts.size_multiple)
        self._post_resize = facts.post_resize
        self.tile_overlap = tile_overlap
        # Shared between threads, only ever lowered (after an out-of-memory error): guarded by _lock.
        self._lock = threading.Lock()
        self._tile = runner.auto_tile(tile_overlap) if tile == "auto" else int(tile)  # 0: no tiling
        # "auto" is a memory budget: an image whose pixels fit in one auto-size window is not
        # tiled at all (320x180 needs no 250x250 tiles), others get square tiles.
        self._auto_pixels = (self._tile + 2 * tile_overlap) ** 2 if tile == "auto" else 0
        self._batch_cap: int | None = None if batch_size == "auto" else int(batch_size)
        self._batch_auto = batch_size == "auto"

    @property
    def scale(self) -> float:
        """Output size / input size."""
        return self._scale

    @property
    def device(self) -> torch.device:
        return self.runner.device

    @property
    def tile(self) -> int:
        """Current largest tile side (0: no tiling); lowered after an out-of-memory error."""
        with self._lock:
            return self._tile

    def upscale(self, images: Tensor, *, progress: ProgressFn | None = None) -> Tensor:
        """(B, 3, H, W) float32 RGB [0, 1] CPU -> (B, 3, round(H*scale), round(W*scale)) float32
        in [0, 1] on the CPU. ``progress(done_tiles, total_tiles)`` is called at the start and
        after every batch of tiles (the total can grow after an out-of-memory split)."""
        _check_input(images)
        height, width = images.shape[-2:]
        padded = _pad_to_multiple(images, self._multiple)
        s = self._net_scale
        out = torch.empty(images.shape[0], 3, padded.shape[-2] * s, padded.shape[-1] * s)
        self._fill(padded, out, progress)
        out = out[:, :, : height * s, : width * s]
        if self._post_resize is not None:
            size = (round(height * self._scale), round(width * self._scale))
            out = F.interpolate(out, size=size, mode="bicubic", align_corners=False, antialias=False)
        return out.clamp_(0.0, 1.0) if out.is_contiguous() else out.clamp(0.0, 1.0).contiguous()

    def _fill(self, padded: Tensor, out: Tensor, progress: ProgressFn | None) -> None:
        """Run every tile of every image and paste the cores into ``out``."""
        size = Size(padded.shape[-2], padded.shape[-1])
        # Input pixels whose output is final; survives re-planning after an out-of-memory error.
        done = torch.zeros(padded.shape[0], size.h, size.w, dtype=torch.bool)
        finished = 0
        while True:
            tile, batch = self._limits(size)
            plan = plan_tiles(size, tile, self.tile_overlap, self._multiple)
            work = [
                _Work(i, t) for i in range(padded.shape[0]) for t in plan if not bool(done[(i, *t.core.slices())].all())
            ]
            total = finished + len(work)
            if progress is not None:
                progress(finished, total)
            try:
                for start in range(0, len(work), batch):
                    chunk = work[start : start + batch]
                    self._run_chunk(padded, out, chunk)
                    for item in chunk:
                        done[(item.image, *item.tile.core.slices())] = True
                    finished += len(chunk)
                    if progress is not None:
                        progress(finished, total)
                return
            except torch.OutOfMemoryError:
                used_tile = max(plan[0].core.h, plan[0].core.w)
                if not self._shrink(used_tile, batch):
                    raise
            # Out of the except block: the failed batch's tensors are released before retrying.

    def _limits(self, size: Size) -> tuple[int, int]:
        """(tile side, batch size) for the next plan."""
        with self._lock:
            tile, cap, auto_pixels = self._tile, self._batch_cap, self._auto_pixels
        if size.h * size.w <= auto_pixels:
            tile = 0
        batch = cap if cap is not None else 1
        if self._batch_auto:
            window = plan_tiles(size, tile, self.tile_overlap, self._multiple)[0].window.size
            auto = self.runner.auto_batch(window)
            batch = auto if cap is None else min(auto, cap)
        return tile, max(1, batch)

    def _shrink(self, used_tile: int, used_batch: int) -> bool:
        """After an out-of-memory error: fewer windows per batch, else smaller tiles.
        Returns False when nothing is left to shrink."""
        with self._lock:
            if used_batch > 1:
                self._batch_cap = used_batch // 2 if self._batch_cap is None else min(self._batch_cap, used_batch // 2)
                logger.warning("out of memory on %s: %d tiles per batch now", self.device, self._batch_cap)
                return True
            if used_tile > MIN_TILE:
                smaller = max(MIN_TILE, used_tile // 2)
                self._tile = smaller if self._tile == 0 else min(self._tile, smaller)
                self._auto_pixels = 0
                logger.warning("out of memory on %s: tile size %d now", self.device, self._tile)
                return True
            return False

    def _run_chunk(self, padded: Tensor, out: Tensor, chunk: Sequence[_Work]) -> None:
        windows = torch.stack([padded[(item.image, slice(None), *item.tile.window.slices())] for item in chunk])
        result = self.runner.run(windows)
        s = self._net_scale
        expected = (len(chunk), 3, windows.shape[-2] * s, windows.shape[-1] * s)
        if tuple(result.shape) != expected:
            raise RuntimeError(f"tile runner returned shape {tuple(result.shape)}, expected {expected}")
        if self.runner.reduced_precision:
            bad = ~torch.isfinite(result).flatten(1).all(dim=1)
            if bool(bad.any()):
                logger.warning("%d tile(s) overflowed in reduced precision; redone in fp32", int(bad.sum()))
                result[bad] = self.runner.run_fp32(windows[bad])
        for k, item in enumerate(chunk):
            core = item.tile.core
            inside = core.relative_to(item.tile.window).scaled(s)
            out[(item.image, slice(None), *core.scaled(s).slices())] = result[(k, slice(None), *inside.slices())]


def _check_input(images: Tensor) -> None:
    if not isinstance(images, Tensor):
        raise TypeError(f"images must be a torch.Tensor, got {type(images).__name__}")
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images must have shape (B, 3, H, W), got {tuple(images.shape)}")
    if images.dtype != torch.float32:
        raise ValueError(f"images must be float32 RGB in [0, 1], got {images.dtype}")
    if images.device.type != "cpu":
        raise ValueError(f"images must be on the CPU (the engine moves tiles itself), got {images.device}")
    if min(images.shape) == 0:
        raise ValueError(f"images must not be empty, got shape {tuple(images.shape)}")
    # One NaN would spread over its tile's receptive field (the output could not be in [0, 1]).
    not_finite = ~torch.isfinite(images)
    if bool(not_finite.any()):
        first = int(not_finite.flatten(1).any(dim=1).nonzero()[0])
        raise ValueError(
            f"images contain NaN or infinite values ({int(not_finite.sum())} of {images.numel()}, "
            f"first in image {first}); expected float32 RGB in [0, 1]"
        )


def _pad_to_multiple(images: Tensor, multiple: int) -> Tensor:
    """Pad bottom/right to a multiple; reflect like the official code, replicate when the image
    is too small to reflect."""
    height, width = images.shape[-2:]
    pad_h, pad_w = -height % multiple, -width % multiple
    if pad_h == 0 and pad_w == 0:
        return images
    mode = "reflect" if pad_h < height and pad_w < width else "replicate"
    return F.pad(images, (0, pad_w, 0, pad_h), mode=mode)


class Upscaler(TileEngine):
    """The engine over an ``SRModel``, with the backend chosen for the device (the public API).

    Args:
        model: the model (``soccersr.weights.load_model``); it is copied, never modified.
        engine: "auto" (see ``infer.backends.resolve_engine``), "torch", "openvino" or "onnxruntime".
        device: "auto" (CUDA if available, else CPU), "cpu", "cuda" or "cuda:N".
        precision: "auto" (see ``infer.devices.resolve_precision``), "fp32", "fp16" (CUDA only) or "bf16".
        tile, tile_overlap, batch_size: as ``TileEngine``.
    """

    def __init__(
        self,
        model: SRModel,
        *,
        engine: str = "auto",
        device: str | torch.device = "auto",
        precision: str = "auto",
        tile: int | str = "auto",
        tile_overlap: int = DEFAULT_OVERLAP,
        batch_size: int | str = "auto",
    ) -> None:
        from soccersr.infer.backends import create_runner  # here: backends imports this module

        runner = create_runner(model, engine=engine, device=device, precision=precision)
        super().__init__(runner, model, tile=tile, tile_overlap=tile_overlap, batch_size=batch_size)
