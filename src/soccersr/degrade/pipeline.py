"""The Real-ESRGAN second-order degradation: draw the parameters, then apply them.

``sample_params`` draws every random choice from one explicit CPU generator (cheap, no images
involved); ``degrade`` applies them to a batch on the batch's device and is deterministic: the
noise comes from seeds drawn into the parameters, so replaying the same parameters on the same
device gives the same LQ bit for bit.

Order (official ``RealESRGANModel.feed_data``), on the USM-sharpened GT:
  1. blur -> resize (one factor per batch) -> noise -> JPEG
  2. blur (with ``second.blur_prob``) -> resize relative to the LR size -> noise ->
     either [resize to LR + sinc, JPEG] or [JPEG, resize to LR + sinc] (even odds, per batch)
  3. clamp and round to 8-bit levels.
Differences from the official code, all in the direction of more per-sample diversity: the
Gaussian/Poisson choice and the stage-2 blur are drawn per sample (official: per batch), and
gray Gaussian noise has its own plane per sample (official: one plane for the batch).
"""

from __future__ import annotations

from dataclasses import dataclass, fields, is_dataclass, replace
from typing import Any, Literal, TypeVar

import numpy as np
import torch
from torch import Tensor

from soccersr.degrade.config import KERNEL_TYPES, DegradationConfig, StageConfig
from soccersr.degrade.jpeg import jpeg_compress
from soccersr.degrade.kernels import pulse_kernels, sample_final_sinc, sample_stage_kernels, uniform
from soccersr.degrade.ops import RESIZE_MODES, ResizeMode, add_noise, filter2d, quantize_8bit, resize
from soccersr.degrade.usm import usm_sharp

ResizeDirection = Literal["up", "down", "keep"]
RESIZE_DIRECTIONS: tuple[ResizeDirection, ...] = ("up", "down", "keep")
_SEED_BOUND = 2**62

_T = TypeVar("_T")


def _move(obj: _T, device: torch.device | str, non_blocking: bool) -> _T:
    """Copy a (nested) params dataclass with every tensor moved to ``device``."""
    changes: dict[str, Any] = {}
    for f in fields(obj):  # type: ignore[arg-type]
        value = getattr(obj, f.name)
        if isinstance(value, Tensor):
            changes[f.name] = value.pin_memory().to(device, non_blocking=True) if non_blocking else value.to(device)
        elif is_dataclass(value):
            changes[f.name] = _move(value, device, non_blocking)
    return replace(obj, **changes)  # type: ignore[type-var]


@dataclass(frozen=True)
class ResizeParams:
    """One resize for the whole batch."""

    direction: ResizeDirection
    scale: float
    """Factor (first order: of the current size; second order: of the LR target size)."""
    mode: ResizeMode


@dataclass(frozen=True)
class NoiseParams:
    """Per-sample noise; the noise itself is drawn in ``degrade`` from ``seed``."""

    gaussian: Tensor
    """(B,) bool: Gaussian noise, else Poisson."""
    sigma: Tensor
    """(B,) float32 Gaussian sigma on the 0-255 scale."""
    poisson_scale: Tensor
    """(B,) float32."""
    gray: Tensor
    """(B,) bool: one noise plane for the three channels."""
    seed: int


@dataclass(frozen=True)
class StageParams:
    """Everything drawn for one order."""

    kernel: Tensor
    """(B, K, K) float32 blur or sinc kernel; the identity pulse where ``blurred`` is False."""
    kernel_type: Tensor
    """(B,) int64 index into ``KERNEL_TYPES``."""
    kernel_size: Tensor
    """(B,) int64 odd support of the kernel."""
    blurred: Tensor
    """(B,) bool."""
    resize: ResizeParams
    noise: NoiseParams
    jpeg_quality: Tensor
    """(B,) float32."""


@dataclass(frozen=True)
class DegradationParams:
    """All random choices of one batch's degradation (CPU tensors after ``sample_params``)."""

    first: StageParams
    second: StageParams
    sinc_kernel: Tensor
    """(B, K, K) float32 final sinc; the identity pulse where ``final_sinc`` is False."""
    final_sinc: Tensor
    """(B,) bool."""
    final_mode: ResizeMode
    """Mode of the resize to the LR size."""
    jpeg_last: bool
    """True: [resize + sinc] then JPEG; False: JPEG then [resize + sinc]."""

    @property
    def batch_size(self) -> int:
        return int(self.sinc_kernel.shape[0])

    def to(self, device: torch.device | str, *, non_blocking: bool = False) -> DegradationParams:
        """A copy with every tensor on ``device``.

        ``non_blocking`` (CPU params to a GPU): pinned copies that do not wait for the GPU's queued
        work, so the CPU can prepare the next step while the GPU runs this one (a plain copy of
        pageable memory waits for it).
        """
        return _move(self, device, non_blocking)

    def summary(self) -> dict[str, Any]:
        """Plain-Python description for logs (lists are per sample)."""

        def stage(s: StageParams) -> dict[str, Any]:
            return {
                "kernel": [
                    KERNEL_TYPES[int(i)] if bool(b) else "none" for i, b in zip(s.kernel_type, s.blurred, strict=True)
                ],
                "kernel_size": s.kernel_size.tolist(),
                "resize": {"direction": s.resize.direction, "scale": s.resize.scale, "mode": s.resize.mode},
                "noise": ["gaussian" if bool(g) else "poisson" for g in s.noise.gaussian],
                "noise_gray": s.noise.gray.tolist(),
                "noise_sigma": [round(v, 3) for v in s.noise.sigma.tolist()],
                "poisson_scale": [round(v, 4) for v in s.noise.poisson_scale.tolist()],
                "jpeg_quality": [round(v, 2) for v in s.jpeg_quality.tolist()],
            }

        return {
            "first": stage(self.first),
            "second": stage(self.second),
            "final": {
                "sinc": self.final_sinc.tolist(),
                "mode": self.final_mode,
                "order": "resize+sinc, jpeg" if self.jpeg_last else "jpeg, resize+sinc",
            },
        }


def _sample_resize(stage: StageConfig, generator: torch.Generator) -> ResizeParams:
    probs = torch.tensor(stage.resize_prob, dtype=torch.float64)
    direction = RESIZE_DIRECTIONS[int(torch.multinomial(probs, 1, generator=generator))]
    u = float(torch.rand(1, generator=generator, dtype=torch.float64))
    low, high = stage.resize_range
    scale = {"up": 1 + u * (high - 1), "down": low + u * (1 - low), "keep": 1.0}[direction]
    mode = RESIZE_MODES[int(torch.randint(len(RESIZE_MODES), (1,), generator=generator))]
    return ResizeParams(direction=direction, scale=scale, mode=mode)


def _sample_stage(cfg: DegradationConfig, stage: StageConfig, batch: int, generator: torch.Generator) -> StageParams:
    kernels = sample_stage_kernels(stage, cfg.kernel_sizes, batch, size=cfg.blur_kernel_size, generator=generator)
    blurred = torch.rand(batch, generator=generator, dtype=torch.float64) < stage.blur_prob
    kernel = torch.where(blurred.view(-1, 1, 1), kernels.kernel, pulse_kernels(batch, size=cfg.blur_kernel_size))
    resize_params = _sample_resize(stage, generator)
    noise = NoiseParams(
        gaussian=torch.rand(batch, generator=generator, dtype=torch.float64) < stage.gaussian_noise_prob,
        sigma=uniform(generator, batch, *stage.noise_range).float(),
        poisson_scale=uniform(generator, batch, *stage.poisson_scale_range).float(),
        gray=torch.rand(batch, generator=generator, dtype=torch.float64) < stage.gray_noise_prob,
        seed=int(torch.randint(_SEED_BOUND, (1,), generator=generator)),
    )
    return StageParams(
        kernel=kernel,
        kernel_type=kernels.kind,
        kernel_size=kernels.kernel_size,
        blurred=blurred,
        resize=resize_params,
        noise=noise,
        jpeg_quality=uniform(generator, batch, *stage.jpeg_range).float(),
    )


def sample_params(cfg: DegradationConfig, batch_size: int, *, generator: torch.Generator) -> DegradationParams:
    """Draw one batch's degradation from ``generator`` (a CPU ``torch.Generator``) only.

    The same generator state and config give the same parameters on every machine.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    if generator.device.type != "cpu":
        raise ValueError(f"sample_params needs a CPU generator, got one on {generator.device}")
    first = _sample_stage(cfg, cfg.first, batch_size, generator)
    second = _sample_stage(cfg, cfg.second, batch_size, generator)
    sinc_kernel, final_sinc = sample_final_sinc(
        cfg.final_sinc_prob, cfg.kernel_sizes, batch_size, size=cfg.blur_kernel_size, generator=generator
    )
    jpeg_last = bool(torch.rand(1, generator=generator, dtype=torch.float64) < 0.5)
    final_mode = RESIZE_MODES[int(torch.randint(len(RESIZE_MODES), (1,), generator=generator))]
    return DegradationParams(
        first=first,
        second=second,
        sinc_kernel=sinc_kernel,
        final_sinc=final_sinc,
        final_mode=final_mode,
        jpeg_last=jpeg_last,
    )


def _noise(img: Tensor, noise: NoiseParams) -> Tensor:
    return add_noise(img, noise.gaussian, noise.sigma, noise.poisson_scale, noise.gray, seed=noise.seed)


def degrade(gt_usm: Tensor, params: DegradationParams, cfg: DegradationConfig) -> Tensor:
    """Apply the drawn degradation to a batch.

    Args:
        gt_usm: (B, 3, H, W) float RGB in [0, 1] (the USM-sharpened GT), on any device.
        params: from ``sample_params(cfg, B, ...)``; moved to gt_usm's device as needed.
        cfg: the config the params were drawn with (for the scale).

    Returns:
        (B, 3, H // scale, W // scale) float32 LQ in [0, 1] on gt_usm's device, every value k/255.
    """
    if gt_usm.ndim != 4 or gt_usm.shape[1] != 3:
        raise ValueError(f"degrade: expected (B, 3, H, W), got {tuple(gt_usm.shape)}")
    b, _, h, w = gt_usm.shape
    if params.batch_size != b:
        raise ValueError(f"degrade: params were drawn for a batch of {params.batch_size}, got {b} images")
    lr_h, lr_w = h // cfg.scale, w // cfg.scale
    if lr_h < 1 or lr_w < 1:
        raise ValueError(f"degrade: image {h}x{w} is smaller than the scale {cfg.scale}")
    p = params.to(gt_usm.device)
    x = gt_usm.to(torch.float32)

    # First order.
    x = filter2d(x, p.first.kernel)
    x = resize(x, p.first.resize.mode, scale_factor=p.first.resize.scale)
    x = _noise(x, p.first.noise)
    x = jpeg_compress(x.clamp(0, 1), p.first.jpeg_quality)

    # Second order.
    x = filter2d(x, p.second.kernel)
    s = p.second.resize.scale
    x = resize(x, p.second.resize.mode, size=(int(h / cfg.scale * s), int(w / cfg.scale * s)))
    x = _noise(x, p.second.noise)

    # Resize back + sinc, and JPEG, in either order; other orders give twisted lines (official note).
    if p.jpeg_last:
        x = filter2d(resize(x, p.final_mode, size=(lr_h, lr_w)), p.sinc_kernel)
        x = jpeg_compress(x.clamp(0, 1), p.second.jpeg_quality)
    else:
        x = jpeg_compress(x.clamp(0, 1), p.second.jpeg_quality)
        x = filter2d(resize(x, p.final_mode, size=(lr_h, lr_w)), p.sinc_kernel)
    return quantize_8bit(x)


def degrade_image(hr: np.ndarray, *, scale: int = 4, seed: int, cfg: DegradationConfig | None = None) -> np.ndarray:
    """Synthesise the LQ version of one HR image: USM sharpening, then the degradation (on the CPU).

    The HR is first cropped at the bottom and right to a multiple of ``scale``, so the LQ is
    ``(H // scale, W // scale, 3)``. Deterministic for a seed (and config).

    Args:
        hr: (H, W, 3) float32 RGB in [0, 1].
        scale: downscaling factor; must equal ``cfg.scale`` when a config is given.
        seed: seeds every random choice.
        cfg: the degradation (default: the official x4plus values with this scale).

    Returns:
        (H // scale, W // scale, 3) float32 RGB, values k/255.
    """
    if cfg is None:
        cfg = DegradationConfig(scale=scale)
    elif cfg.scale != scale:
        raise ValueError(f"degrade_image: scale {scale} does not match cfg.scale {cfg.scale}")
    if hr.ndim != 3 or hr.shape[2] != 3:
        raise ValueError(f"degrade_image: expected an (H, W, 3) image, got shape {hr.shape}")
    h, w = hr.shape[0] - hr.shape[0] % scale, hr.shape[1] - hr.shape[1] % scale
    if h == 0 or w == 0:
        raise ValueError(f"degrade_image: image {hr.shape[0]}x{hr.shape[1]} is smaller than the scale {scale}")
    x = torch.from_numpy(np.ascontiguousarray(hr[:h, :w], dtype=np.float32)).permute(2, 0, 1)[None]
    params = sample_params(cfg, 1, generator=torch.Generator().manual_seed(seed))
    lq = degrade(usm_sharp(x), params, cfg)
    return lq[0].permute(1, 2, 0).contiguous().numpy()
