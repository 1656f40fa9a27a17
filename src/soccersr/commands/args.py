"""argparse value types and flags shared by several subcommands."""

from __future__ import annotations

import argparse
import math
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


def int_in(low: int, high: int) -> Callable[[str], int]:
    """An integer in ``low..high`` (--quality 1..100, --max-side, --workers)."""

    def parse(text: str) -> int:
        value = _finite(int, text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be in {low}..{high}, got {value}")
        return value

    return parse


def _finite(kind: type[int] | type[float], text: str) -> int | float:
    try:
        value = kind(text)
    except ValueError:
        noun = "an integer" if kind is int else "a number"
        raise argparse.ArgumentTypeError(f"expected {noun}, got {text!r}") from None
    if not math.isfinite(value):  # inf and nan parse as floats, and would pass or poison a comparison
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
    return value


def positive(kind: type[int] | type[float]) -> Callable[[str], int | float]:
    """A finite number > 0 of ``kind`` (an outscale, hours, a queue length)."""

    def parse(text: str) -> int | float:
        value = _finite(kind, text)
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {text}")
        return value

    return parse


def non_negative_float(text: str) -> float:
    """A finite number >= 0 (GPUs per worker)."""
    value = _finite(float, text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {text}")
    return value


def pixel_count(text: str) -> int | None:
    """'40M', '40000000' or '4e7' pixels; 0 means no limit (None)."""
    millions = text[-1:] in ("M", "m")
    try:
        value = _finite(float, text[:-1] if millions else text) * (1_000_000 if millions else 1)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected a pixel count like 40M or 40000000, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {text}")
    return int(value) or None


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
