"""`soccersr frames`: extract keyframes (or one frame every N seconds) from match videos."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "frames",
        help="extract keyframes from match videos",
        description="Extract still frames from videos as lossless PNG <video stem>_<frame index>.png, skipping "
        "black/flat frames and near-duplicates. A rerun continues where an interrupted one stopped.",
    )
    parser.add_argument("videos", nargs="+", type=Path, metavar="VIDEO", help="video files")
    parser.add_argument("-o", "--output", type=Path, required=True, metavar="DIR", help="folder for the frames")
    parser.add_argument(
        "--every",
        type=float,
        default=None,
        metavar="SECONDS",
        help="one frame every SECONDS instead of every key frame (near-duplicates are then kept unless --min-diff)",
    )
    parser.add_argument(
        "--min-diff",
        type=float,
        default=None,
        metavar="X",
        help="skip a frame whose 64-px grayscale thumbnail differs from the last kept one by less than X "
        "(mean absolute difference, 0-1; default 0.01 for key frames, 0 with --every; 0 keeps all)",
    )
    parser.add_argument("--max-frames", type=int, default=None, metavar="N", help="at most N frames per video")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from soccersr.commands.extras import require

    require("reading videos", "av")
    from tqdm import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    from soccersr.data.frames import FrameConfig, VideoError, extract_frames

    try:
        cfg = FrameConfig(every=args.every, min_diff=args.min_diff, max_frames=args.max_frames)
    except ValueError as exc:
        print(f"soccersr frames: error: {exc}", file=sys.stderr)
        return 2
    stems: dict[str, Path] = {}
    for video in args.videos:
        if video.stem in stems and stems[video.stem] != video:
            # Frames are named after the stem: two such videos would overwrite each other's frames.
            print(f"soccersr frames: error: {stems[video.stem]} and {video} have the same name stem", file=sys.stderr)
            return 2
        stems[video.stem] = video
    failures = 0
    for video in dict.fromkeys(args.videos):
        if not video.is_file():
            print(f"soccersr frames: error: {video}: no such file", file=sys.stderr)
            failures += 1
            continue
        bar_format = "{l_bar}{bar}| {n:.1f}/{total_fmt}s [{elapsed}<{remaining}]"
        # disable=None: a bar on a terminal only, never in a pipe or a log file.
        with logging_redirect_tqdm(), tqdm(desc=video.name, unit="s", bar_format=bar_format, disable=None) as bar:

            def progress(seconds: float, duration: float | None, bar: tqdm = bar) -> None:
                if duration is not None and bar.total != round(duration, 1):
                    bar.total = round(duration, 1)
                bar.update(max(0.0, seconds - bar.n))

            try:
                stats = extract_frames(video, args.output, cfg, progress=progress)
            except (VideoError, OSError) as exc:
                bar.close()
                print(f"soccersr frames: error: {exc}", file=sys.stderr)
                failures += 1
                continue
        damaged = f", {stats.damaged} damaged frames dropped" if stats.damaged else ""
        print(
            f"{video.name}: {stats.written} written, {stats.existing} already there, "
            f"{stats.duplicates} near-duplicates and {stats.blank} black/flat skipped ({stats.candidates} candidates)"
            f"{damaged}"
        )
        if stats.truncation is not None:
            print(f"soccersr frames: error: {video}: {stats.truncation}; the frames before are kept", file=sys.stderr)
            failures += 1
    return 1 if failures else 0
