"""Bring a fine-tuned generator home (from a GPU session or a CPU run), and install it as a built-in model.

    finish.py pack experiments/.../net_g_<iter>.pth -o $OUT    # on the GPU machine
    finish.py join .device-files/                              # here: src/soccersr/weights/builtin/soccer-x4plus.safetensors
    finish.py pack experiments/.../net_g_<iter>.pth -o /tmp/pack --model NAME   # another built-in model
    finish.py join /tmp/pack --model NAME

``pack`` writes the EMA generator (official key names, fp16: ~33 MB for soccer-x4plus) as parts of
at most 15 MB, because the device tool returns files of at most 16 MB, plus ``pack.json`` with the
sha256 of the whole file and of each part. ``join`` reassembles them, checks every checksum and that
the file loads as the network the zoo row of ``--model`` declares, and only then writes it into place
(atomically).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors.torch import load, save

from soccersr.io.atomic import atomic_write_bytes
from soccersr.weights import WeightsError, load_state_dict_file, zoo
from soccersr.weights.detect import detect_arch
from soccersr.weights.load import MissingParamKey, build_and_load

PART_BYTES = 15 * 1024 * 1024
BUILTIN_DIR = Path("src/soccersr/weights/builtin")
# The built-in models shipped as files in the package (a new one needs its zoo row first).
MODELS = tuple(spec.name for spec in zoo.MODELS if spec.source.startswith("package:"))


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def pack(model_file: Path, out: Path, model: str = "soccer-x4plus") -> None:
    try:
        state = load_state_dict_file(model_file, param_key="params_ema")  # the EMA generator is what ships
    except MissingParamKey:
        raise SystemExit(f"{model_file}: no params_ema (the EMA generator is what ships)") from None
    half = {k: v.to(torch.float16).contiguous() for k, v in state.items()}
    bad = [k for k, v in half.items() if not torch.isfinite(v).all()]  # beyond fp16's range: refuse before the transfer
    if bad:
        raise SystemExit(f"{model_file}: not finite in fp16: {', '.join(bad[:5])}")
    out.mkdir(parents=True, exist_ok=True)
    data = save(half, metadata={"model": model, "source": model_file.name, "format": "pt"})
    name = f"{model}.safetensors"
    parts = [data[i : i + PART_BYTES] for i in range(0, len(data), PART_BYTES)]
    for i, part in enumerate(parts):
        (out / f"{name}.part{i}").write_bytes(part)
    manifest = {
        "file": name,
        "bytes": len(data),
        "sha256": _sha256(data),
        "source": str(model_file),
        "parts": [{"name": f"{name}.part{i}", "sha256": _sha256(p)} for i, p in enumerate(parts)],
    }
    (out / "pack.json").write_text(json.dumps(manifest, indent=2))
    print(f"packed {model_file} -> {len(parts)} parts, {len(data)} bytes, sha256 {manifest['sha256']}")


def _check_loads(state: Mapping[str, torch.Tensor], origin: str, want: str, expect: Mapping[str, int | str]) -> None:
    """SystemExit unless ``state`` loads as the ``want`` network that ``expect`` declares."""
    try:
        arch, kwargs = detect_arch(state, origin=origin)
        if arch != want or dict(kwargs) != dict(expect):
            raise SystemExit(f"{origin}: expected an {want} {dict(expect)}, got {arch} {dict(kwargs)}")
        build_and_load(arch, kwargs, state, origin)  # the loader's own key, shape and finiteness checks
    except WeightsError as e:
        raise SystemExit(f"{origin}: does not load as {want}: {e}") from None


def join(
    folder: Path, target: Path, model: str = "soccer-x4plus", expect: Mapping[str, int | str] | None = None
) -> None:
    """Reassemble, verify and install; ``expect``: the constructor arguments the file must have (default:
    those of ``model``'s zoo row)."""
    spec = zoo.find_spec(model)
    assert spec is not None, model
    manifest = json.loads((folder / "pack.json").read_text())
    data = b""
    for part in manifest["parts"]:
        chunk = (folder / part["name"]).read_bytes()
        if _sha256(chunk) != part["sha256"]:
            raise SystemExit(f"{folder / part['name']}: checksum mismatch (damaged in transfer)")
        data += chunk
    if len(data) != manifest["bytes"] or _sha256(data) != manifest["sha256"]:
        raise SystemExit(f"{folder}: the joined file does not match pack.json")
    # Refuse anything that is not the zoo row's network, complete and finite, before it goes into place.
    _check_loads(load(data), str(folder), spec.arch, spec.arch_kwargs if expect is None else expect)
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(target, data)
    print(f"installed {target} ({len(data)} bytes, sha256 {manifest['sha256']})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="step", required=True)
    p = sub.add_parser("pack")
    p.add_argument("checkpoint", type=Path, help="net_g_<iter>.pth of a training run")
    p.add_argument("-o", "--out", type=Path, required=True)
    j = sub.add_parser("join")
    j.add_argument("folder", type=Path)
    j.add_argument("-o", "--out", type=Path, default=None, help="default: weights/builtin/MODEL.safetensors")
    for step in (p, j):
        step.add_argument("--model", choices=MODELS, default="soccer-x4plus", help="the built-in model it becomes")
    args = parser.parse_args(argv)
    if args.step == "pack":
        pack(args.checkpoint, args.out, model=args.model)
    else:
        join(args.folder, args.out or BUILTIN_DIR / f"{args.model}.safetensors", model=args.model)
    return 0


if __name__ == "__main__":
    sys.exit(main())
