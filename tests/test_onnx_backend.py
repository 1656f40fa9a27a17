"""ONNX Runtime backend: metadata contract, sessions, and the same output as the PyTorch engine."""

from __future__ import annotations

import re
import warnings
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnxruntime.capi.onnxruntime_pybind11_state import RuntimeException

from soccersr.export.onnx import export_onnx, model_info
from soccersr.infer.batch import BatchOptions, discover, run_batch
from soccersr.infer.engine import TileEngine, Upscaler
from soccersr.infer.onnx_backend import (
    OnnxModelError,
    OnnxModelInfo,
    OnnxRunner,
    create_session,
    load_onnx_upscaler,
)
from soccersr.infer.tiling import Size
from soccersr.weights.model import SRModel, build_network
from tiny_models import tiny_model

INFO = OnnxModelInfo(
    name="animevideov3-x2",
    arch="SRVGGNetCompact",
    arch_kwargs={"num_feat": 64, "num_conv": 16, "upscale": 4, "act_type": "prelu"},
    net_scale=4,
    scale=2.0,
    size_multiple=1,
    precision="fp16",
    source="ncnn:REALESRGAN_ANIMAVIDEOV3_UP2X",
    soccersr_version="0.1.0",
)


def test_metadata_round_trip_and_values() -> None:
    meta = INFO.to_metadata()
    assert meta["scale"] == "2" and meta["net_scale"] == "4" and meta["post_resize"] == "0.5"
    assert meta["architecture_kwargs"] == '{"act_type": "prelu", "num_conv": 16, "num_feat": 64, "upscale": 4}'
    assert meta["input_contract"] == (
        "RGB float32 [0,1] NCHW -> RGB float32 unclamped NCHW, x4; "
        "then a bicubic resize by 0.5 outside the graph (x2 overall)"
    )
    back = OnnxModelInfo.from_metadata(meta, origin="m.onnx")
    assert back == INFO
    assert back.post_resize == 0.5
    x3 = OnnxModelInfo.from_metadata({**meta, "scale": "3"}, origin="m.onnx")
    assert x3.post_resize == 0.75


def test_metadata_errors_name_the_file_and_key() -> None:
    meta = INFO.to_metadata()
    with pytest.raises(OnnxModelError, match=r"^other\.onnx: no soccersr metadata .*soccersr export --format onnx"):
        OnnxModelInfo.from_metadata({}, origin="other.onnx")
    with pytest.raises(OnnxModelError, match=r"^m\.onnx: soccersr metadata version '9' is not supported"):
        OnnxModelInfo.from_metadata({**meta, "soccersr_metadata_version": "9"}, origin="m.onnx")
    with pytest.raises(OnnxModelError, match=r"^m\.onnx: metadata key 'net_scale' is missing"):
        OnnxModelInfo.from_metadata({k: v for k, v in meta.items() if k != "net_scale"}, origin="m.onnx")
    with pytest.raises(OnnxModelError, match=r"^m\.onnx: unreadable metadata value"):
        OnnxModelInfo.from_metadata({**meta, "size_multiple": "two"}, origin="m.onnx")
    with pytest.raises(OnnxModelError, match=r"^m\.onnx: bad metadata \(net_scale=0"):
        OnnxModelInfo.from_metadata({**meta, "net_scale": "0"}, origin="m.onnx")
    with pytest.raises(OnnxModelError, match=r"^m\.onnx: metadata key 'precision' is 'int8'"):
        OnnxModelInfo.from_metadata({**meta, "precision": "int8"}, origin="m.onnx")
    with pytest.raises(OnnxModelError, match=r"^m\.onnx: metadata key 'architecture_kwargs' is not a JSON object"):
        OnnxModelInfo.from_metadata({**meta, "architecture_kwargs": "[1]"}, origin="m.onnx")


def test_unloadable_file_is_a_one_line_error(tmp_path: Path) -> None:
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"not a protobuf at all")
    with pytest.raises(OnnxModelError, match=r"broken\.onnx: ONNX Runtime cannot load it \(") as info:
        create_session(bad)
    assert "\n" not in str(info.value)


@pytest.mark.skipif("CUDAExecutionProvider" in ort.get_available_providers(), reason="CUDA provider installed")
def test_cuda_without_the_cuda_provider(tmp_path: Path) -> None:
    with pytest.raises(OnnxModelError, match=r"CUDA execution provider is not available .*onnxruntime-gpu"):
        create_session(tmp_path / "unused.onnx", device="cuda")


def test_bad_device_name(tmp_path: Path) -> None:
    with pytest.raises(OnnxModelError, match=r"unknown ONNX Runtime device 'tpu'"):
        create_session(tmp_path / "unused.onnx", device="tpu")


# --- The runner inside the engine ----------------------------------------------------------


@pytest.fixture(scope="module")
def rrdb_x4(tmp_path_factory: pytest.TempPathFactory) -> tuple[SRModel, Path]:
    model = tiny_model("RRDBNet")
    path = tmp_path_factory.mktemp("onnx") / "rrdb-x4.onnx"
    export_onnx(model, path)
    return model, path


def real_crop(soccer_crops: Path, height: int, width: int, index: int = 0) -> torch.Tensor:
    bgr = cv2.imread(str(sorted(soccer_crops.glob("*.png"))[index]), cv2.IMREAD_COLOR)
    rgb = bgr[30 : 30 + height, 50 : 50 + width, ::-1].astype(np.float32) / 255.0
    return torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))[None]


def test_runner_reads_metadata(rrdb_x4: tuple[SRModel, Path]) -> None:
    _model, path = rrdb_x4
    runner = OnnxRunner(path)
    assert runner.device == torch.device("cpu") and not runner.reduced_precision
    assert (runner.info.net_scale, runner.info.scale, runner.info.size_multiple) == (4, 4.0, 1)
    out = runner.run(torch.zeros(2, 3, 8, 12))
    assert out.shape == (2, 3, 32, 48) and out.dtype == torch.float32
    assert runner.auto_batch(Size(64, 64)) == 1
    assert 32 <= runner.auto_tile(16) <= 512


@pytest.mark.parametrize("tile", [0, 24])
def test_same_result_as_the_pytorch_engine(rrdb_x4: tuple[SRModel, Path], soccer_crops: Path, tile: int) -> None:
    model, path = rrdb_x4
    x = torch.cat([real_crop(soccer_crops, 30, 41, 0), real_crop(soccer_crops, 30, 41, 3)])
    calls: list[tuple[int, int]] = []
    ort_up = load_onnx_upscaler(path, device="cpu", tile=tile, tile_overlap=8)
    got = ort_up.upscale(x, progress=lambda done, total: calls.append((done, total)))
    want = Upscaler(model, device="cpu", engine="torch", precision="fp32", tile=tile, tile_overlap=8).upscale(x)
    assert ort_up.scale == 4.0 and got.shape == (2, 3, 120, 164)
    assert (got - want).abs().max().item() < 1e-4
    n_tiles = 2 * (1 if tile == 0 else 2 * 2)  # 30x41 in cores of <= 24: 2 x 2 per image
    assert calls[0] == (0, n_tiles) and calls[-1] == (n_tiles, n_tiles)


def test_post_resize_and_size_multiple_come_from_the_metadata(tmp_path: Path, soccer_crops: Path) -> None:
    # Compact x4 network as an x2 model (animevideov3-x2): the engine must apply the x0.5 resize.
    compact = tiny_model("SRVGGNetCompact", scale=4, model_scale=2)
    export_onnx(compact, tmp_path / "compact-x2.onnx")
    # RRDBNet x2: inputs padded to a multiple of 2 by the engine (odd size here).
    rrdb2 = tiny_model("RRDBNet", scale=2)
    export_onnx(rrdb2, tmp_path / "rrdb-x2.onnx")
    x = real_crop(soccer_crops, 33, 47, 1)
    for model, name in ((compact, "compact-x2.onnx"), (rrdb2, "rrdb-x2.onnx")):
        got = load_onnx_upscaler(tmp_path / name, device="cpu", tile=0).upscale(x)
        want = Upscaler(model, device="cpu", engine="torch", precision="fp32", tile=0).upscale(x)
        assert got.shape == want.shape == (1, 3, 66, 94), name
        assert (got - want).abs().max().item() < 1e-4, name


def test_out_of_memory_from_onnxruntime_makes_the_engine_split(
    rrdb_x4: tuple[SRModel, Path], soccer_crops: Path
) -> None:
    _model, path = rrdb_x4
    runner = OnnxRunner(path)
    real_session = runner._session
    seen: list[int] = []

    class TightMemory:
        """Allocation fails for batches of more than one window."""

        def run(self, names, feeds):
            seen.append(feeds["input"].shape[0])
            if feeds["input"].shape[0] > 1:
                raise RuntimeException(
                    "[ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION : Failed to allocate memory for requested buffer"
                )
            return real_session.run(names, feeds)

    runner._session = TightMemory()
    x = real_crop(soccer_crops, 40, 40, 2)
    got = TileEngine(runner, runner.info, tile=16, tile_overlap=4, batch_size=4).upscale(x)
    want = load_onnx_upscaler(path, device="cpu", tile=16, tile_overlap=4, batch_size=1).upscale(x)
    assert seen[:3] == [4, 2, 1]  # halved twice, then it fits
    assert torch.equal(got, want)


def test_other_runtime_errors_pass_through(rrdb_x4: tuple[SRModel, Path]) -> None:
    runner = OnnxRunner(rrdb_x4[1])

    class Broken:
        def run(self, names, feeds):
            raise RuntimeException("[ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION : Conv failed")

    runner._session = Broken()
    with pytest.raises(RuntimeException, match="Conv failed"):
        runner.run(torch.zeros(1, 3, 8, 8))


def test_fp16_file_through_the_engine(tmp_path: Path, soccer_crops: Path) -> None:
    model = tiny_model("SRVGGNetCompact")
    path = tmp_path / "half.onnx"
    export_onnx(model, path, fp16=True)
    runner = OnnxRunner(path)
    assert runner.reduced_precision
    x = real_crop(soccer_crops, 20, 28, 4)
    got = load_onnx_upscaler(path, device="cpu", precision="fp16").upscale(x)
    want = Upscaler(model, device="cpu", engine="torch", precision="fp32").upscale(x)
    assert 0 < (got - want).abs().max().item() < 1e-2
    with pytest.raises(RuntimeError, match=r"half\.onnx: the float16 graph overflowed .*without --fp16"):
        runner.run_fp32(torch.zeros(1, 3, 4, 4))
    with pytest.raises(OnnxModelError, match=r"half\.onnx: is a fp16 export; precision 'fp32' needs another export"):
        load_onnx_upscaler(path, precision="fp32")


def test_file_errors(tmp_path: Path, rrdb_x4: tuple[SRModel, Path]) -> None:
    with pytest.raises(OnnxModelError, match=r"missing\.onnx: no such file"):
        OnnxRunner(tmp_path / "missing.onnx")
    # A valid graph without soccersr metadata (e.g. from another exporter).
    proto = onnx.load(str(rrdb_x4[1]))
    del proto.metadata_props[:]
    bare = tmp_path / "bare.onnx"
    onnx.save(proto, str(bare))
    with pytest.raises(OnnxModelError, match=r"bare\.onnx: no soccersr metadata"):
        OnnxRunner(bare)


def test_same_output_files_as_the_pytorch_engine(
    rrdb_x4: tuple[SRModel, Path], soccer_crops: Path, tmp_path: Path
) -> None:
    """Whole path: read PNG -> engine -> write PNG; the files agree within 1 level of 8 bits."""
    model, path = rrdb_x4
    src = tmp_path / "in"
    src.mkdir()
    for i, name in enumerate(("a.png", "b.png")):
        crop = (
            (real_crop(soccer_crops, 37, 53, i)[0].numpy().transpose(1, 2, 0)[:, :, ::-1] * 255)
            .round()
            .astype(np.uint8)
        )
        cv2.imwrite(str(src / name), crop)
    jobs, failures = discover([src])
    assert len(jobs) == 2 and not failures
    engines = {
        "torch": Upscaler(model, device="cpu", engine="torch", precision="fp32", tile=0),
        "onnxruntime": load_onnx_upscaler(path, device="cpu", tile=0),
    }
    for name, upscaler in engines.items():
        summary = run_batch(jobs, upscaler, BatchOptions(output_dir=tmp_path / name, suffix="x4", progress=False))
        assert (summary.done, summary.failed) == (2, 0)
    for name in ("a_x4.png", "b_x4.png"):
        a = cv2.imread(str(tmp_path / "torch" / name), cv2.IMREAD_UNCHANGED).astype(int)
        b = cv2.imread(str(tmp_path / "onnxruntime" / name), cv2.IMREAD_UNCHANGED).astype(int)
        assert a.shape == b.shape == (148, 212, 3)
        assert np.abs(a - b).max() <= 1
        assert a.std() > 5  # a real picture, not a flat one


def test_upscale_command_picks_onnxruntime_for_an_onnx_model(
    rrdb_x4: tuple[SRModel, Path], soccer_crops: Path, tmp_path: Path
) -> None:
    """`soccersr upscale --model FILE.onnx` (engine auto) and `--model FILE.safetensors` write the same
    image within 1 level; a wrong --engine for the file is a one-line error, not a traceback."""
    from safetensors.torch import save_file

    from soccersr.cli import main

    model, onnx_path = rrdb_x4
    weights = tmp_path / "tiny.safetensors"
    save_file(model.net.state_dict(), str(weights))
    src = tmp_path / "in"
    src.mkdir()
    crop = (real_crop(soccer_crops, 30, 41)[0].numpy().transpose(1, 2, 0)[:, :, ::-1] * 255).round().astype(np.uint8)
    cv2.imwrite(str(src / "a.png"), crop)
    for name, model_file in (("onnx", onnx_path), ("torch", weights)):
        assert (
            main(
                [
                    "upscale",
                    str(src),
                    "-o",
                    str(tmp_path / name),
                    "--model",
                    str(model_file),
                    "--device",
                    "cpu",
                    "--no-progress",
                ]
            )
            == 0
        )
    a = cv2.imread(str(tmp_path / "onnx" / "a_x4.png")).astype(int)
    b = cv2.imread(str(tmp_path / "torch" / "a_x4.png")).astype(int)
    assert a.shape == b.shape == (120, 164, 3) and np.abs(a - b).max() <= 1
    assert (
        main(
            [
                "upscale",
                str(src),
                "-o",
                str(tmp_path / "bad"),
                "--model",
                str(weights),
                "--engine",
                "onnxruntime",
                "--no-progress",
            ]
        )
        == 2
    )


# --- Graphs that do not keep the engine's contract are refused at load (issue 13, item 4) ---------


def _onnx_file(
    net: torch.nn.Module, path: Path, info: OnnxModelInfo, *, dynamic: dict[int, str], channels: int = 3
) -> Path:
    """``net`` exported with only the ``dynamic`` input axes and the metadata of ``info``."""
    output_axes = {d: f"out_{name}" for d, name in dynamic.items()}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter, as export.onnx uses it
        torch.onnx.export(
            net,
            (torch.zeros(1, channels, 8, 8),),
            str(path),
            dynamo=False,
            opset_version=17,
            input_names=["input"],
            output_names=["output"],
            dynamic_axes={"input": dynamic, "output": output_axes},
        )
    proto = onnx.load(str(path))
    onnx.helper.set_model_props(proto, info.to_metadata())
    onnx.save(proto, str(path))
    return path


ALL_DYNAMIC = {0: "batch", 2: "height", 3: "width"}


@pytest.mark.parametrize(
    ("dynamic", "fixed"),
    [
        ({}, r"\[1, 3, 8, 8\]"),
        ({0: "batch"}, r"\['batch', 3, 8, 8\]"),
        ({2: "height", 3: "width"}, r"\[1, 3, 'height', 'width'\]"),
    ],
)
def test_fixed_size_input_is_refused_at_load(tmp_path: Path, dynamic: dict[int, str], fixed: str) -> None:
    model = tiny_model("RRDBNet")
    path = _onnx_file(model.net, tmp_path / "fixed.onnx", model_info(model), dynamic=dynamic)
    with pytest.raises(
        OnnxModelError,
        match=rf"^{re.escape(str(path))}: input shape is {fixed}; .*batch, height "
        r"and width must be dynamic \(soccersr export --format onnx\)$",
    ):
        load_onnx_upscaler(path, device="cpu")


def test_one_channel_input_is_refused_at_load(tmp_path: Path) -> None:
    gray = tiny_model("SRVGGNetCompact")
    kwargs = {**gray.arch_kwargs, "num_in_ch": 1, "num_out_ch": 1}
    net = build_network("SRVGGNetCompact", kwargs).eval()
    info = replace(model_info(gray), arch_kwargs=kwargs)
    path = _onnx_file(net, tmp_path / "gray.onnx", info, dynamic=ALL_DYNAMIC, channels=1)
    with pytest.raises(
        OnnxModelError,
        match=r"gray\.onnx: input shape is \['batch', 1, 'height', 'width'\]; "
        r"expected 3 \(RGB\) channels",
    ):
        load_onnx_upscaler(path, device="cpu")


def test_graph_whose_scale_differs_from_its_metadata_is_refused_at_load(tmp_path: Path) -> None:
    x2 = tiny_model("SRVGGNetCompact", scale=2)
    claims_x4 = model_info(tiny_model("SRVGGNetCompact", scale=4))
    path = _onnx_file(x2.net, tmp_path / "x2.onnx", claims_x4, dynamic=ALL_DYNAMIC)
    with pytest.raises(
        OnnxModelError,
        match=r"x2\.onnx: the graph turns a 1x3x8x8 input into 1x3x16x16, "
        r"but its metadata says x4 \(1x3x32x32\)",
    ):
        load_onnx_upscaler(path, device="cpu")


def test_refused_graph_fails_one_image_not_the_batch_with_a_traceback(tmp_path: Path) -> None:
    """Before the load-time check, the first image raised onnxruntime's InvalidArgument."""
    from soccersr.cli import main

    model = tiny_model("RRDBNet")
    path = _onnx_file(model.net, tmp_path / "fixed.onnx", model_info(model), dynamic={})
    src = tmp_path / "in"
    src.mkdir()
    cv2.imwrite(str(src / "a.png"), np.full((10, 12, 3), 90, np.uint8))
    assert (
        main(
            ["upscale", str(src), "-o", str(tmp_path / "out"), "--model", str(path), "--device", "cpu", "--no-progress"]
        )
        == 2
    )
    assert not (tmp_path / "out" / "a_x4.png").exists()


def test_metadata_scale_must_be_a_fraction_of_the_net_scale() -> None:
    """A 1e-9 scale made every image fail later with a misleading "try a smaller --tile" (issue 13, item 14)."""
    meta = INFO.to_metadata()
    for bad in ("1e-09", "0.5", "5", "nan", "inf"):
        with pytest.raises(
            OnnxModelError,
            match=rf"^m\.onnx: metadata scale {bad} does not fit a x4 network "
            r"\(expected 1 to 4\)$",
        ):
            OnnxModelInfo.from_metadata({**meta, "scale": bad}, origin="m.onnx")
    assert OnnxModelInfo.from_metadata({**meta, "scale": "1"}, origin="m.onnx").post_resize == 0.25


def test_unknown_architecture_in_metadata_is_a_one_line_error() -> None:
    with pytest.raises(
        OnnxModelError,
        match=r"^m\.onnx: metadata architecture 'SwinIR' is not one of "
        r"\['RRDBNet', 'SRVGGNetCompact'\]$",
    ):
        OnnxModelInfo.from_metadata({**INFO.to_metadata(), "architecture": "SwinIR"}, origin="m.onnx")


def test_onnx_model_error_is_a_soccersr_error_with_exit_code_2() -> None:
    from soccersr.errors import SoccersrError

    assert issubclass(OnnxModelError, SoccersrError) and OnnxModelError.exit_code == 2
