"""Shared helpers of the training tests (tiny configs on the tiny soccer crops) and the shipped-config tests."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from soccersr.train.config import load_config

REPO = Path(__file__).resolve().parents[1]


def write_meta(tmp_path: Path, soccer_crops: Path) -> Path:
    meta = tmp_path / "meta_info.txt"
    meta.write_text("".join(f"{p.name}\n" for p in sorted(soccer_crops.glob("*.png"))), encoding="utf-8")
    return meta


def tiny_raw(tmp_path: Path, soccer_crops: Path, *, gan: bool = False, total_iter: int = 4) -> dict[str, Any]:
    """A real but tiny run: 1-block RRDBNet with 8 features, 8-feature D, 32 px GT, batch 2, pool 4."""
    raw: dict[str, Any] = {
        "name": "tiny",
        "model_type": "RealESRGANModel" if gan else "RealESRNetModel",
        "scale": 4,
        "manual_seed": 0,
        "datasets": {
            "train": {
                "dataroot_gt": str(soccer_crops),
                "meta_info": str(write_meta(tmp_path, soccer_crops)),
                "gt_size": 32,
                "crop_pad_size": 64,
                "queue_size": 4,
                "batch_size_per_gpu": 2,
                "num_worker_per_gpu": 0,
            }
        },
        "network_g": {"type": "RRDBNet", "num_feat": 8, "num_block": 1, "num_grow_ch": 4},
        "path": {"experiments_root": str(tmp_path / "experiments")},
        "train": {
            "total_iter": total_iter,
            "optim_g": {"lr": 2e-3},
            "scheduler": {"milestones": [1000], "gamma": 0.5},
            "pixel_opt": {"loss_weight": 1.0},
        },
        "logger": {"print_freq": 1, "save_checkpoint_freq": 1000, "use_tb_logger": False},
    }
    if gan:
        raw["network_d"] = {"type": "UNetDiscriminatorSN", "num_feat": 8}
        raw["train"].update(optim_d={"lr": 1e-3}, perceptual_opt={}, gan_opt={}, allow_random_vgg=True)
    return copy.deepcopy(raw)


@pytest.mark.parametrize("name", ["finetune_soccer_x4plus.yml", "train_realesrnet_x4plus.yml"])
def test_shipped_configs_parse(name: str) -> None:
    cfg = load_config(REPO / "configs" / name)
    assert cfg.network_g.type == "RRDBNet" and cfg.network_g.kwargs["num_block"] == 23
    assert cfg.train.optim_g.betas == (0.9, 0.99) and cfg.train.ema_decay == 0.999
    assert cfg.datasets.train.batch_size_per_gpu == 12 and cfg.datasets.train.queue_size == 180
    assert cfg.datasets.train.degradation.second.blur_prob == 0.8
    assert cfg.logger.save_checkpoint_freq == 5000  # written as !!float 5e3
    if cfg.is_gan:
        assert cfg.path.pretrain_network_g == "x4plus"
        assert cfg.train.optim_g.lr == 1e-4 and cfg.train.optim_d is not None and cfg.train.optim_d.lr == 1e-4
        assert cfg.train.scheduler.milestones == (400000,) and cfg.train.total_iter == 400000
        assert cfg.train.gan_opt is not None and cfg.train.gan_opt.loss_weight == 0.1
        assert cfg.train.perceptual_opt is not None
        assert dict(cfg.train.perceptual_opt.layer_weights) == {
            "conv1_2": 0.1,
            "conv2_2": 0.1,
            "conv3_4": 1.0,
            "conv4_4": 1.0,
            "conv5_4": 1.0,
        }
        assert cfg.usm_targets() == (True, True, False)
    else:
        assert cfg.model_type == "RealESRNetModel" and cfg.sharpen_gt_first
        assert cfg.train.optim_g.lr == 2e-4 and cfg.train.total_iter == 1_000_000
        assert cfg.train.scheduler.milestones == (1_000_000,)


def test_soccer_recipe_config() -> None:
    """configs/soccer_x4plus.yml: the official fine-tune except what its header says it changes."""
    cfg = load_config(REPO / "configs" / "soccer_x4plus.yml")
    official = load_config(REPO / "configs" / "finetune_soccer_x4plus.yml")
    assert cfg.is_gan and cfg.path.pretrain_network_g == "x4plus"
    assert cfg.train.net_d_init_iters == 200 and cfg.train.time_limit_min == 5
    assert cfg.datasets.train.degradation == official.datasets.train.degradation
    assert (cfg.train.optim_g, cfg.train.optim_d, cfg.train.gan_opt) == (
        official.train.optim_g,
        official.train.optim_d,
        official.train.gan_opt,
    )
    assert cfg.datasets.train.meta_info == ".devrun/soccer/train/meta_info.txt"
    # v2: the Oxford VGG16 on its Caffe input, the official taps' analogues, the calibrated weight.
    p = cfg.train.perceptual_opt
    assert p is not None and (p.vgg_type, p.input_norm) == ("vgg16", "caffe")
    assert dict(p.layer_weights) == {"conv1_2": 0.1, "conv2_2": 0.1, "conv3_3": 1.0, "conv4_3": 1.0, "conv5_3": 1.0}
    calibration = json.loads((REPO / "recipes" / "soccer_x4plus" / "results" / "calibration.json").read_text())
    assert p.perceptual_weight == pytest.approx(calibration["chosen_weight"], abs=5e-5)
    assert cfg.datasets.train.crop_pad_size == 256 and cfg.train.precision == "auto"
