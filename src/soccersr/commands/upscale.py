"""`soccersr upscale`: upscale photos (files, folders, globs) with a super-resolution model.

Exit codes: 0 when every image was upscaled or skipped (an existing output is skipped, with a
note, unless --overwrite), 1 when any input failed (each failure is reported once, on one line
naming the file and the reason, and the batch goes on), 2 for usage errors (bad options, an
unknown model, an unusable device), 130 on Ctrl-C.

``--cluster ray`` runs the same batch on Ray workers (``soccersr.cluster``): same listing, rules,
summary and exit codes, plus a manifest in the output folder; a Ray run that fails as a whole
(workers that cannot start, a cluster that goes away) is one error line and exit code 1.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from soccersr.commands.args import (
    add_engine_arguments,
    auto_or_int,
    engine_options,
    int_in,
    non_negative_float,
    pixel_count,
    positive,
)
from soccersr.errors import UsageError
from soccersr.options import (
    DEFAULT_MAX_PIXELS,
    DEFAULT_TILE_OVERLAP,
    OUTPUT_FORMATS,
    EngineOptions,
    normalize_format,
)

logger = logging.getLogger(__name__)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "upscale",
        help="upscale photos (files, folders, globs) with a super-resolution model",
        description="Upscale photos with a Real-ESRGAN model. Inputs are files, folders or globs; "
        "outputs are written to OUTDIR as <name>_<suffix>.<ext>, never replacing existing files unless --overwrite.",
    )
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="image file, folder or glob (quote globs)")
    parser.add_argument(
        "-o", "--output", required=True, type=Path, metavar="OUTDIR", help="output folder (created if needed)"
    )
    parser.add_argument(
        "-r", "--recursive", action="store_true", help="descend into subfolders, keeping them in OUTDIR"
    )
    parser.add_argument(
        "-m",
        "--model",
        default=None,
        help="built-in model name or weights file (default: soccer-x4plus; see `soccersr models`)",
    )
    parser.add_argument(
        "--suffix", default=None, help="added to output names as NAME_SUFFIX (default: the scale, e.g. x4; '' for none)"
    )
    parser.add_argument(
        "--format",
        default="auto",
        type=normalize_format,
        choices=OUTPUT_FORMATS,
        help="output format; auto keeps the input's (images with alpha become PNG unless webp)",
    )
    parser.add_argument("--quality", type=int_in(1, 100), default=95, help="JPEG/WebP quality 1..100 (default 95)")
    parser.add_argument(
        "-s",
        "--outscale",
        type=positive(float),
        default=None,
        help="final scale (default: the model's); other values resize the model output with Lanczos",
    )
    add_engine_arguments(parser)
    parser.add_argument(
        "--tile-overlap",
        type=int_in(0, 1 << 16),
        default=None,
        help="overlap between tiles in input pixels (default: the engine's)",
    )
    parser.add_argument(
        "--alpha",
        default="model",
        choices=("model", "resize"),
        help="upscale transparency with the model (default) or a Lanczos resize",
    )
    existing = parser.add_mutually_exclusive_group()
    existing.add_argument("--overwrite", action="store_true", help="replace existing outputs (else they are skipped)")
    existing.add_argument(
        "--skip-existing",
        action="store_true",
        help="skip images whose output exists quietly, without a note each (resume a batch)",
    )
    parser.add_argument(
        "--max-pixels",
        type=pixel_count,
        default=DEFAULT_MAX_PIXELS,
        help="refuse inputs above this many pixels, e.g. 40M (default); 0 for no limit",
    )
    parser.add_argument(
        "--batch-size", type=auto_or_int(1), default="auto", help="tiles per forward pass, or auto (default)"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    cluster = parser.add_argument_group(
        "many machines",
        "Run the batch on Ray (pip install 'soccersr[ray]'). Workers read, upscale and write each file "
        "themselves: inputs and OUTDIR must be the same paths on every machine (a shared filesystem). "
        "OUTDIR gets a manifest, soccersr-manifest.csv, that reruns use to skip finished work.",
    )
    cluster.add_argument("--cluster", choices=("ray",), default=None, help="run on Ray workers")
    cluster.add_argument(
        "--ray-address",
        default=None,
        metavar="ADDRESS",
        help="join this cluster (auto, HOST:6379, ray://HOST:10001); default: start a local Ray for the run",
    )
    cluster.add_argument(
        "--workers",
        type=int_in(1, 1 << 20),
        default=None,
        help="workers, each with its own engine (default: as many as the cluster holds now)",
    )
    cluster.add_argument(
        "--gpus-per-worker", type=non_negative_float, default=0.0, metavar="G", help="GPUs of each worker (default 0)"
    )
    cluster.add_argument(
        "--cpus-per-worker",
        type=positive(float),
        default=None,
        metavar="C",
        help="CPUs of each worker, also its network threads (default 1)",
    )
    parser.set_defaults(func=run)


def _error(message: str) -> int:
    print(f"soccersr upscale: error: {message}", file=sys.stderr)
    return 2


def _cluster_options(args: argparse.Namespace):  # -> ClusterOptions | None
    """The cluster options, or None for a local run; they mean nothing without --cluster."""
    if args.cluster is None:
        given = [
            flag
            for flag, value, default in (
                ("--ray-address", args.ray_address, None),
                ("--workers", args.workers, None),
                ("--gpus-per-worker", args.gpus_per_worker, 0.0),
                ("--cpus-per-worker", args.cpus_per_worker, None),
            )
            if value != default
        ]
        if given:
            raise UsageError(f"{given[0]} needs --cluster ray")
        return None
    from soccersr.cluster.ray_job import ClusterOptions
    from soccersr.commands.extras import require

    require("--cluster ray", "ray", "ray.data")  # before anything is listed or loaded: fail fast
    return ClusterOptions(
        address=args.ray_address,
        workers=args.workers,
        gpus_per_worker=args.gpus_per_worker,
        cpus_per_worker=1.0 if args.cpus_per_worker is None else args.cpus_per_worker,
    )


def run(args: argparse.Namespace) -> int:
    from tqdm.contrib.logging import logging_redirect_tqdm

    from soccersr.errors import SoccersrError
    from soccersr.infer.backends import open_upscaler
    from soccersr.infer.batch import BatchInterrupted, BatchOptions, discover, run_batch
    from soccersr.weights import WeightsError
    from soccersr.weights.zoo import DEFAULT_MODEL

    cluster = _cluster_options(args)
    output_dir: Path = args.output
    if output_dir.exists() and not output_dir.is_dir():
        return _error(f"{output_dir}: the output folder is a file")
    jobs, failures = discover(args.inputs, recursive=args.recursive, exclude=output_dir)
    if not jobs:
        for failure in failures:
            logger.error("%s", failure.message)
        print("nothing to upscale")
        return 1

    model_arg = args.model or DEFAULT_MODEL
    try:
        overlap = DEFAULT_TILE_OVERLAP if args.tile_overlap is None else args.tile_overlap
        model_options = engine_options(args, tile_overlap=overlap, batch_size=args.batch_size)
        # On a cluster the driver loads the model only to check it and learn its scale: on its CPU.
        upscaler = open_upscaler(model_arg, model_options if cluster is None else EngineOptions(engine=args.engine))
    except (WeightsError, SoccersrError) as error:  # SoccersrError: e.g. --engine openvino without openvino
        return _error(str(error))
    except (ValueError, RuntimeError) as error:  # OnnxModelError is a ValueError
        return _error(str(error).strip().splitlines()[0])
    scale = args.outscale or upscaler.scale
    suffix = f"x{scale:g}" if args.suffix is None else args.suffix
    try:
        options = BatchOptions(
            output_dir=output_dir,
            suffix=suffix,
            format=args.format,
            quality=args.quality,
            outscale=args.outscale,
            alpha=args.alpha,
            overwrite=args.overwrite,
            skip_existing=args.skip_existing,
            max_pixels=args.max_pixels,
            progress=not args.no_progress,
        )
    except ValueError as error:
        return _error(str(error))
    for failure in failures:
        logger.error("%s", failure.message)
    logger.info(
        "%d input file%s, model %s (x%g) on %s",
        len(jobs),
        "s" if len(jobs) != 1 else "",
        upscaler.name,
        upscaler.scale,
        upscaler.device if cluster is None else f"Ray workers ({args.device})",
    )

    try:
        with logging_redirect_tqdm():
            if cluster is None:
                summary = run_batch(jobs, upscaler, options, failures=failures)
            else:
                from soccersr.cluster.ray_job import run_on_ray

                del upscaler  # the workers build their own
                summary = run_on_ray(jobs, model_arg, model_options, options, cluster, failures=failures)
    except BatchInterrupted as stop:
        print(stop.summary.line())
        return 130
    print(summary.line())
    return 1 if summary.failed else 0
