"""Network interpolation (ESRGAN, Wang et al. 2018, section 3.4) between two generators of one architecture.

    interpolate.py soccer-x4plus experiments/v2/models/net_g_1050.pth --alpha 0.5 -o v2_a050.safetensors

Every parameter becomes ``(1 - alpha) * A + alpha * B``. With A a fidelity-oriented model and B the
same network fine-tuned with perceptual and GAN losses from it, alpha walks the perception-distortion
trade-off without retraining: 0 is A, 1 is B. Both must load as the same architecture (same keys and
shapes); A and B are built-in names or weights files (the EMA generator of a training checkpoint).
The result is written atomically as safetensors with the official key names, in fp32.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from safetensors.torch import save

from soccersr.io.atomic import atomic_write_bytes
from soccersr.weights import load_model


def interpolate(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], alpha: float) -> dict[str, torch.Tensor]:
    """``(1 - alpha) * a + alpha * b`` per key; the two state dicts must match in keys and shapes."""
    if a.keys() != b.keys():
        only = sorted(a.keys() ^ b.keys())
        raise ValueError(f"the two networks differ in their parameters, e.g. {only[0]}")
    out = {}
    for key, tensor in a.items():
        if tensor.shape != b[key].shape:
            raise ValueError(f"{key}: shape {tuple(tensor.shape)} against {tuple(b[key].shape)}")
        out[key] = torch.lerp(tensor.float(), b[key].float(), alpha).contiguous()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("a", help="the model at alpha 0 (built-in name or weights file)")
    parser.add_argument("b", help="the model at alpha 1")
    parser.add_argument("--alpha", type=float, required=True, help="weight of B, in [0, 1]")
    parser.add_argument("-o", "--output", type=Path, required=True, help="the .safetensors to write")
    args = parser.parse_args(argv)
    if not 0.0 <= args.alpha <= 1.0:
        parser.error(f"--alpha: {args.alpha} is not in [0, 1]")
    a, b = load_model(args.a), load_model(args.b)
    if (a.arch, dict(a.arch_kwargs)) != (b.arch, dict(b.arch_kwargs)):
        print(f"error: {args.a} is {a.arch} {dict(a.arch_kwargs)}, {args.b} is {b.arch} {dict(b.arch_kwargs)}")
        return 1
    blended = interpolate(a.net.state_dict(), b.net.state_dict(), args.alpha)
    atomic_write_bytes(args.output, save(blended, metadata={"interpolation": f"{args.a} -> {args.b} @ {args.alpha}"}))
    print(f"wrote {args.output}: {a.arch}, alpha {args.alpha} of {args.b}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
