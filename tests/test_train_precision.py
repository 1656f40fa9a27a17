"""Training precision: bf16 autocast + channels_last on CUDA and on CPUs with native bf16, fp32 elsewhere;
and the VGG16 perceptual loss keys of the config."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import soccersr.hardware
from soccersr.train.config import ConfigError, parse_config
from soccersr.train.step import StepOptions
from test_train_common import tiny_raw


@pytest.mark.parametrize("native", [True, False])
def test_auto_precision_follows_native_bf16_on_the_cpu(
    tmp_path: Path, tiny_dir: Path, native: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(soccersr.hardware, "native_bf16", lambda flags=None: native)
    cfg = parse_config(tiny_raw(tmp_path, tiny_dir, gan=True))
    opts = StepOptions.from_config(cfg, torch.device("cpu"))
    assert opts.amp_dtype == (torch.bfloat16 if native else None)
    assert opts.channels_last is native
    # Explicit settings win over the CPU's flags.
    raw = tiny_raw(tmp_path, tiny_dir, gan=True)
    raw["train"].update(precision="fp32", channels_last=True)
    opts = StepOptions.from_config(parse_config(raw), torch.device("cpu"))
    assert opts.amp_dtype is None and opts.channels_last is True
    raw["train"].update(precision="bf16", channels_last="auto")
    opts = StepOptions.from_config(parse_config(raw), torch.device("cpu"))
    assert opts.amp_dtype == torch.bfloat16 and opts.channels_last is True


def test_vgg16_perceptual_keys(tmp_path: Path, tiny_dir: Path) -> None:
    from soccersr.train.build import build_perceptual

    raw = tiny_raw(tmp_path, tiny_dir, gan=True)
    raw["train"]["perceptual_opt"] = {
        "vgg_type": "vgg16",
        "layer_weights": {"conv1_2": 0.1, "conv3_3": 1.0},
        "perceptual_weight": 0.02,
    }
    perceptual = build_perceptual(parse_config(raw))
    assert perceptual is not None and perceptual.vgg.vgg_type == "vgg16" and perceptual.vgg.input_norm == "caffe"
    assert perceptual.perceptual_weight == 0.02
    raw["train"]["perceptual_opt"]["input_norm"] = "imagenet"
    assert build_perceptual(parse_config(raw)).vgg.input_norm == "imagenet"
    # VGG19's layer names are not VGG16's, and the default layers are VGG19's.
    raw["train"]["perceptual_opt"] = {"vgg_type": "vgg16"}
    with pytest.raises(
        ConfigError, match=r"train.perceptual_opt.layer_weights.conv3_4: not a VGG16 layer \(e.g. conv3_3"
    ):
        parse_config(raw)
    raw["train"]["perceptual_opt"] = {"vgg_type": "vgg11"}
    with pytest.raises(ConfigError, match="train.perceptual_opt.vgg_type"):
        parse_config(raw)
