"""The shipped soccer-x4plus: registered as the default, loads without the ncnn package, and still
beats stock x4plus on a crop of a game it never saw in training."""

from __future__ import annotations

import hashlib
import re
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import soccersr
import soccersr.weights
from soccersr import cli
from soccersr.degrade import degrade_image
from soccersr.io.images import read_image
from soccersr.metrics import psnr
from soccersr.weights import builtin, zoo


def test_soccer_x4plus_is_the_default_and_x4plus_stays_available() -> None:
    assert zoo.DEFAULT_MODEL == "soccer-x4plus"
    spec = zoo.find_spec("soccer-x4plus")
    assert spec is not None and spec.source == "package:soccer-x4plus.safetensors"
    assert zoo.find_spec("x4plus").source.startswith("ncnn:")
    assert (builtin.BUILTIN_DIR / "soccer-x4plus.safetensors").is_file()
    assert (builtin.BUILTIN_DIR / "soccer-x4plus.md").is_file(), "the model card ships beside the weights"


def test_the_card_names_the_shipped_file() -> None:
    weights = builtin.BUILTIN_DIR / "soccer-x4plus.safetensors"
    card = (builtin.BUILTIN_DIR / "soccer-x4plus.md").read_text()
    match = re.search(r"([\d,]+) bytes, sha256 `([0-9a-f]{64})`", card)
    assert match, "the card states the file's size and sha256"
    data = weights.read_bytes()
    assert (int(match[1].replace(",", "")), match[2]) == (len(data), hashlib.sha256(data).hexdigest())


@pytest.mark.parametrize("command", [["upscale", "photo.png", "-o", "out"], ["export", "-o", "model.onnx"]])
def test_the_commands_default_to_soccer_x4plus(
    command: list[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    cv2.imwrite(str(tmp_path / "photo.png"), np.zeros((8, 8, 3), np.uint8))
    monkeypatch.chdir(tmp_path)
    asked: list[str] = []

    def record(name, **_kwargs):
        asked.append(str(name))
        raise soccersr.weights.WeightsError("stop here")

    monkeypatch.setattr(soccersr.weights, "load_model", record)
    assert cli.main(command) != 0
    assert asked == ["soccer-x4plus"]


def test_soccer_x4plus_needs_no_ncnn_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, builtin.NCNN_PACKAGE, None)  # "import" of it now fails
    with pytest.raises(ImportError):
        __import__(builtin.NCNN_PACKAGE)
    model = soccersr.load_model("soccer-x4plus", cache_dir=Path("/nonexistent/soccersr-cache"))
    assert model.arch == "RRDBNet"


def test_soccer_x4plus_is_a_fine_tune_of_x4plus() -> None:
    soccer = soccersr.load_model("soccer-x4plus")
    stock = soccersr.load_model("x4plus")
    assert (soccer.arch, soccer.net_scale, soccer.scale) == ("RRDBNet", 4, 4)
    a, b = soccer.net.state_dict(), stock.net.state_dict()
    assert a.keys() == b.keys()
    assert sum(v.numel() for v in a.values()) == 16_697_987
    # Different weights (not a copy of x4plus), but a fine-tune: close to the start point.
    rel = torch.stack([(a[k] - b[k]).norm() / b[k].norm().clamp_min(1e-12) for k in a if a[k].dtype.is_floating_point])
    assert rel.max() > 1e-3
    assert rel.median() < 0.2


@pytest.mark.slow
def test_soccer_x4plus_beats_x4plus_on_a_held_out_crop(tiny_dir: Path) -> None:
    # 01_players is cut from game 4b770a, one of the three games held out of training
    # (recipes/soccer_x4plus/prepare.py). GT as in training: the frame downscaled x0.5.
    full = read_image(tiny_dir / "01_players.png", max_pixels=None).rgb
    hr = cv2.resize(full, (128, 128), interpolation=cv2.INTER_AREA)
    models = {name: soccersr.load_model(name) for name in ("soccer-x4plus", "x4plus")}
    scores: dict[str, list[float]] = {name: [] for name in models}
    for seed in range(4):
        lq = degrade_image(hr, scale=4, seed=seed)
        x = torch.from_numpy(lq).permute(2, 0, 1)[None]
        for name, model in models.items():
            with torch.no_grad():
                sr = model.net(x).clamp(0, 1)[0].permute(1, 2, 0).numpy()
            scores[name].append(psnr(sr, hr, crop_border=4))  # rounds to 8 bits itself
    soccer, stock = np.mean(scores["soccer-x4plus"]), np.mean(scores["x4plus"])
    assert soccer > stock, f"soccer-x4plus {soccer:.3f} dB vs x4plus {stock:.3f} dB"
    # The shipped file's behaviour, pinned (v1; 30.221 dB measured 2026-12-03): a different file, or a
    # changed degradation or metric, moves this even when the model still wins.
    assert soccer == pytest.approx(30.221, abs=0.05), f"soccer-x4plus: {soccer:.3f} dB on the pinned crop"
