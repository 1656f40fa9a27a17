"""`soccersr export`: export a model to ONNX or safetensors.

    soccersr export --model x4plus --format onnx -o x4plus.onnx
    soccersr export --model runs/soccer/net_g_ema.safetensors --format onnx --fp16 -o soccer-fp16.onnx
    soccersr export --model runs/soccer/net_g_ema.pth -o soccer.safetensors     # format from the suffix

ONNX files are checked (onnx checker) and compared with PyTorch on probe images before they
are written; see ``soccersr.export.onnx``. Run them with
``soccersr upscale --engine onnxruntime --model FILE.onnx``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

FORMATS = {".onnx": "onnx", ".safetensors": "safetensors"}


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export",
        help="export a model to ONNX or safetensors",
        description="Export a model to ONNX (checked against PyTorch before writing) or safetensors.",
    )
    parser.add_argument(
        "-m",
        "--model",
        default=None,
        metavar="NAME_OR_PATH",
        help="built-in model name or weights file (.pth/.safetensors/.pdparams); default: soccer-x4plus",
    )
    parser.add_argument(
        "-f",
        "--format",
        choices=sorted(set(FORMATS.values())),
        default=None,
        help="output format; default: from the output file's suffix",
    )
    parser.add_argument(
        "-o", "--output", required=True, type=Path, metavar="FILE", help="output file (replaced atomically)"
    )
    parser.add_argument(
        "--fp16",
        action="store_true",
        help="float16 weights (ONNX: float16 arithmetic behind float32 input/output; safetensors: float16 tensors)",
    )
    parser.add_argument("--opset", type=int, default=None, metavar="N", help="ONNX opset, 13..20 (default 17)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from soccersr.commands.extras import require
    from soccersr.errors import UsageError

    fmt = args.format or FORMATS.get(args.output.suffix.lower())
    if fmt is None:
        raise UsageError(
            f"cannot tell the format of {args.output} from its suffix; pass --format onnx or --format safetensors"
        )
    if args.opset is not None and fmt != "onnx":
        raise UsageError("--opset applies only to --format onnx")

    if fmt == "onnx":
        require("ONNX export", "onnx", "onnxruntime")  # before the model loads: fail fast

    from soccersr.export import ExportError
    from soccersr.weights import load_model
    from soccersr.weights.zoo import DEFAULT_MODEL

    # WeightsError and ExportError are SoccersrErrors: cli.main prints them and returns their exit code.
    model = load_model(args.model or DEFAULT_MODEL)
    if fmt == "onnx":
        from soccersr.export.onnx import DEFAULT_OPSET, export_onnx
        from soccersr.infer.onnx_backend import OnnxModelError

        try:
            result = export_onnx(model, args.output, fp16=args.fp16, opset=args.opset or DEFAULT_OPSET)
        except OnnxModelError as exc:  # ONNX Runtime could not load the fresh graph
            raise ExportError(f"{args.output}: {exc}; nothing written") from None
        print(
            f"wrote {result.path} ({result.num_bytes / 2**20:.1f} MiB, ONNX opset {result.opset}, {result.precision}); "
            f"max |ONNX Runtime - PyTorch| = {result.max_abs_diff:.2g} (tolerance {result.tolerance:g})"
        )
    else:
        from soccersr.export.safetensors import export_safetensors

        result_st = export_safetensors(model, args.output, fp16=args.fp16)
        print(
            f"wrote {result_st.path} ({result_st.num_bytes / 2**20:.1f} MiB, {result_st.num_tensors} tensors, "
            f"{result_st.precision})"
        )
    return 0
