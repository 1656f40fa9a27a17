"""`soccersr eval`: compare models on held-out images (PSNR, SSIM, NIQE, sheets).

soccersr eval --model soccer-x4plus --model my-finetune.pth --hr held-out/ --boxes labels/ --niqe-params niqe.npz
soccersr eval --model x4plus --lq real-photos/              # no ground truth: NIQE and time only
soccersr eval fit-niqe sharp-frames/ -o niqe.npz            # the NIQE pristine model
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from soccersr.commands.args import add_engine_arguments

logger = logging.getLogger(__name__)


def _crop(text: str) -> tuple[int, int, int, int]:
    try:
        x, y, w, h = (int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected x,y,w,h (integers), got {text!r}") from None
    if w <= 0 or h <= 0 or x < 0 or y < 0:
        raise argparse.ArgumentTypeError(f"expected x,y >= 0 and w,h > 0, got {text!r}")
    return x, y, w, h


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="compare models on held-out images (PSNR, SSIM, NIQE, sheets)",
        description=(
            "Upscale the same inputs with every --model and score them: PSNR/SSIM on Y against --hr, "
            "the same on the players (--boxes), NIQE (--niqe-params), time. Writes a report folder "
            "(summary.md, results.csv, report.json, comparison sheets, index.html). "
            "Subcommand: 'soccersr eval fit-niqe DIR -o PARAMS.npz' fits the NIQE model."
        ),
    )
    parser.add_argument(
        "--model",
        "-m",
        dest="models",
        action="append",
        metavar="NAME_OR_FILE",
        help="built-in model name or weights file; repeat to compare models",
    )
    parser.add_argument("--hr", type=Path, metavar="DIR", help="ground-truth images (enables PSNR/SSIM)")
    parser.add_argument(
        "--lq",
        type=Path,
        metavar="DIR",
        help="low-resolution inputs, same stems as the HR; default: synthesised from the HR",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="degradation seed for synthesised LQ (default 0); per image as in soccersr degrade",
    )
    parser.add_argument(
        "--degradation",
        choices=("training", "web"),
        default="training",
        help="how synthesised LQ are made: training (the Real-ESRGAN training degradation, the default) "
        "or web (Gaussian blur sigma 0.6-1.4, bicubic x1/4, JPEG quality 55-85: like web thumbnails)",
    )
    parser.add_argument(
        "--boxes",
        type=Path,
        metavar="DIR",
        help="YOLO box files 'class cx cy w h' (0 ball, 1 goalkeeper, 2 player, 3 referee), same stems",
    )
    parser.add_argument(
        "--box-enlarge", type=float, default=0.10, metavar="F", help="grow each box by F (default 0.10)"
    )
    parser.add_argument(
        "--report",
        "-o",
        type=Path,
        default=Path("eval-report"),
        metavar="OUT",
        help="report folder (default ./eval-report)",
    )
    parser.add_argument(
        "--niqe-params", type=Path, metavar="FILE", help="NIQE params (.npz from fit-niqe); none: no NIQE"
    )
    add_engine_arguments(parser)
    parser.add_argument(
        "--crops",
        type=_crop,
        nargs="+",
        default=[],
        metavar="X,Y,W,H",
        help="sheet crops on the output grid (default: players from --boxes, else the most detailed regions)",
    )
    parser.add_argument(
        "--no-sheets", dest="sheets", action="store_false", help="skip the comparison sheets and index.html"
    )
    parser.add_argument("--save-outputs", action="store_true", help="also write every model's output PNGs")
    parser.set_defaults(func=run)

    sub = parser.add_subparsers(dest="eval_command", metavar="{fit-niqe}")
    fit = sub.add_parser(
        "fit-niqe",
        help="fit the NIQE pristine model on a folder of sharp, clean images",
        description="Fit NIQE's pristine multivariate Gaussian on the sharpest patches of each image.",
    )
    fit.add_argument("folder", type=Path, help="folder of sharp images (e.g. HR soccer frames)")
    fit.add_argument("-o", "--output", type=Path, required=True, metavar="PARAMS.npz")
    fit.add_argument("--patch-size", type=int, default=96, help="patch side (default 96, as published)")
    fit.add_argument(
        "--sharpness",
        type=float,
        default=0.75,
        help="keep patches sharper than this fraction of each image's sharpest (default 0.75)",
    )
    fit.add_argument("--max-images", type=int, default=None, help="use at most this many images (sorted by name)")
    fit.set_defaults(func=run_fit_niqe)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    from soccersr.errors import SoccersrError
    from soccersr.eval.runner import EvalConfig, run_eval

    try:
        cfg = EvalConfig(
            models=tuple(args.models or ()),
            report_dir=args.report,
            hr_dir=args.hr,
            lq_dir=args.lq,
            seed=args.seed,
            degradation=args.degradation,
            boxes_dir=args.boxes,
            niqe_params=args.niqe_params,
            engine=args.engine,
            device=args.device,
            precision=args.precision,
            tile=args.tile,
            crops=tuple(args.crops),
            box_enlarge=args.box_enlarge,
            sheets=args.sheets,
            save_outputs=args.save_outputs,
        )
        # disable=None: a bar on a terminal; in a log file the per-image lines say the same.
        with logging_redirect_tqdm(), tqdm(unit="img", desc="eval", disable=None) as bar:

            def on_image(index: int, total: int, name: str) -> None:
                if bar.total != total:
                    bar.reset(total=total)
                bar.n = index
                bar.set_postfix_str(name)  # refreshes the bar
                logger.debug("[%d/%d] %s", index + 1, total, name)

            outcome = run_eval(cfg, on_image=on_image)
            bar.n = bar.total or 0
            bar.refresh()
    except (ValueError, SoccersrError) as exc:
        # EvalError, NiqeError, WeightsError, ImageReadError, BoxFileError and the engine's
        # option errors are all ValueErrors with a one-line message naming the cause.
        print(f"soccersr eval: error: {exc}", file=sys.stderr)
        return 2
    print(outcome.table)
    print(f"\nreport: {outcome.report_dir / 'summary.md'}")
    if args.sheets:
        print(f"sheets: {outcome.report_dir / 'index.html'}")
    if outcome.failed:
        names = ", ".join(f["image"] for f in outcome.failed)
        print(f"soccersr eval: error: {len(outcome.failed)} image(s) failed: {names}", file=sys.stderr)
        return 1
    return 0


def run_fit_niqe(args: argparse.Namespace) -> int:
    from soccersr.eval.niqe import NiqeError, fit_niqe, save_niqe_model
    from soccersr.io.images import ImageReadError, read_image
    from soccersr.io.listing import list_images

    folder: Path = args.folder
    if not folder.is_dir():
        print(f"soccersr eval fit-niqe: error: {folder}: not a folder", file=sys.stderr)
        return 2
    files = list_images(folder)
    if args.max_images is not None:
        files = files[: args.max_images]
    if not files:
        print(f"soccersr eval fit-niqe: error: {folder}: no images", file=sys.stderr)
        return 2
    digest = hashlib.sha256()
    failed = []

    def images() -> Iterator[tuple[str, Any]]:
        for i, path in enumerate(files):
            logger.info("[%d/%d] %s", i + 1, len(files), path.name)
            try:
                data = path.read_bytes()
                rgb = read_image(path).rgb
            except (OSError, ImageReadError) as exc:
                logger.error("skipping %s", exc)
                failed.append(path.name)
                continue
            digest.update(hashlib.sha256(data).digest())
            yield path.name, rgb

    try:
        model = fit_niqe(
            images(),
            patch_size=args.patch_size,
            sharpness_threshold=args.sharpness,
            info={"source": str(folder.resolve())},
        )
    except NiqeError as exc:
        print(f"soccersr eval fit-niqe: error: {exc}", file=sys.stderr)
        return 2
    model = replace(model, info={**model.info, "images_sha256": digest.hexdigest(), "failed": failed})
    save_niqe_model(model, args.output)
    info = model.info
    print(
        f"NIQE params: {args.output} ({info['num_images']} images, {info['num_patches_kept']} of "
        f"{info['num_patches_total']} patches kept, patch {info['patch_size']}, sharpness > {info['sharpness_threshold']})"
    )
    return 1 if failed else 0
