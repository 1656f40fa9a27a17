"""Training throughput: the full Real-ESRGAN step (degradation + G + D + VGG perceptual) per iteration.

Defaults are the official fine-tune shapes: batch 12 of 400x400 HR crops, GT patch 256, the
23-block x4plus RRDBNet, the official UNetDiscriminatorSN and VGG19 up to conv5_4 (random
weights: speed does not depend on them). Each mode reports ms per full iteration (one sync at
the end of the timed run, so CPU/GPU overlap counts as in training), ms of the degradation part
alone (synthesize_batch: USM, degradation, crop, pool) and its share, and the peak GPU memory.

    python bench/bench_train.py --device cuda                       # eager fp32 / bf16+CL / compiled
    python bench/bench_train.py --device cuda --modes bf16-cl --steps 50
    python bench/bench_train.py --tiny                              # CPU smoke run (tiny nets)
    python bench/bench_train.py --device cpu --batch 4 --crop 400 --gt-size 128 --queue 40 --vgg vgg16 \
        --modes fp32,bf16-cl --steps 3 --warmup 1                   # the CPU recipe's step

Modes: fp32 (eager, NCHW, TF32 convs), bf16-cl (bf16 autocast + channels_last, what training uses
on CUDA), compile-bf16-cl (plus torch.compile of G, D and VGG), compile-g-bf16-cl (G only),
bf16-cl-no-percep (without the VGG loss), g-only-fp32 / g-only-bf16-cl (the Real-ESRNet L1 step),
fp32-cl / g-only-fp32-cl (fp32 in channels_last: what a CPU without native bf16 could use).
--profile FILE prints device-busy vs wall time per step and the top ops.

Measured on one H200 (torch 2.11, three machines, ms per iteration; degradation 12-16 ms of it):
g-only-fp32 158, g-only-bf16-cl 106, fp32 227, bf16-cl 145 / 162 / 163, bf16-cl-no-percep 153,
compile-bf16-cl 166 (175 s to compile), compile-g-bf16-cl 193. The bf16-cl step keeps the GPU busy
only 98 ms of its ~145-160 ms: it is bound by eager kernel-launch overhead (about 7,000 launches per
step), which inductor's generated wrapper does not reduce for these conv nets.

On a 2-core AMD EPYC with AVX2 and no AVX-512 (torch 2.13.0, 2 threads; the CPU recipe's line above,
with --crop 256, 3 timed steps; ms per iteration), 2026-12-03: g-only-fp32 4471, g-only-fp32-cl 4053,
fp32 9150, fp32-cl 11059. channels_last helps the G-only step by 9% and slows the full step by 21%,
so training keeps NCHW in fp32 (``channels_last: auto`` turns it on with bf16 only).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from typing import TypeVar

import torch
import torch.nn.functional as F

from soccersr.archs import RRDBNet, UNetDiscriminatorSN
from soccersr.degrade import DegradationConfig, TrainingPairPool
from soccersr.train.config import OFFICIAL_LAYER_WEIGHTS
from soccersr.train.ema import make_ema
from soccersr.train.losses import PerceptualLoss
from soccersr.train.step import Networks, StepOptions, synthesize_batch, train_step
from soccersr.train.vgg import VGG16_LAYER_WEIGHTS, VGGFeatures

MODES = (
    "g-only-fp32",
    "g-only-fp32-cl",
    "fp32",
    "fp32-cl",
    "bf16-cl",
    "compile-bf16-cl",
    "g-only-bf16-cl",
    "bf16-cl-no-percep",
    "compile-g-bf16-cl",
)
T = TypeVar("T")  # what a timed step returns


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _hr_batches(n: int, batch: int, size: int, device: torch.device) -> list[torch.Tensor]:
    """Smooth synthetic HR crops (upsampled noise): content does not change the cost."""
    g = torch.Generator().manual_seed(0)
    out = []
    for _ in range(n):
        low = torch.rand(batch, 3, size // 8, size // 8, generator=g)
        out.append(F.interpolate(low, size=(size, size), mode="bicubic", align_corners=False).clamp(0, 1).to(device))
    return out


def _networks(mode: str, args: argparse.Namespace, device: torch.device) -> Networks:
    """G, D (GAN modes), the EMA of G and the perceptual loss (unless no-percep), laid out and compiled per mode."""
    gan = not mode.startswith("g-only")
    if args.tiny:
        g = RRDBNet(num_feat=8, num_block=1, num_grow_ch=4)
        d = UNetDiscriminatorSN(num_feat=8) if gan else None
    else:
        g = RRDBNet(num_feat=64, num_block=23, num_grow_ch=32)
        d = UNetDiscriminatorSN(num_feat=64) if gan else None
    perceptual = _perceptual_loss(args.vgg) if gan and "no-percep" not in mode else None
    g_ema = make_ema(g)
    fmt = torch.channels_last if "-cl" in mode else torch.contiguous_format
    for m in (g, d, g_ema, perceptual):
        if m is not None:
            m.to(device=device, memory_format=fmt)
    if mode.startswith("compile"):
        _compile(mode, g, d, perceptual)
    return Networks.plain(g, d=d, g_ema=g_ema, perceptual=perceptual)


def _perceptual_loss(vgg_type: str) -> PerceptualLoss:
    layers = OFFICIAL_LAYER_WEIGHTS if vgg_type == "vgg19" else VGG16_LAYER_WEIGHTS
    vgg = VGGFeatures(tuple(layers), vgg_type=vgg_type)
    vgg.init_random()
    return PerceptualLoss(vgg, layers, 1.0)


def _compile(mode: str, g: torch.nn.Module, d: torch.nn.Module | None, perceptual: PerceptualLoss | None) -> None:
    g.compile()
    if mode.startswith("compile-g-"):  # G only
        return
    if d is not None:
        d.compile()
    if perceptual is not None:
        perceptual.vgg.compile()


def _optimizers(nets: Networks, device: torch.device) -> tuple[torch.optim.Adam, torch.optim.Adam | None]:
    fused = device.type == "cuda"
    opt_g = torch.optim.Adam(nets.g.parameters(), lr=1e-4, betas=(0.9, 0.99), fused=fused)
    if nets.d is None:
        return opt_g, None
    return opt_g, torch.optim.Adam(nets.d.parameters(), lr=1e-4, betas=(0.9, 0.99), fused=fused)


def _step_options(mode: str, args: argparse.Namespace) -> StepOptions:
    gan = not mode.startswith("g-only")
    return StepOptions(
        degradation=DegradationConfig(),
        gt_size=args.gt_size,
        scale=4,
        gan=gan,
        sharpen_gt_first=not gan,
        pixel_weight=1.0,
        amp_dtype=torch.bfloat16 if "bf16" in mode else None,
        channels_last="-cl" in mode,
    )


def _timed(device: torch.device, n: int, step: Callable[[int], T]) -> tuple[float, T | None]:
    """Seconds for ``step(0) .. step(n - 1)`` with one sync at the end, and the last step's result."""
    result = None
    t0 = time.perf_counter()
    for i in range(n):
        result = step(i)
    _sync(device)
    return time.perf_counter() - t0, result


def run_mode(mode: str, args: argparse.Namespace, device: torch.device) -> dict[str, float | str]:
    torch.manual_seed(0)
    nets = _networks(mode, args, device)
    opt_g, opt_d = _optimizers(nets, device)
    opts = _step_options(mode, args)
    pool = TrainingPairPool(args.queue, seed=0)
    generator = torch.Generator().manual_seed(0)
    hr = _hr_batches(4, args.batch, args.crop, device)

    def degrade(i: int) -> None:
        synthesize_batch(hr[i % len(hr)], opts=opts, generator=generator, pool=pool)

    def train(iteration: int, batch_index: int) -> dict[str, torch.Tensor]:
        return train_step(
            hr[batch_index % len(hr)],
            nets=nets,
            opt_g=opt_g,
            opt_d=opt_d,
            pool=pool,
            generator=generator,
            opts=opts,
            iteration=iteration,
        )

    # Fill the pool first: the steady state swaps with stored pairs (official queue 180 = 15 batches).
    fill_s, _ = _timed(device, args.queue // args.batch, degrade)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    # Warm-up includes torch.compile's compilation; iterations count from 1 across warm-up and timed steps.
    warmup_s, _ = _timed(device, args.warmup, lambda i: train(1 + i, 1 + i))
    first = args.warmup + 1
    steps_s, losses = _timed(device, args.steps, lambda i: train(first + i, first + i))
    step_ms = steps_s / args.steps * 1000
    degrade_s, _ = _timed(device, args.steps, degrade)
    degrade_ms = degrade_s / args.steps * 1000

    finite = all(torch.isfinite(v).item() for v in losses.values())
    if args.profile and mode == args.profile_mode:
        after = first + args.steps
        _profile(args, device, lambda i: train(after + i, i))
    result: dict[str, float | str] = {
        "mode": mode,
        "ms_per_iter": round(step_ms, 2),
        "iters_per_s": round(1000 / step_ms, 3),
        "degrade_ms": round(degrade_ms, 2),
        "degrade_share": round(degrade_ms / step_ms, 3),
        "warmup_s": round(warmup_s, 1),
        "pool_fill_s": round(fill_s, 2),
        "losses_finite": str(finite),
    }
    if device.type == "cuda":
        result["peak_mem_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
    return result


def _profile(args: argparse.Namespace, device: torch.device, step: object) -> None:
    """Kernel time per step vs wall time (is the step GPU-bound?), and the top ops, into --profile files."""
    from torch.profiler import ProfilerActivity, profile

    n = 5
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    _sync(device)
    t0 = time.perf_counter()
    with profile(activities=activities) as prof:
        for i in range(n):
            step(i)  # type: ignore[operator]
        _sync(device)
    wall_ms = (time.perf_counter() - t0) / n * 1000
    averages = prof.key_averages()

    def device_self(e: object) -> float:
        return float(getattr(e, "self_device_time_total", getattr(e, "self_cuda_time_total", 0.0)))

    from torch.autograd import DeviceType

    # Kernel rows carry the device time; op rows (aten::*) attribute it to the op that launched it.
    kernels = [e for e in averages if getattr(e, "device_type", None) == DeviceType.CUDA]
    ops = [e for e in averages if getattr(e, "device_type", None) != DeviceType.CUDA]
    kernel_ms = sum(device_self(e) for e in kernels) / n / 1000
    sync_ms = sum(e.self_cpu_time_total for e in averages if "Synchronize" in e.key) / n / 1000
    print(
        f"# profile {args.profile_mode}: wall {wall_ms:.1f} ms/step (profiled), device busy {kernel_ms:.1f} ms/step, "
        f"host waiting in cuda*Synchronize {sync_ms:.1f} ms/step",
        flush=True,
    )
    sort_device = "self_device_time_total" if hasattr(averages[0], "self_device_time_total") else "self_cuda_time_total"
    with open(args.profile, "w") as f:
        f.write(averages.table(sort_by=sort_device, row_limit=40, max_name_column_width=60))
        f.write("\n\n")
        f.write(averages.table(sort_by="self_cpu_time_total", row_limit=25, max_name_column_width=60))
    top = sorted(ops, key=device_self, reverse=True)[:14]
    for e in top:
        print(f"#   {device_self(e) / n / 1000:7.2f} ms  {e.count // n:5d}x  {e.key[:90]}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--tiny", action="store_true", help="tiny nets and images (CPU smoke run)")
    parser.add_argument(
        "--modes", default="g-only-fp32,fp32,bf16-cl,compile-bf16-cl", help=f"comma-separated, from {','.join(MODES)}"
    )
    parser.add_argument("--batch", type=int, default=None, help="default 12 (tiny: 2)")
    parser.add_argument("--steps", type=int, default=None, help="timed iterations (default 20, tiny: 3)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed iterations first (default 5, tiny: 1)")
    parser.add_argument("--crop", type=int, default=None, help="HR crop side (default 400, tiny: 64)")
    parser.add_argument("--gt-size", type=int, default=None, help="GT patch side (default 256, tiny: 32)")
    parser.add_argument("--queue", type=int, default=None, help="pair pool size (default 180, tiny: 4)")
    parser.add_argument(
        "--vgg", choices=("vgg19", "vgg16"), default="vgg19", help="perceptual backbone (default vgg19)"
    )
    parser.add_argument("--time-budget", type=float, default=480.0, help="skip modes once this many seconds passed")
    parser.add_argument("--out", default=None, help="also write the results as JSON here")
    parser.add_argument("--profile", default=None, metavar="FILE", help="profile 5 steps of --profile-mode into FILE")
    parser.add_argument("--profile-mode", default="bf16-cl")
    args = parser.parse_args()
    tiny = args.tiny
    args.batch = args.batch or (2 if tiny else 12)
    args.steps = args.steps or (3 if tiny else 20)
    args.warmup = args.warmup or (1 if tiny else 5)
    args.crop = args.crop or (64 if tiny else 400)
    args.gt_size = args.gt_size or (32 if tiny else 256)
    args.queue = args.queue or (4 if tiny else 180)
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        print(f"# {torch.cuda.get_device_name(device)}, torch {torch.__version__}", flush=True)
    else:
        print(f"# CPU, torch {torch.__version__}, {torch.get_num_threads()} threads", flush=True)
    modes = [m for m in args.modes.split(",") if m]
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        parser.error(f"unknown mode {unknown[0]!r}; expected {', '.join(MODES)}")
    print(
        f"# batch {args.batch}, HR crop {args.crop}, GT {args.gt_size}, {args.vgg}, {args.steps} timed steps after "
        f"{args.warmup}",
        flush=True,
    )
    start = time.perf_counter()
    results = []
    for mode in modes:
        if time.perf_counter() - start > args.time_budget:
            print(f"{mode}: skipped (time budget)", flush=True)
            continue
        try:
            result = run_mode(mode, args, device)
        except Exception as e:  # noqa: BLE001 - report and go on with the other modes
            result = {"mode": mode, "error": f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"}
        results.append(result)
        print(json.dumps(result), flush=True)
        if device.type == "cuda":
            torch.cuda.empty_cache()
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=1)
    return 0 if all("error" not in r for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
