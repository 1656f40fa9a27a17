"""`soccersr meta`: write a meta_info file listing training images."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "meta",
        help="write a meta_info file listing training images",
        description="Write the meta_info file of the training set: the images of each --input folder, sorted, "
        "one per line as a path relative to the matching --root (Real-ESRGAN generate_meta_info.py format).",
    )
    parser.add_argument("--input", nargs="+", type=Path, required=True, metavar="DIR", help="image folders")
    parser.add_argument(
        "--root",
        nargs="+",
        type=Path,
        default=None,
        metavar="DIR",
        help="one root per --input folder, the lines are relative to it (default: each folder's parent)",
    )
    # --meta_info is the spelling of the official and the earlier Paddle scripts.
    parser.add_argument(
        "--meta-info",
        "--meta_info",
        dest="meta_info",
        type=Path,
        required=True,
        metavar="FILE",
        help="the file to write",
    )
    parser.add_argument(
        "--check", action="store_true", help="decode every image; unreadable ones are reported and left out"
    )
    parser.set_defaults(func=run)


def _strip_comma(path: Path) -> Path:
    # The official README's example separates folders with ", "; tolerate the trailing comma it leaves.
    text = str(path)
    if text.endswith(",") and not path.exists():
        return Path(text.rstrip(","))
    return path


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    from soccersr.data.meta import check_readable, relative_lines, write_meta_info

    inputs = [_strip_comma(p) for p in args.input]
    roots = [_strip_comma(p) for p in args.root] if args.root is not None else [p.parent for p in inputs]
    try:
        pairs = relative_lines(inputs, roots)
    except (ValueError, NotADirectoryError) as exc:
        print(f"soccersr meta: error: {exc}", file=sys.stderr)
        return 2
    empty = [str(folder) for folder in inputs if not any(path.parent == folder for path, _ in pairs)]
    if empty:
        print(f"soccersr meta: error: no images in {', '.join(empty)}", file=sys.stderr)
        return 2
    bad: dict[Path, str] = {}
    if args.check:
        # disable=None: a bar on a terminal only, never in a pipe or a log file.
        with logging_redirect_tqdm(), tqdm(total=len(pairs), unit="image", desc="check", disable=None) as bar:
            bad = check_readable([path for path, _ in pairs], progress=lambda: bar.update(1))
        for reason in bad.values():
            print(f"soccersr meta: error: {reason}", file=sys.stderr)
    lines = [line for path, line in pairs if path not in bad]
    try:
        write_meta_info(lines, args.meta_info)
    except OSError as exc:
        print(f"soccersr meta: error: {args.meta_info}: cannot write: {exc.strerror or exc}", file=sys.stderr)
        return 1
    left_out = f", {len(bad)} unreadable left out" if bad else ""
    print(f"wrote {len(lines)} lines to {args.meta_info}{left_out}")
    return 1 if bad else 0
