"""The ``soccersr`` command line: one subcommand per pipeline step.

Each subcommand lives in ``soccersr/commands/<name>.py`` with ``add_parser(subparsers)`` and
``run(args) -> int``. Command modules import only the standard library at import time, so
``soccersr --help`` is instant; heavy imports (torch, cv2, av) happen inside ``run``.
"""

from __future__ import annotations

import argparse
import logging
import sys

from soccersr import __version__
from soccersr.commands import crops, degrade, evaluate, export, frames, meta, models, train, upscale, video

# The order here is the order of the pipeline and of ``soccersr --help``.
COMMANDS = (upscale, video, models, frames, crops, meta, degrade, train, evaluate, export)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="soccersr",
        description="x4 super-resolution for soccer photos (Real-ESRGAN), and fine-tuning on match footage.",
    )
    parser.add_argument("--version", action="version", version=f"soccersr {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s: %(message)s" if not args.verbose else "%(asctime)s %(name)s %(levelname)s: %(message)s",
    )
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        print("soccersr: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `soccersr models | head`: the reader went away; not an error worth a traceback.
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
