"""`soccersr crops`: cut training sub-images from frames."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "crops",
        help="cut training sub-images from frames",
        description="Cut every image of a folder into overlapping square PNG sub-images <stem>_s001.png ... "
        "(the windows of Real-ESRGAN's extract_subimages.py).",
    )
    parser.add_argument("input", type=Path, metavar="DIR", help="folder of images")
    parser.add_argument("-o", "--output", type=Path, required=True, metavar="DIR", help="folder for the crops")
    parser.add_argument("--crop-size", type=int, default=480, metavar="PX", help="window side in pixels (default 480)")
    parser.add_argument("--step", type=int, default=240, metavar="PX", help="distance between windows (default 240)")
    parser.add_argument(
        "--thresh-size",
        type=int,
        default=0,
        metavar="PX",
        help="add a last window flush with the border only when more than this many pixels are left (default 0)",
    )
    parser.add_argument("--compression-level", type=int, default=3, metavar="N", help="PNG compression 0-9 (default 3)")
    parser.add_argument(
        "--workers", type=int, default=None, metavar="N", help="worker processes (default: CPUs, at most 8)"
    )
    parser.add_argument(
        "--multiscale",
        action="store_true",
        help="also crop LANCZOS copies at 0.75, 0.5, 1/3 and shortest edge 400 (<stem>T0..T3)",
    )
    parser.add_argument(
        "--multiscale-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="where the downscaled copies are written (default: OUTPUT/multiscale)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from soccersr.commands.extras import require

    if args.multiscale:
        require("--multiscale", "PIL")  # once here, not once per image in the workers
    from tqdm import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    from soccersr.data.crops import CropConfig, crop_folder, default_workers
    from soccersr.io.listing import list_images

    try:
        cfg = CropConfig(
            crop_size=args.crop_size,
            step=args.step,
            thresh_size=args.thresh_size,
            compression_level=args.compression_level,
            multiscale=args.multiscale,
        )
        workers = default_workers() if args.workers is None else args.workers
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        total = len(list_images(args.input))
    except (ValueError, NotADirectoryError) as exc:
        print(f"soccersr crops: error: {exc}", file=sys.stderr)
        return 2
    if total == 0:
        print(f"soccersr crops: error: {args.input}: no images", file=sys.stderr)
        return 1
    # disable=None: a bar on a terminal only, never in a pipe or a log file.
    with logging_redirect_tqdm(), tqdm(total=total, unit="image", desc="crops", disable=None) as bar:

        def progress(result: object) -> None:
            error = getattr(result, "error", None)
            if error is not None:
                bar.write(f"soccersr crops: error: {error}", file=sys.stderr)
            bar.update(1)

        try:
            report = crop_folder(
                args.input, args.output, cfg, workers=workers, multiscale_dir=args.multiscale_dir, progress=progress
            )
        except ValueError as exc:
            bar.close()
            print(f"soccersr crops: error: {exc}", file=sys.stderr)
            return 2
    if report.stale:
        print(
            f"soccersr crops: warning: {len(report.stale)} image(s) in {args.output} were not written by this run "
            f"(left from other settings?), e.g. {report.stale[0]}",
            file=sys.stderr,
        )
    print(f"{report.crops} crops from {report.images - len(report.failed)} of {report.images} images in {args.output}")
    return 1 if report.failed else 0
