"""ONNX export: graph checked, dynamic axes, metadata, parity with PyTorch, atomic failure."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

import soccersr.export.onnx as onnx_export
from soccersr.export import ExportError
from soccersr.export.onnx import FP16_TOLERANCE, export_onnx, max_abs_diff, probe_image, probe_shapes
from soccersr.infer.onnx_backend import OnnxModelInfo
from soccersr.weights.model import SRModel
from tiny_models import tiny_model


def real_crops(soccer_crops: Path, batch: int, height: int, width: int) -> torch.Tensor:
    """(B, 3, H, W) RGB float crops of the real soccer images."""
    crops = []
    for i, path in enumerate(sorted(soccer_crops.glob("*.png"))[:batch]):
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        assert bgr is not None, path
        top, left = 40 + 11 * i, 60 + 7 * i
        crops.append(bgr[top : top + height, left : left + width, ::-1].astype(np.float32) / 255.0)
    return torch.from_numpy(np.ascontiguousarray(np.stack(crops).transpose(0, 3, 1, 2)))


def run_onnx(path: Path, x: torch.Tensor) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(["output"], {"input": x.numpy()})[0]


def torch_out(model: SRModel, x: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return model.net(x).numpy()


@pytest.mark.parametrize(
    ("arch", "scale", "size", "out_size"),
    [
        ("RRDBNet", 4, (37, 53), (148, 212)),
        ("RRDBNet", 2, (38, 54), (76, 108)),  # pixel-unshuffle by 2: 12 input channels
        ("SRVGGNetCompact", 4, (37, 53), (148, 212)),
    ],
)
def test_onnx_matches_pytorch_on_real_crops_at_two_sizes(
    soccer_crops: Path, tmp_path: Path, arch, scale, size, out_size
) -> None:
    model = tiny_model(arch, scale=scale)
    path = tmp_path / "model.onnx"
    result = export_onnx(model, path)
    assert path.is_file() and result.path == path
    assert result.max_abs_diff <= 1e-3

    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    x = real_crops(soccer_crops, 1, *size)
    got = run_onnx(path, x)
    assert got.shape == (1, 3, *out_size)
    assert max_abs_diff(got, torch_out(model, x)) < 1e-4
    # A second size and batch 2 through the same file: the axes are really dynamic.
    x2 = real_crops(soccer_crops, 2, 22, 30)
    got2 = run_onnx(path, x2)
    assert got2.shape == (2, 3, 22 * scale, 30 * scale)
    assert max_abs_diff(got2, torch_out(model, x2)) < 1e-4


def test_rrdbnet_x1_pixel_unshuffle_by_4(tmp_path: Path, soccer_crops: Path) -> None:
    model = tiny_model("RRDBNet", scale=1)
    path = tmp_path / "x1.onnx"
    result = export_onnx(model, path)
    assert result.probe_shapes == ((1, 3, 40, 56), (2, 3, 32, 24))  # rounded up to multiples of 4
    x = real_crops(soccer_crops, 2, 36, 44)
    assert max_abs_diff(run_onnx(path, x), torch_out(model, x)) < 1e-4


def test_graph_interface_and_metadata(tmp_path: Path) -> None:
    # An animevideov3-x2-like model: x4 network, model scale 2 (post-resize 0.5 outside the graph).
    model = tiny_model("SRVGGNetCompact", scale=4, model_scale=2)
    path = tmp_path / "compact-x2.onnx"
    export_onnx(model, path, opset=18)
    proto = onnx.load(str(path))

    assert proto.opset_import[0].version == 18
    (inp,), (out,) = proto.graph.input, proto.graph.output
    assert (inp.name, out.name) == ("input", "output")
    assert inp.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    dims = [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim]
    assert dims == ["batch", 3, "height", "width"]
    assert [d.dim_param or d.dim_value for d in out.type.tensor_type.shape.dim] == [
        "batch",
        3,
        "out_height",
        "out_width",
    ]
    assert {n.op_type for n in proto.graph.node} >= {"Conv", "PRelu", "DepthToSpace", "Resize"}

    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["scale"] == "2"
    assert meta["net_scale"] == "4"
    assert meta["post_resize"] == "0.5"
    assert meta["size_multiple"] == "1"
    assert meta["architecture"] == "SRVGGNetCompact"
    assert meta["architecture_kwargs"] == (
        '{"act_type": "prelu", "num_conv": 2, "num_feat": 8, "num_in_ch": 3, "num_out_ch": 3, "upscale": 4}'
    )
    assert meta["precision"] == "fp32"
    assert meta["source_model"] == "test"
    assert meta["soccersr_version"]
    assert meta["input_contract"].startswith("RGB float32 [0,1] NCHW -> RGB float32 unclamped NCHW, x4")
    assert float(meta["parity_max_abs_diff"]) <= 1e-3

    info = OnnxModelInfo.from_metadata(meta, origin=str(path))
    assert (info.net_scale, info.scale, info.post_resize, info.size_multiple) == (4, 2.0, 0.5, 1)
    assert dict(info.arch_kwargs) == dict(model.arch_kwargs)
    # The graph is the network only: x4 output even though the model is x2.
    x = probe_image(1, 10, 12, seed=3)
    assert run_onnx(path, x).shape == (1, 3, 40, 48)


def test_rrdbnet_x2_metadata_size_multiple(tmp_path: Path) -> None:
    path = tmp_path / "x2.onnx"
    export_onnx(tiny_model("RRDBNet", scale=2), path)
    meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert (meta["size_multiple"], meta["scale"], meta["net_scale"], meta["post_resize"]) == ("2", "2", "2", "none")


def test_fp16_export_has_half_weights_and_float_interface(tmp_path: Path, soccer_crops: Path) -> None:
    model = tiny_model("RRDBNet", scale=4)
    path = tmp_path / "fp16.onnx"
    result = export_onnx(model, path, fp16=True)
    assert result.precision == "fp16" and result.tolerance == FP16_TOLERANCE
    proto = onnx.load(str(path))
    weights = [t for t in proto.graph.initializer if t.dims and len(t.dims) == 4]
    assert weights and all(t.data_type == onnx.TensorProto.FLOAT16 for t in weights)
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert proto.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert {p.key: p.value for p in proto.metadata_props}["precision"] == "fp16"

    x = real_crops(soccer_crops, 1, 37, 53)
    got, want = run_onnx(path, x), torch_out(model, x)
    diff = max_abs_diff(got, want)
    # float16 really is used (not an fp32 graph), and stays close to float32 PyTorch.
    assert 1e-6 < diff < FP16_TOLERANCE


def test_failed_parity_leaves_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(onnx_export, "max_abs_diff", lambda a, b: 0.5)
    path = tmp_path / "out" / "model.onnx"
    with pytest.raises(
        ExportError, match=r"model\.onnx: ONNX Runtime output differs from PyTorch by 0\.5 .*nothing written"
    ):
        export_onnx(tiny_model("SRVGGNetCompact"), path)
    assert not path.exists()
    assert not path.parent.exists() or list(path.parent.iterdir()) == []  # no temporary file either


def test_failed_parity_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "model.onnx"
    path.write_bytes(b"previous export")
    monkeypatch.setattr(onnx_export, "max_abs_diff", lambda a, b: float("inf"))
    with pytest.raises(ExportError):
        export_onnx(tiny_model("SRVGGNetCompact"), path)
    assert path.read_bytes() == b"previous export"
    assert [p.name for p in tmp_path.iterdir()] == ["model.onnx"]


def test_bad_opset_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match=r"x\.onnx: opset 9 is not supported \(use 13\.\.20\)"):
        export_onnx(tiny_model("SRVGGNetCompact"), tmp_path / "x.onnx", opset=9)
    assert not (tmp_path / "x.onnx").exists()


def test_probe_images_are_deterministic_8bit_and_not_multiples_of_8() -> None:
    a, b = probe_image(2, 37, 53, seed=1), probe_image(2, 37, 53, seed=1)
    assert torch.equal(a, b)
    assert not torch.equal(a, probe_image(2, 37, 53, seed=2))
    assert a.shape == (2, 3, 37, 53) and a.dtype == torch.float32
    assert torch.equal(torch.round(a * 255) / 255, a)
    assert a.min() >= 0.0 and a.max() <= 1.0 and a.std() > 0.1  # structured content, not flat
    assert probe_shapes(1) == ((1, 3, 37, 53), (2, 3, 29, 22))
    assert probe_shapes(2) == ((1, 3, 38, 54), (2, 3, 30, 22))


def test_max_abs_diff() -> None:
    a = np.zeros((1, 3, 2, 2), np.float32)
    b = a.copy()
    b[0, 1, 1, 0] = -0.25
    assert max_abs_diff(a, b) == 0.25
    assert max_abs_diff(a, a[:, :, :1]) == float("inf")
    b[0, 0, 0, 0] = np.nan
    assert max_abs_diff(a, b) == float("inf")
