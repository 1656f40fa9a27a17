"""Golden outputs of the built-in models on a committed 24x32 crop of a real soccer frame.

The input is cut from tests/data/soccertrack/01_players.png (SoccerTrack demo clips, MIT): the
head and shirt of the player #42.

The expected 8-bit PNGs live in tests/golden/. A change in conversion, architecture or loading that
moves any output pixel by more than 1 level fails here (1 level is allowed: float rounding differs
between CPUs). To regenerate after an intended change, run

    SOCCERSR_REGEN_GOLDEN=1 python -m pytest tests/test_golden.py

which re-crops the input from the committed SoccerTrack crop and rewrites the files; review the
images before committing them.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from soccersr.weights import load_model

GOLDEN = Path(__file__).parent / "golden"
INPUT = GOLDEN / "players_24x32.png"
REGENERATE = os.environ.get("SOCCERSR_REGEN_GOLDEN") == "1"
CROP = (slice(78, 102), slice(126, 158))  # rows, cols of tests/data/soccertrack/01_players.png: player #42


def _read_rgb(path: Path) -> np.ndarray:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert bgr is not None, f"cannot read {path}"
    return np.ascontiguousarray(bgr[:, :, ::-1])


def _write_rgb(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), np.ascontiguousarray(rgb[:, :, ::-1]), [cv2.IMWRITE_PNG_COMPRESSION, 9])


@pytest.fixture(scope="module")
def golden_input(request: pytest.FixtureRequest) -> np.ndarray:
    if REGENERATE:
        soccer_crops: Path = request.getfixturevalue("soccer_crops")
        _write_rgb(INPUT, _read_rgb(soccer_crops / "01_players.png")[CROP])
    rgb = _read_rgb(INPUT)
    assert rgb.shape == (24, 32, 3)
    return rgb


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # One folder per test session, shared with test_weights_load: x4plus converts once per run.
    return tmp_path_factory.getbasetemp() / "shared-weights-cache"


def _upscale(name: str, rgb: np.ndarray, cache_dir: Path) -> np.ndarray:
    model = load_model(name, cache_dir=cache_dir)
    x = torch.from_numpy(rgb.astype(np.float32) / 255.0).permute(2, 0, 1)[None]
    with torch.no_grad():
        y = model.net(x)[0].clamp(0, 1)
    return (y * 255.0).round().to(torch.uint8).permute(1, 2, 0).numpy()


def _histogram(diff: np.ndarray) -> str:
    edges = [0, 1, 2, 3, 5, 9, 17, 33, 256]
    counts, _ = np.histogram(diff, bins=edges)
    return "  ".join(
        f"|d| {lo}" + (f"-{hi - 1}" if hi - 1 > lo else "") + f": {n}"
        for lo, hi, n in zip(edges, edges[1:], counts, strict=False)
    )


NAMES = ("x4plus", "x4plus-anime", "animevideov3")


@pytest.mark.parametrize("name", NAMES)
def test_golden_output(name, golden_input, cache_dir):
    out = _upscale(name, golden_input, cache_dir)
    path = GOLDEN / f"players_24x32_{name}.png"
    if REGENERATE:
        _write_rgb(path, out)
    expected = _read_rgb(path)
    assert out.shape == expected.shape == (96, 128, 3)
    diff = np.abs(out.astype(np.int16) - expected.astype(np.int16))
    if diff.max() > 1:
        pytest.fail(f"{name}: output differs from {path.name} by up to {diff.max()} levels; {_histogram(diff)}")
    # the goldens tell the models apart: another model's golden file would fail this test
    for other in NAMES:
        other_path = GOLDEN / f"players_24x32_{other}.png"
        if other != name and other_path.exists():
            assert np.abs(out.astype(np.int16) - _read_rgb(other_path)).max() > 1


ENGINES = ("torch", "openvino", "onnxruntime")


def _engine_upscale(engine: str, name: str, rgb: np.ndarray, cache_dir: Path, tmp_path: Path) -> np.ndarray:
    """The same golden input through the whole tiled engine of one backend, in fp32."""
    from soccersr.infer.engine import Upscaler

    model = load_model(name, cache_dir=cache_dir)
    if engine == "onnxruntime":
        pytest.importorskip("onnxruntime")
        from soccersr.export.onnx import to_onnx_bytes
        from soccersr.infer.onnx_backend import load_onnx_upscaler

        path = tmp_path / f"{name}.onnx"
        path.write_bytes(to_onnx_bytes(model))
        upscaler = load_onnx_upscaler(path, device="cpu", tile=0)
    else:
        if engine == "openvino":
            pytest.importorskip("openvino")
        upscaler = Upscaler(model, engine=engine, device="cpu", precision="fp32", tile=0)
    x = torch.from_numpy(rgb.astype(np.float32) / 255.0).permute(2, 0, 1)[None]
    y = upscaler.upscale(x)[0]
    return (y * 255.0).round().to(torch.uint8).permute(1, 2, 0).numpy()


@pytest.mark.slow
@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("name", NAMES)
def test_golden_output_of_every_engine_at_fp32(engine, name, golden_input, cache_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("SOCCERSR_CACHE_DIR", str(tmp_path / "cache"))  # OpenVINO's compiled models
    out = _engine_upscale(engine, name, golden_input, cache_dir, tmp_path)
    path = GOLDEN / f"players_24x32_{name}.png"
    expected = _read_rgb(path)
    assert out.shape == expected.shape == (96, 128, 3)
    diff = np.abs(out.astype(np.int16) - expected.astype(np.int16))
    if diff.max() > 1:
        pytest.fail(
            f"{name} with {engine}: output differs from {path.name} by up to {diff.max()} levels; {_histogram(diff)}"
        )
