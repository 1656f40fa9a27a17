"""`soccersr degrade`: synthesise low-quality images with the Real-ESRGAN degradation."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from soccersr.degrade import DegradationConfig


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "degrade",
        help="synthesise low-quality images with the Real-ESRGAN degradation",
        description="Write a degraded, downscaled PNG (same relative path and stem) for every image under HR_DIR: "
        "USM sharpening, then the official Real-ESRGAN x4plus second-order degradation. Each image's randomness "
        "comes from --seed and its relative path, so results are reproducible and adding files changes no other "
        "output. HR images are cropped at the bottom/right to a multiple of --scale.",
    )
    parser.add_argument(
        "hr_dir", type=Path, metavar="HR_DIR", help="folder of high-resolution images (searched recursively)"
    )
    parser.add_argument("-o", "--output", type=Path, required=True, metavar="LQ_DIR", help="folder for the LQ PNGs")
    parser.add_argument("--scale", type=int, default=4, help="downscaling factor (default 4)")
    parser.add_argument("--seed", type=int, default=0, help="base seed (default 0)")
    parser.add_argument("--workers", type=int, default=1, metavar="N", help="images processed in parallel (default 1)")
    parser.set_defaults(func=run)


def _find_images(root: Path) -> list[Path]:
    from soccersr.io.listing import walk_images

    return sorted(p.relative_to(root) for p in walk_images(root, recursive=True))


def run(args: argparse.Namespace) -> int:
    from soccersr.degrade import DegradationConfig

    prog = "soccersr degrade"
    usage_error = _usage_error(args)
    if usage_error is not None:
        print(f"{prog}: error: {usage_error}", file=sys.stderr)
        return 2
    cfg = DegradationConfig(scale=args.scale)
    images = _find_images(args.hr_dir)
    if not images:
        print(f"{prog}: error: {args.hr_dir}: no images found", file=sys.stderr)
        return 1

    jobs, clashes = _plan_jobs(images)
    for target, sources in clashes:
        names = ", ".join(str(args.hr_dir / s) for s in sources)
        print(f"{prog}: error: {names}: same output {args.output / target}; rename one", file=sys.stderr)
    failed = sum(len(sources) for _, sources in clashes)

    def work(job: tuple[Path, Path]) -> str | None:
        return _degrade_one(args, cfg, *job)

    written, failed_jobs = _run_jobs(jobs, work, args.workers, prog)
    failed += failed_jobs
    print(f"{written} LQ images written to {args.output}" + (f", {failed} failed" if failed else ""))
    return 1 if failed else 0


def _usage_error(args: argparse.Namespace) -> str | None:
    if args.scale < 1 or args.workers < 1:
        return "--scale and --workers must be positive"
    if not args.hr_dir.is_dir():
        return f"{args.hr_dir}: not a folder"
    if args.output.resolve().is_relative_to(args.hr_dir.resolve()):
        # Same folder: the LQ would replace its HR source. A subfolder: the next run reads the LQ as HR.
        return f"{args.output}: the LQ folder must be outside the HR folder {args.hr_dir}"
    return None


def _plan_jobs(images: list[Path]) -> tuple[list[tuple[Path, Path]], list[tuple[Path, list[Path]]]]:
    """(source, target PNG) jobs, and the targets that several sources would share (a.jpg and a.png)."""
    targets: dict[Path, list[Path]] = {}
    for rel in images:
        targets.setdefault(rel.with_suffix(".png"), []).append(rel)
    jobs = [(sources[0], target) for target, sources in targets.items() if len(sources) == 1]
    clashes = [(target, sources) for target, sources in targets.items() if len(sources) > 1]
    return jobs, clashes


def _degrade_one(args: argparse.Namespace, cfg: DegradationConfig, rel: Path, target: Path) -> str | None:
    """Degrade one image into ``args.output / target``; the error line, or None when it was written."""
    from soccersr.degrade import degrade_image
    from soccersr.degrade.web import image_seed
    from soccersr.io.images import DecodedImage, read_image, write_image

    path = args.hr_dir / rel
    try:
        hr = read_image(path).rgb
        lq = degrade_image(hr, scale=args.scale, seed=image_seed(args.seed, rel), cfg=cfg)
        (args.output / target).parent.mkdir(parents=True, exist_ok=True)
        write_image(args.output / target, DecodedImage(lq))  # lq holds k/255 values: the 8-bit PNG is exact
    except (ValueError, OSError, RuntimeError) as exc:
        return f"{path}: {exc}" if str(path) not in str(exc) else str(exc)
    return None


def _run_jobs(
    jobs: list[tuple[Path, Path]], work: Callable[[tuple[Path, Path]], str | None], workers: int, prog: str
) -> tuple[int, int]:
    """Run ``work`` over ``jobs`` on ``workers`` threads behind a progress bar; (written, failed)."""
    from tqdm import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    written = failed = 0
    # disable=None: a bar on a terminal only, never in a pipe or a log file.
    bar = tqdm(total=len(jobs), unit="img", desc="degrade", disable=None)
    with ThreadPoolExecutor(max_workers=workers) as pool, logging_redirect_tqdm(), bar:
        for error in pool.map(work, jobs):
            bar.update(1)
            if error is None:
                written += 1
            else:
                failed += 1
                bar.write(f"{prog}: error: {error}", file=sys.stderr)
    return written, failed
