"""Throughput of the Real-ESRGAN degradation, as the training step uses it.

Per batch (default 12 GT images of 400x400, the official dataset's pad/crop size):
  sample  = sample_params on the CPU (kernels included)
  apply   = params.to(device) + USM(gt) + degrade + paired crop to 256 + pool exchange + USM(gt) again
and, with --breakdown, the single ops on the same data. Times are medians over --iters runs after
--warmup runs, in ms per batch, with a device sync around each timed region.

    python bench/bench_degrade.py                       # CPU, and CUDA when present
    python bench/bench_degrade.py --device cuda --breakdown
    python bench/bench_degrade.py --images path/to/hr   # real images instead of synthetic ones
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from soccersr.degrade import (
    DegradationConfig,
    TrainingPairPool,
    degrade,
    jpeg_compress,
    paired_random_crop,
    sample_params,
    usm_sharp,
)
from soccersr.degrade.ops import add_noise, filter2d, resize

GT_PAD = 400  # official RealESRGANDataset pads/crops every GT to 400x400
GT_SIZE = 256


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time(fn: Callable[[], object], device: torch.device, iters: int, warmup: int) -> float:
    for _ in range(warmup):
        fn()
    _sync(device)
    samples = []
    for _ in range(iters):
        start = time.perf_counter()
        fn()
        _sync(device)
        samples.append((time.perf_counter() - start) * 1e3)
    return statistics.median(samples)


def _gt_batch(batch: int, images: Path | None, rng: np.random.Generator) -> torch.Tensor:
    """(B, 3, 400, 400): real images padded (reflect 101) / randomly cropped to 400, or smooth noise."""
    if images is None:
        low = torch.from_numpy(rng.random((batch, 3, 50, 50), dtype=np.float32))
        return F.interpolate(low, size=(GT_PAD, GT_PAD), mode="bicubic").clamp(0, 1)
    import cv2

    files = sorted(p for p in images.iterdir() if p.suffix.lower() in {".png", ".jpg", ".jpeg"})
    out = []
    for i in range(batch):
        img = cv2.imread(str(files[i % len(files)]), cv2.IMREAD_COLOR)[..., ::-1].astype(np.float32) / 255
        h, w = img.shape[:2]
        if h < GT_PAD or w < GT_PAD:
            img = cv2.copyMakeBorder(img, 0, max(0, GT_PAD - h), 0, max(0, GT_PAD - w), cv2.BORDER_REFLECT_101)
        top = rng.integers(0, img.shape[0] - GT_PAD + 1)
        left = rng.integers(0, img.shape[1] - GT_PAD + 1)
        crop = np.ascontiguousarray(img[top : top + GT_PAD, left : left + GT_PAD])
        out.append(torch.from_numpy(crop).permute(2, 0, 1))
    return torch.stack(out)


def bench_device(device: torch.device, args: argparse.Namespace) -> None:
    cfg = DegradationConfig()
    gen = torch.Generator().manual_seed(0)
    gt = _gt_batch(args.batch, args.images, np.random.default_rng(0)).to(device)
    pool = TrainingPairPool(180, seed=0)

    sample_ms = _time(lambda: sample_params(cfg, args.batch, generator=gen), device, args.iters, args.warmup)
    params = sample_params(cfg, args.batch, generator=gen)

    def step() -> None:
        p = params.to(device)
        gt_usm = usm_sharp(gt)
        lq = degrade(gt_usm, p, cfg)
        (gt_c,), lq_c = paired_random_crop((gt,), lq, GT_SIZE, cfg.scale, generator=gen)
        lq_c, gt_c = pool.exchange(lq_c.contiguous(), gt_c.contiguous())
        usm_sharp(gt_c)

    apply_ms = _time(step, device, args.iters, args.warmup)
    usm_ms = _time(lambda: usm_sharp(gt), device, args.iters, args.warmup)
    degrade_ms = _time(lambda: degrade(gt, params.to(device), cfg), device, args.iters, args.warmup)
    print(
        f"{device.type:>4} batch {args.batch} GT {GT_PAD}x{GT_PAD}: sample {sample_ms:7.2f} ms | "
        f"apply {apply_ms:7.2f} ms (usm {usm_ms:.2f}, degrade {degrade_ms:.2f}, rest: crop/pool/usm on 256) | "
        f"total {sample_ms + apply_ms:7.2f} ms"
    )
    if not args.breakdown:
        return
    p = params.to(device)
    ops: dict[str, Callable[[], object]] = {
        "blur 21x21 per sample (400)": lambda: filter2d(gt, p.first.kernel),
        "resize bicubic x1.3 (400)": lambda: resize(gt, "bicubic", scale_factor=1.3),
        "noise gauss+poisson (400)": lambda: add_noise(
            gt, p.first.noise.gaussian, p.first.noise.sigma, p.first.noise.poisson_scale, p.first.noise.gray, seed=1
        ),
        "jpeg ours (400)": lambda: jpeg_compress(gt, p.first.jpeg_quality),
    }
    try:
        from kornia.enhance import jpeg_codec_differentiable

        ops["jpeg kornia (400)"] = lambda: jpeg_codec_differentiable(gt, p.first.jpeg_quality)
    except ImportError:
        pass
    for name, fn in ops.items():
        print(f"     {name:<30} {_time(fn, device, args.iters, args.warmup):8.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", nargs="*", default=None, help="devices (default: cpu, plus cuda when present)")
    parser.add_argument("--batch", type=int, default=12)
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--images", type=Path, default=None, help="folder of HR images (default: synthetic)")
    parser.add_argument("--breakdown", action="store_true", help="also time the single ops")
    args = parser.parse_args()
    devices = args.device or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
    for name in devices:
        device = torch.device(name)
        if device.type == "cuda":
            print(f"cuda: {torch.cuda.get_device_name(device)}")
        with torch.no_grad():
            bench_device(device, args)


if __name__ == "__main__":
    main()
