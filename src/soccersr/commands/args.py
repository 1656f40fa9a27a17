"""argparse value types shared by several subcommands."""

from __future__ import annotations

import argparse
from collections.abc import Callable


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
