"""The ``soccersr`` command line: one subcommand per pipeline step.

Each subcommand lives in ``soccersr/commands/<name>.py`` with ``add_parser(subparsers)`` and
``run(args) -> int``. Command modules import only the standard library at import time, so
``soccersr --help`` is instant; heavy imports (torch, cv2, av) happen inside ``run``.

Errors: a command returns its exit code, or raises a ``SoccersrError``; ``main`` turns that into
one line on stderr and the error's ``exit_code``, and a missing optional package into the
``pip install 'soccersr[extra]'`` hint (exit 2), so commands do not list exception types.
"""

from __future__ import annotations

import argparse
import logging
import sys

from soccersr import __version__
from soccersr.commands import crops, degrade, evaluate, export, frames, meta, models, serve, train, upscale, vgg, video
from soccersr.commands.extras import missing_extra
from soccersr.errors import SoccersrError

# The order here is the order of the pipeline and of ``soccersr --help``.
COMMANDS = (upscale, video, models, frames, crops, meta, degrade, vgg, train, evaluate, export, serve)


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
    _add_verbose_to_subcommands(parser)
    return parser


def _add_verbose_to_subcommands(parser: argparse.ArgumentParser) -> None:
    """``-v`` also after a subcommand (``soccersr upscale ... -v``, ``soccersr eval fit-niqe ... -v``).

    default=SUPPRESS: a subcommand that is not given ``-v`` leaves the value set before it alone.
    """
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for subparser in action.choices.values():
                if "-v" not in subparser._option_string_actions:
                    subparser.add_argument(
                        "-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="debug logging"
                    )
                _add_verbose_to_subcommands(subparser)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s: %(message)s" if not args.verbose else "%(asctime)s %(name)s %(levelname)s: %(message)s",
    )
    prog = f"soccersr {args.command}"
    try:
        return int(args.func(args))
    except SoccersrError as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return error.exit_code
    except ModuleNotFoundError as error:
        missing = missing_extra(error, "this command")
        if missing is None:
            raise  # not an optional package: a bug, keep the traceback
        print(f"{prog}: error: {missing}", file=sys.stderr)
        return missing.exit_code
    except KeyboardInterrupt:
        print("soccersr: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `soccersr models | head`: the reader went away; not an error worth a traceback.
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
