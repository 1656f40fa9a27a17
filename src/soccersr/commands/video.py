"""`soccersr video`: restore every frame of match clips, keeping timing, sound and subtitles.

Exit codes: 0 when every clip was restored (or skipped with --resume), 1 when any failed or
was cut short (each reported on one line; the other clips go on), 2 for usage errors, 130 on
Ctrl-C (a rerun continues after the last finished segment).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from soccersr.commands.args import add_engine_arguments, auto_or_int, engine_options, positive

if TYPE_CHECKING:
    from soccersr.infer.engine import TileEngine
    from soccersr.video.job import VideoOptions

logger = logging.getLogger(__name__)

EXTENSIONS = (".mp4", ".mkv", ".mov", ".webm")  # as video.encode.CONTAINERS, without importing av here


def _seconds(text: str) -> float:
    """'90', '90.5', '1:30' or '01:02:03.5' -> seconds."""
    try:
        value = 0.0
        for part in text.split(":"):
            value = value * 60 + float(part)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds or [HH:]MM:SS[.ms], got {text!r}") from None
    if text.count(":") > 2 or value < 0 or value != value or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected seconds or [HH:]MM:SS[.ms], got {text!r}")
    return value


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "video",
        help="restore every frame of video clips, keeping timing, sound and subtitles",
        description="Restore every frame of video clips with a super-resolution model. Frame timestamps are "
        "kept (variable frame rate stays variable), audio and subtitles are copied packet for packet (audio the "
        "container cannot hold is transcoded, and a line says so). Work is saved in segments: a killed job "
        "continues where it stopped when run again.",
    )
    parser.add_argument("inputs", nargs="+", type=Path, metavar="INPUT", help="video files")
    parser.add_argument(
        "-o",
        "--output",
        required=True,
        type=Path,
        metavar="OUTPUT",
        help="output file (.mp4 .mkv .mov .webm: the container follows the extension), or a folder for several "
        "inputs (named <stem>_x<scale> with the input's extension, .mkv for others)",
    )
    parser.add_argument("-m", "--model", default=None, help="model name or weights file (default: soccer-x4plus)")
    parser.add_argument(
        "-s", "--outscale", type=positive(float), default=None, help="final scale (default: the model's; Lanczos)"
    )
    add_engine_arguments(parser)
    parser.add_argument(
        "--frames-per-call",
        type=auto_or_int(1),
        default="auto",
        help="frames per engine call (default auto: 1 on the CPU, 4 on a GPU)",
    )
    encoding = parser.add_argument_group("encoding")
    encoding.add_argument(
        "--codec",
        choices=("libx264", "libx265", "libsvtav1"),
        default=None,
        help="video encoder (default libx264; libsvtav1 for .webm)",
    )
    encoding.add_argument("--crf", type=int, default=None, help="quality, lower is better (default 18; 24 for AV1)")
    encoding.add_argument(
        "--preset", default=None, help="encoder speed: x264/x265 names (default medium), SVT-AV1 0-13 (default 8)"
    )
    encoding.add_argument(
        "--pix-fmt",
        default=None,
        help="pixel format (default yuv420p; yuv420p10le for 10-bit input with libx265/libsvtav1)",
    )
    part = parser.add_argument_group("part of the clip")
    part.add_argument("--start", type=_seconds, default=None, metavar="TIME", help="start at TIME (seconds or MM:SS)")
    part.add_argument("--duration", type=_seconds, default=None, metavar="TIME", help="restore TIME of video")
    runs = parser.add_argument_group("reruns")
    existing = runs.add_mutually_exclusive_group()
    existing.add_argument(
        "--resume",
        action="store_true",
        help="skip clips whose output exists; others continue after their last finished segment (a plain "
        "rerun continues too, but stops at an existing output)",
    )
    existing.add_argument(
        "--overwrite", action="store_true", help="replace existing outputs and unfinished work of other settings"
    )
    runs.add_argument(
        "--segment",
        type=positive(float),
        default=10.0,
        metavar="SECONDS",
        help="seconds of video per saved segment: the most a kill can lose (default 10)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def _error(message: str) -> int:
    print(f"soccersr video: error: {message}", file=sys.stderr)
    return 2


def output_paths(inputs: list[Path], output: Path, scale: float) -> list[Path]:
    """The output file of each input: ``output`` itself for one input, else files in the folder ``output``."""
    if len(inputs) == 1 and not output.is_dir() and output.suffix:
        return [output]
    names = []
    for source in inputs:
        ext = source.suffix.lower() if source.suffix.lower() in EXTENSIONS else ".mkv"
        names.append(output / f"{source.stem}_x{scale:g}{ext}")
    return names


def run(args: argparse.Namespace) -> int:
    from soccersr.errors import SoccersrError
    from soccersr.weights import WeightsError

    usage_error = _usage_error(args.inputs, args.output)
    if usage_error is not None:
        return _error(usage_error)
    try:
        options = _video_options(args)
        upscaler = _open_engine(args)
    except (SoccersrError, WeightsError) as error:
        return _error(str(error))
    except (ValueError, RuntimeError) as error:
        return _error(str(error).strip().splitlines()[0])

    outputs = output_paths(args.inputs, args.output, args.outscale or upscaler.scale)
    logger.info(
        "%d clip%s, model %s (x%g) on %s",
        len(outputs),
        "s" * (len(outputs) != 1),
        upscaler.name,
        upscaler.scale,
        upscaler.device,
    )
    failures = 0
    for source, output in zip(args.inputs, outputs, strict=True):
        if output.exists() and args.resume:
            print(f"{output}: already there, skipped")
            continue
        error = _output_conflict(source, output, args.overwrite)
        if error is None:
            try:
                error = _restore_one(source, output, upscaler, options)
            except KeyboardInterrupt:
                print(
                    f"interrupted: the same command continues {source} after its last finished segment", file=sys.stderr
                )
                return 130
        if error is not None:
            print(f"soccersr video: error: {error}", file=sys.stderr)
            failures += 1
    return 1 if failures else 0


def _usage_error(inputs: list[Path], output: Path) -> str | None:
    if len(inputs) > 1 and output.suffix.lower() in EXTENSIONS and not output.is_dir():
        return f"{output}: several inputs need an output folder, not a file"
    if len(inputs) == 1 and output.suffix and not output.is_dir() and output.suffix.lower() not in EXTENSIONS:
        return f"{output}: the output must end in {', '.join(EXTENSIONS)} (or be a folder)"
    if len({source.stem for source in inputs}) < len(inputs) and len(inputs) > 1:
        return "two inputs have the same name stem: their outputs would collide"
    return None


def _video_options(args: argparse.Namespace) -> VideoOptions:
    from soccersr.video.job import VideoOptions

    return VideoOptions(
        outscale=args.outscale,
        codec=args.codec,
        crf=args.crf,
        preset=args.preset,
        pix_fmt=args.pix_fmt,
        start=args.start,
        duration=args.duration,
        frames_per_call=args.frames_per_call,
        segment_seconds=args.segment,
        restart=args.overwrite,
        progress=not args.no_progress,
    )


def _open_engine(args: argparse.Namespace) -> TileEngine:
    from soccersr.infer.backends import open_upscaler
    from soccersr.weights.zoo import DEFAULT_MODEL

    return open_upscaler(args.model or DEFAULT_MODEL, engine_options(args))


def _output_conflict(source: Path, output: Path, overwrite: bool) -> str | None:
    """Why ``output`` may not be written (it exists without --overwrite, or it is the input), else None."""
    if not output.exists():
        return None
    if not overwrite:
        return f"{output}: exists (--overwrite replaces it, --resume skips it)"
    if source.exists() and output.resolve() == source.resolve():
        return f"{output}: is the input itself"
    return None


def _restore_one(source: Path, output: Path, upscaler: TileEngine, options: VideoOptions) -> str | None:
    """Restore one clip and print its summary; the error line, or None when the whole clip was restored."""
    import av
    from tqdm.contrib.logging import logging_redirect_tqdm

    from soccersr.errors import SoccersrError
    from soccersr.video.job import restore_video
    from soccersr.video.source import one_line

    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        with logging_redirect_tqdm():
            result = restore_video(source, output, upscaler, options)
    except SoccersrError as error:
        return str(error)
    except (OSError, av.error.FFmpegError) as error:  # a full disk, an encoder that fails
        return f"{source}: {one_line(error)}"
    except RuntimeError as error:  # the engine failed (out of memory even at the smallest tile, ...)
        return f"{source}: {type(error).__name__}: {one_line(error)}"
    print(result.summary())
    if result.truncation is not None:
        return f"{source}: {result.truncation}"
    return None
