"""`soccersr upscale --cluster ray` on one machine: throughput with 1 and 2 workers, and what the
Ray path costs per file against the local engine.

    python bench/bench_ray.py --models soccer-x4plus --files 12          # a real model: throughput
    python bench/bench_ray.py --models animevideov3 --files 40           # a fast one: the overhead shows
    python bench/bench_ray.py --json results/bench_ray.json

Every configuration upscales the same ``--files`` photos (the bundled samples shrunk to ``--size``
with INTER_AREA, in turn) with the same model, in this process, into a fresh folder:

- **local**: ``run_batch`` with the engine ``soccersr upscale`` builds, with PyTorch's default
  threads (all cores) and with one thread, after a one-file warm-up, before Ray is started;
  time per file = batch time / files;
- **ray WxC**: ``run_on_ray`` with W workers of C CPUs each, on one local Ray (``num_cpus`` = the
  machine's cores) started once (its start time is reported apart). Each result's arrival is
  timed on the driver: *first result* is the run's fixed cost (Ray Data planning, actors that
  import PyTorch and load the model, the first file); the time per file is the steady state,
  (last arrival - first arrival) / (files - 1); throughput = 60 / time per file. *worker s/file*
  is the median time a worker spent in ``upscale_job`` on a file (the manifest's seconds).

The per-file overhead of the Ray path is its time per file minus the local engine's with as many
threads per file (1 worker of 1 CPU against the local engine on one thread; 1 worker holding all
cores against the default), and, within the Ray path, its time per file minus the worker's own
(scheduling, the rows there and back, the driver): time per file - worker time per file / workers.
Numbers measured on the project machine: bench/README.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import cv2
import ray
import torch

from soccersr.cluster.ray_job import ClusterOptions, run_on_ray
from soccersr.hardware import cpu_name
from soccersr.infer.backends import open_upscaler
from soccersr.infer.batch import BatchOptions, discover, run_batch
from soccersr.options import EngineOptions

REPO = Path(__file__).resolve().parents[1]


def make_photos(folder: Path, count: int, size: tuple[int, int]) -> Path:
    """``count`` photos of ``size`` (width, height) in ``folder``: the bundled samples, in turn."""
    samples = sorted(p for p in (REPO / "samples").iterdir() if p.suffix in (".jpg", ".png"))
    folder.mkdir(parents=True)
    for i in range(count):
        image = cv2.resize(cv2.imread(str(samples[i % len(samples)])), size, interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(folder / f"photo_{i:03d}.png"), image)
    return folder


def local_row(model: str, photos: Path, warmup: Path, out: Path, threads: int) -> dict:
    torch.set_num_threads(threads)
    upscaler = open_upscaler(model, EngineOptions(device="cpu"))
    options = BatchOptions(output_dir=out, suffix="x4", progress=False)
    run_batch(discover([warmup])[0], upscaler, dataclasses.replace(options, output_dir=out / "warmup"))
    jobs, _ = discover([photos])
    start = time.perf_counter()
    summary = run_batch(jobs, upscaler, options)
    seconds = time.perf_counter() - start
    assert summary.done == len(jobs) and summary.failed == 0, summary.line()
    config = f"{model} local {threads} thread{'s' if threads > 1 else ''}"
    return report(config, seconds, seconds / len(jobs), None, seconds / len(jobs))


def ray_row(model: str, photos: Path, out: Path, workers: int, cpus: float) -> dict:
    arrivals: list[tuple[float, float]] = []  # (arrival time, worker seconds)
    jobs, _ = discover([photos])
    options = BatchOptions(output_dir=out, suffix="x4", progress=False)
    cluster = ClusterOptions(workers=workers, cpus_per_worker=cpus)
    start = time.perf_counter()
    summary = run_on_ray(
        jobs,
        model,
        EngineOptions(device="cpu"),
        options,
        cluster,
        on_outcome=lambda outcome: arrivals.append((time.perf_counter(), outcome.seconds)),
    )
    seconds = time.perf_counter() - start
    assert summary.done == len(jobs) and summary.failed == 0, summary.line()
    per_file = (arrivals[-1][0] - arrivals[0][0]) / (len(arrivals) - 1)
    worker = statistics.median(s for _, s in arrivals)
    return report(f"{model} ray {workers}x{cpus:g}cpu", seconds, per_file, arrivals[0][0] - start, worker)


def report(config: str, seconds: float, per_file: float, first: float | None, worker: float) -> dict:
    row = {
        "config": config,
        "seconds": round(seconds, 2),
        "first_result_seconds": None if first is None else round(first, 2),
        "seconds_per_file": round(per_file, 4),
        "files_per_minute": round(60 / per_file, 1),
        "worker_seconds_per_file": round(worker, 4),
        "load_average": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(row), flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["animevideov3", "soccer-x4plus"])
    parser.add_argument("--size", default="160x120", help="photo size WxH (default 160x120)")
    parser.add_argument("--files", type=int, default=12, help="photos per batch (default 12)")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.lower().split("x"))
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")

    cores = os.cpu_count() or 1
    default_threads = torch.get_num_threads()
    results = {
        "machine": {"cpu": cpu_name(), "cores": cores, "python": platform.python_version()},
        "size": args.size,
        "files": args.files,
        "models": {model: {"rows": []} for model in args.models},
    }
    workdir = Path(tempfile.mkdtemp(prefix="bench_ray_"))
    try:
        photos = make_photos(workdir / "photos", args.files, size)
        warmup = make_photos(workdir / "warmup", 1, size)
        load = os.getloadavg()[0]
        print(f"--- local engine, {args.files} photos of {args.size} (load average {load:.1f})", flush=True)
        for model in args.models:
            for threads in sorted({default_threads, 1}, reverse=True):
                out = workdir / f"{model}-local-{threads}"
                results["models"][model]["rows"].append(local_row(model, photos, warmup, out, threads))
        torch.set_num_threads(default_threads)

        start = time.perf_counter()
        ray.init(num_cpus=cores, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
        results["ray_start_seconds"] = round(time.perf_counter() - start, 2)
        print(f"--- local Ray with {cores} CPUs, started in {results['ray_start_seconds']} s", flush=True)
        pools = [(1, cores), (1, 1), (2, 1)] if cores >= 2 else [(1, 1)]
        for model in args.models:
            rows = results["models"][model]["rows"]
            for workers, cpus in pools:
                rows.append(ray_row(model, photos, workdir / f"{model}-ray-{workers}x{cpus}", workers, cpus))
            by_config = {row["config"].split(" ", 1)[1]: row for row in rows}
            pairs = [(f"ray 1x{cores}cpu", f"local {default_threads} threads"), ("ray 1x1cpu", "local 1 thread")]
            overhead = {
                f"{ray_config} - {local_config}": round(
                    by_config[ray_config]["seconds_per_file"] - by_config[local_config]["seconds_per_file"], 4
                )
                for ray_config, local_config in pairs
                if ray_config in by_config and local_config in by_config
            }
            for (workers, _), row in zip(pools, rows[-len(pools) :], strict=True):
                # W workers finish W files per worker time: the steady state is worker time / W.
                overhead[f"{row['config'].split(' ', 1)[1]} - its workers"] = round(
                    row["seconds_per_file"] - row["worker_seconds_per_file"] / workers, 4
                )
            print(f"{model}: Ray per-file overhead (s): {json.dumps(overhead)}", flush=True)
            results["models"][model]["ray_overhead_seconds_per_file"] = overhead
    finally:
        ray.shutdown()
        shutil.rmtree(workdir, ignore_errors=True)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
