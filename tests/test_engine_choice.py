"""Which engine runs a model: auto is OpenVINO on the CPU and PyTorch on CUDA; without openvino,
auto falls back to PyTorch with one info line and ``--engine openvino`` is a one-line error.
These run whether or not openvino is installed (its absence is simulated)."""

from __future__ import annotations

import importlib.util
import logging
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from soccersr.errors import MissingExtraError
from soccersr.infer import backends
from soccersr.infer.engine import Upscaler
from soccersr.infer.torch_runner import TorchRunner
from tiny_models import tiny_model

HAS_OPENVINO = importlib.util.find_spec("openvino") is not None


@pytest.mark.skipif(not HAS_OPENVINO, reason="openvino is not installed")
def test_auto_is_openvino_on_the_cpu_and_torch_on_cuda() -> None:
    assert backends.resolve_engine("auto", torch.device("cpu")) == "openvino"
    assert backends.resolve_engine("auto", torch.device("cuda", 0)) == "torch"
    assert backends.resolve_engine("torch", torch.device("cpu")) == "torch"
    with pytest.raises(ValueError, match="runs on the CPU"):
        backends.resolve_engine("openvino", torch.device("cuda", 0))


@pytest.mark.skipif(not HAS_OPENVINO, reason="openvino is not installed")
def test_upscaler_default_on_the_cpu_is_openvino(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from soccersr import hardware
    from soccersr.infer.openvino_runner import OpenVinoRunner

    monkeypatch.setenv("SOCCERSR_CACHE_DIR", str(tmp_path))
    model = tiny_model()
    upscaler = Upscaler(model, device="cpu")
    assert isinstance(upscaler.runner, OpenVinoRunner)
    assert upscaler.runner.precision == ("bf16" if hardware.native_bf16() else "fp32")
    forced = Upscaler(model, device="cpu", precision="fp32")
    assert forced.runner.precision == "fp32" and not forced.runner.reduced_precision
    assert isinstance(Upscaler(model, device="cpu", engine="torch").runner, TorchRunner)


@pytest.fixture
def no_openvino(monkeypatch: pytest.MonkeyPatch) -> None:
    """As if openvino were not installed: importing it fails."""
    for name in [m for m in sys.modules if m == "openvino" or m.startswith("openvino.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "openvino", None)
    backends._log_openvino_missing.cache_clear()


def test_without_openvino_auto_falls_back_to_torch_with_one_info_line(
    no_openvino: None, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="soccersr.infer.backends")
    model = tiny_model()
    for _ in range(3):
        assert isinstance(Upscaler(model, device="cpu").runner, TorchRunner)
    lines = [r for r in caplog.records if "openvino is not installed" in r.getMessage()]
    assert len(lines) == 1 and lines[0].levelno == logging.INFO


def test_without_openvino_asking_for_it_is_a_one_line_error(no_openvino: None) -> None:
    with pytest.raises(MissingExtraError) as caught:
        Upscaler(tiny_model(), device="cpu", engine="openvino")
    message = str(caught.value)
    assert "\n" not in message and "openvino" in message and "pip install" in message


def test_upscale_command_without_openvino(
    no_openvino: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from safetensors.torch import save_file

    from soccersr.cli import main

    weights = tmp_path / "tiny.safetensors"
    save_file(tiny_model("SRVGGNetCompact").net.state_dict(), str(weights))
    cv2.imwrite(str(tmp_path / "a.png"), np.full((6, 5, 3), 80, np.uint8))
    args = ["upscale", str(tmp_path / "a.png"), "-o", str(tmp_path / "out"), "--model", str(weights), "--no-progress"]
    assert main([*args, "--engine", "openvino"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "openvino" in err[0] and "pip install" in err[0]
    assert main([*args, "--device", "cpu"]) == 0  # auto: PyTorch
    assert (tmp_path / "out" / "a_x4.png").is_file()


def test_onnxruntime_engine_needs_an_onnx_file() -> None:
    with pytest.raises(ValueError, match="exported .onnx"):
        backends.create_runner(tiny_model(), engine="onnxruntime", device="cpu")
