"""argparse value types and flags shared by several subcommands."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from soccersr.options import ENGINES, PRECISIONS, EngineOptions


def auto_or_int(minimum: int) -> Callable[[str], str | int]:
    """``"auto"``, or an integer >= ``minimum`` (--tile: 0 means no tiling; --batch-size: >= 1)."""

    def parse(text: str) -> str | int:
        if text == "auto":
            return text
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected 'auto' or an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    return parse


def add_engine_arguments(parser: argparse.ArgumentParser) -> None:
    """--engine, --device, --precision and --tile: how every command that runs a model runs it."""
    parser.add_argument(
        "--engine",
        default="auto",
        choices=ENGINES,
        help="inference backend; auto (default): onnxruntime for a .onnx --model (from `soccersr export`), "
        "else openvino on the CPU (torch where openvino is not installed) and torch on CUDA",
    )
    parser.add_argument("--device", default="auto", help="auto (default), cpu, cuda or cuda:N")
    parser.add_argument(
        "--precision",
        default="auto",
        choices=PRECISIONS,
        help="compute precision (default auto: fp16 on CUDA; on the CPU bf16 where it is native (AMX, AVX512_BF16), "
        "else fp32)",
    )
    parser.add_argument(
        "--tile", type=auto_or_int(0), default="auto", help="tile size in input pixels, 0 for none, or auto (default)"
    )


def engine_options(args: argparse.Namespace, **more: Any) -> EngineOptions:
    """The EngineOptions of the flags ``add_engine_arguments`` declared (``more``: a command's own, e.g. batch_size)."""
    return EngineOptions(engine=args.engine, device=args.device, precision=args.precision, tile=args.tile, **more)
