"""safetensors export: flat official keys, metadata, fp16, round trip through load_model."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from soccersr.cli import main
from soccersr.export import ExportError
from soccersr.export.safetensors import export_safetensors
from soccersr.weights import load_model
from soccersr.weights.model import build_network
from tiny_models import tiny_model


def metadata(path: Path) -> dict[str, str]:
    with safe_open(str(path), framework="pt") as f:
        return dict(f.metadata())


def test_flat_official_keys_and_metadata(tmp_path: Path) -> None:
    model = tiny_model("RRDBNet", scale=4)
    path = tmp_path / "tiny.safetensors"
    result = export_safetensors(model, path)

    tensors = load_file(str(path))
    expected = model.net.state_dict()
    assert set(tensors) == set(expected)
    assert {
        "conv_first.weight",
        "body.0.rdb1.conv1.weight",
        "body.0.rdb3.conv5.bias",
        "conv_up1.weight",
        "conv_last.bias",
    } <= set(tensors)
    assert not any(k.startswith(("params", "module.")) for k in tensors)
    for key, value in expected.items():
        assert tensors[key].dtype == torch.float32
        assert torch.equal(tensors[key], value), key
    assert result.num_tensors == len(expected) == 42  # 3 dense blocks x 5 convs x (w, b) + 6 trunk convs x (w, b)

    meta = metadata(path)
    assert meta["format"] == "pt"
    assert meta["arch"] == "RRDBNet"
    assert json.loads(meta["arch_kwargs"]) == dict(model.arch_kwargs)
    assert (meta["scale"], meta["net_scale"], meta["precision"], meta["name"], meta["source"]) == (
        "4",
        "4",
        "fp32",
        "tiny-RRDBNet-x4",
        "test",
    )
    assert meta["soccersr_version"]


def test_fp16_tensors(tmp_path: Path) -> None:
    model = tiny_model("SRVGGNetCompact")
    path = tmp_path / "half.safetensors"
    fp32_path = tmp_path / "full.safetensors"
    export_safetensors(model, path, fp16=True)
    export_safetensors(model, fp32_path)
    tensors = load_file(str(path))
    for key, value in model.net.state_dict().items():
        assert tensors[key].dtype == torch.float16
        assert torch.equal(tensors[key], value.half()), key
    assert {"body.0.weight", "body.1.weight", "body.6.bias"} <= set(tensors)  # conv, PReLU, last conv
    assert metadata(path)["precision"] == "fp16"
    assert path.stat().st_size < 0.6 * fp32_path.stat().st_size


@pytest.mark.parametrize(("arch", "scale"), [("RRDBNet", 4), ("RRDBNet", 2), ("SRVGGNetCompact", 4)])
@pytest.mark.parametrize("fp16", [False, True])
def test_round_trip_through_load_model(tmp_path: Path, arch: str, scale: int, fp16: bool) -> None:
    model = tiny_model(arch, scale=scale)
    path = tmp_path / f"{arch}.safetensors"
    export_safetensors(model, path, fp16=fp16)
    loaded = load_model(path)
    assert (loaded.arch, dict(loaded.arch_kwargs)) == (model.arch, dict(model.arch_kwargs))
    assert (loaded.net_scale, loaded.scale, loaded.size_multiple) == (model.net_scale, model.scale, model.size_multiple)
    for key, value in model.net.state_dict().items():
        got = loaded.net.state_dict()[key]
        assert got.dtype == torch.float32
        assert torch.equal(got, value.half().float() if fp16 else value), key
    x = torch.rand(1, 3, 12, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        diff = (loaded.net(x) - model.net(x)).abs().max().item()
    assert diff == 0.0 if not fp16 else diff < 1e-2


def test_non_finite_weight_is_refused(tmp_path: Path) -> None:
    model = tiny_model("SRVGGNetCompact")
    model.net.state_dict()["body.2.bias"][3] = float("nan")
    path = tmp_path / "bad.safetensors"
    with pytest.raises(ExportError, match=r"bad\.safetensors: weight 'body\.2\.bias' has NaN"):
        export_safetensors(model, path)
    assert list(tmp_path.iterdir()) == []


def test_fp16_overflow_is_refused(tmp_path: Path) -> None:
    model = tiny_model("SRVGGNetCompact")
    model.net.state_dict()["body.0.weight"][0, 0, 0, 0] = 1e6
    path = tmp_path / "big.safetensors"
    with pytest.raises(ExportError, match=r"big\.safetensors: weight 'body\.0\.weight' overflows float16"):
        export_safetensors(model, path, fp16=True)
    assert not path.exists()
    export_safetensors(model, path)  # fine in float32
    assert path.is_file()


def test_cli_export_safetensors_then_onnx(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = tiny_model("RRDBNet", scale=2)
    src = tmp_path / "src.safetensors"
    export_safetensors(model, src)

    out = tmp_path / "copy.safetensors"
    assert main(["export", "--model", str(src), "-o", str(out)]) == 0  # format from the suffix
    assert f"wrote {out}" in capsys.readouterr().out
    assert load_file(str(out)).keys() == load_file(str(src)).keys()

    onnx_out = tmp_path / "sub" / "model.onnx"
    assert main(["export", "--model", str(out), "--format", "onnx", "--opset", "18", "-o", str(onnx_out)]) == 0
    printed = capsys.readouterr().out
    assert "ONNX opset 18, fp32" in printed and onnx_out.is_file()


def test_cli_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # An unknown --model is a usage error (exit 2), as in `soccersr upscale`.
    assert main(["export", "--model", "no-such-model", "-o", str(tmp_path / "x.onnx")]) == 2
    assert "no-such-model" in capsys.readouterr().err
    assert main(["export", "--model", "x4plus", "-o", str(tmp_path / "x.bin")]) == 2
    assert "pass --format onnx or --format safetensors" in capsys.readouterr().err
    assert main(["export", "--model", "x4plus", "--opset", "17", "-o", str(tmp_path / "x.safetensors")]) == 2
    assert "--opset applies only to --format onnx" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_header_carries_overall_scale_and_activation(tmp_path: Path) -> None:
    """animevideov3-x2 style models (x4 network + fixed resize) and ReLU compact nets round-trip
    only through the header: the weights alone cannot say either."""
    from dataclasses import replace

    base = tiny_model("SRVGGNetCompact")
    x2 = replace(base, scale=2)
    export_safetensors(x2, tmp_path / "x2.safetensors")
    loaded = load_model(tmp_path / "x2.safetensors")
    assert (loaded.net_scale, loaded.scale, loaded.post_resize) == (4, 2.0, 0.5)

    kwargs = {**base.arch_kwargs, "act_type": "leakyrelu"}
    leaky = replace(base, net=build_network("SRVGGNetCompact", kwargs).eval(), arch_kwargs=kwargs)
    export_safetensors(leaky, tmp_path / "leaky.safetensors")
    assert load_model(tmp_path / "leaky.safetensors").arch_kwargs["act_type"] == "leakyrelu"


def test_header_scale_that_cannot_fit_is_refused(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    from soccersr.weights import WeightsError

    model = tiny_model("RRDBNet")
    path = tmp_path / "bad.safetensors"
    save_file(model.net.state_dict(), str(path), metadata={"scale": "8"})
    with pytest.raises(WeightsError, match="bad.safetensors: header scale 8 does not fit a x4 network"):
        load_model(path)


@pytest.mark.parametrize("scale", ["1e-09", "0.5", "0", "-4", "nan", "inf"])
def test_header_scale_below_x1_is_refused(tmp_path: Path, scale: str) -> None:
    """A 1e-9 scale used to load, then fail every image with "try a smaller --tile" (issue 13, item 14):
    a model is its network, then at most a fixed downscale, never below x1."""
    from safetensors.torch import save_file

    from soccersr.weights import WeightsError

    model = tiny_model("RRDBNet")
    path = tmp_path / "bad.safetensors"
    save_file(model.net.state_dict(), str(path), metadata={"scale": scale})
    with pytest.raises(
        WeightsError,
        match=rf"^{re.escape(str(path))}: header scale {scale} does not fit a x4 network "
        r"\(expected 1 to 4\)$",
    ):
        load_model(path)


def test_header_scale_between_x1_and_the_net_scale_loads(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    model = tiny_model("RRDBNet")
    save_file(model.net.state_dict(), str(tmp_path / "x1.safetensors"), metadata={"scale": "1"})
    assert load_model(tmp_path / "x1.safetensors").post_resize == 0.25
