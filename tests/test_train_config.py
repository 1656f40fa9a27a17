"""Config parsing: official layout, typed values, and errors that name the full key path."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from soccersr.train.config import ConfigError, apply_overrides, dump_config, load_config, parse_config

REPO = Path(__file__).resolve().parents[1]


def _minimal(**train) -> dict:
    return {
        "name": "x",
        "model_type": "RealESRNetModel",
        "datasets": {"train": {"dataroot_gt": "hr", "meta_info": "meta.txt"}},
        "network_g": {"type": "RRDBNet", "num_block": 2},
        "train": {"total_iter": 10, "pixel_opt": {}, **train},
    }


def _error(raw: dict) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(raw)
    return str(info.value)


def test_defaults_are_the_official_values() -> None:
    cfg = parse_config(_minimal())
    assert cfg.train.optim_g.lr == 1e-4 and cfg.train.optim_g.betas == (0.9, 0.99)
    assert cfg.train.scheduler.milestones == (400000,) and cfg.train.scheduler.gamma == 0.5
    assert cfg.datasets.train.gt_size == 256 and cfg.datasets.train.queue_size == 180
    assert cfg.datasets.train.degradation.first.resize_range == (0.15, 1.5)
    assert cfg.network_g.kwargs == {"num_block": 2}
    assert cfg.experiment_dir == Path("experiments") / "x"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda r: r["train"].update(optim_g={"lrr": 1}), "train.optim_g.lrr: unknown key"),
        (
            lambda r: r["train"].update(total_iter="many"),
            "train.total_iter: input should be a valid integer, got 'many'",
        ),
        (lambda r: r["train"].update(total_iter=0), "train.total_iter: input should be greater than 0, got 0"),
        (
            lambda r: r["train"].update(optim_g={"lr": -1.0}),
            "train.optim_g.lr: input should be greater than 0, got -1.0",
        ),
        (lambda r: r["train"].update(optim_g={"betas": [0.9]}), "train.optim_g.betas: too few values, got 1"),
        (lambda r: r["train"].update(compile="yes"), "train.compile: input should be a valid boolean, got 'yes'"),
        (
            lambda r: r["train"].update(ema_decay=float("nan")),
            "train.ema_decay: input should be a finite number, got nan",
        ),
        (lambda r: r.update(manual_seed=-1), "manual_seed: input should be greater than or equal to 0, got -1"),
        (
            lambda r: r["train"].update(channels_last="x"),
            "train.channels_last: input should be 'auto' or a valid boolean",
        ),
        (lambda r: r["train"].update(optim_g=[1]), "train.optim_g: expected a mapping, got [1]"),
        (
            lambda r: r["network_g"].update(num_block="2"),
            "network_g.num_block: input should be a valid integer, got '2'",
        ),
        (
            lambda r: r["train"].update(precision="fp16"),
            "train.precision: input should be 'auto', 'bf16' or 'fp32', got 'fp16'",
        ),
        (
            lambda r: r["datasets"]["train"].update(resize_prob2=[0.5, 0.5, 0.5]),
            "datasets.train.resize_prob2: probabilities must sum to 1",
        ),
        (
            lambda r: r["datasets"]["train"].update(queue_size=7, batch_size_per_gpu=2),
            "datasets.train.queue_size: must be a positive multiple of batch_size_per_gpu (2), got 7",
        ),
        (
            lambda r: r["datasets"]["train"].update(io_backend={"type": "disk"}),
            "datasets.train.io_backend: unknown key (an official key soccersr does not use; remove it)",
        ),
        (lambda r: r["network_g"].update(num_blok=3), "network_g.num_blok: unknown key"),
        (
            lambda r: r["network_g"].update(type="SwinIR"),
            "network_g.type: expected one of ['RRDBNet', 'SRVGGNetCompact']",
        ),
        (lambda r: r["network_g"].update(scale=2), "network_g: upsamples x2 but scale is 4"),
        (lambda r: r["datasets"]["train"].pop("meta_info"), "datasets.train.meta_info: missing required key"),
        (
            lambda r: r.update(network_d={"type": "UNetDiscriminatorSN"}),
            "network_d: only used by model_type RealESRGANModel",
        ),
        (lambda r: r.update(model_type="RealESRGANModel"), "network_d: required for model_type RealESRGANModel"),
        (
            lambda r: r["train"]["pixel_opt"].update(type="MSELoss"),
            "train.pixel_opt.type: input should be 'L1Loss', got 'MSELoss'",
        ),
        (lambda r: r.update(val={"val_freq": 10}), "val: datasets.val and val (val_freq) must be given together"),
    ],
)
def test_errors_name_the_key_path(change, message: str) -> None:
    raw = _minimal()
    change(raw)
    assert _error(raw).startswith(message)


def test_gan_stage_checks() -> None:
    raw = _minimal()
    raw.update(model_type="RealESRGANModel", network_d={"type": "UNetDiscriminatorSN", "num_feat": 8})
    raw["train"].update(optim_d={}, gan_opt={}, perceptual_opt={"layer_weights": {"conv9_9": 1.0}})
    assert "train.perceptual_opt.layer_weights.conv9_9: not a VGG19 layer" in _error(raw)
    raw["train"]["perceptual_opt"] = {"style_weight": 1.0}
    assert "train.perceptual_opt.style_weight: the style (Gram) loss is not supported" in _error(raw)
    raw["train"]["perceptual_opt"] = {}
    raw["train"]["gt_usm"] = True
    assert "train.gt_usm: only used by model_type RealESRNetModel" in _error(raw)
    del raw["train"]["gt_usm"]
    cfg = parse_config(raw)
    assert cfg.is_gan and cfg.usm_targets() == (True, True, False)
    assert cfg.network_d is not None and cfg.network_d.kwargs == {"num_feat": 8}


def test_official_top_level_layout_is_accepted() -> None:
    raw = _minimal()
    raw.update(gt_size=128, queue_size=24, resize_prob=[0.1, 0.8, 0.1], noise_range2=[1, 10], gt_usm=False)
    cfg = parse_config(raw)
    assert cfg.datasets.train.gt_size == 128 and cfg.datasets.train.queue_size == 24
    assert cfg.datasets.train.degradation.first.resize_prob == (0.1, 0.8, 0.1)
    assert cfg.datasets.train.degradation.second.noise_range == (1, 10)
    assert cfg.train.gt_usm is False and not cfg.sharpen_gt_first
    raw["datasets"]["train"]["gt_size"] = 64
    assert "gt_size: given both at the top level and in datasets.train" in _error(raw)


def test_numbers_as_yaml_writes_them() -> None:
    # !!float 5e3 for an iteration count, and 1e-4 that YAML 1.1 reads as text.
    raw = yaml.safe_load("lr: 1e-4\nfreq: !!float 5e3\n")
    cfg = parse_config({**_minimal(optim_g={"lr": raw["lr"]}), "logger": {"save_checkpoint_freq": raw["freq"]}})
    assert cfg.train.optim_g.lr == 1e-4 and cfg.logger.save_checkpoint_freq == 5000
    assert "logger.print_freq: input should be a valid integer, got 2.5" in _error(
        {**_minimal(), "logger": {"print_freq": 2.5}}
    )


def test_overrides_use_yaml_values_never_eval() -> None:
    raw = apply_overrides(
        _minimal(),
        [
            "train.total_iter=100",
            "train.optim_g.betas=[0.5, 0.9]",
            "path.pretrain_network_g=__import__('os')",
            "logger.print_freq=7",
        ],
    )
    cfg = parse_config(raw)
    assert cfg.train.total_iter == 100 and cfg.train.optim_g.betas == (0.5, 0.9) and cfg.logger.print_freq == 7
    assert cfg.path.pretrain_network_g == "__import__('os')"  # plain text, not evaluated
    with pytest.raises(ConfigError, match="expected key.path=value"):
        apply_overrides({}, ["train.total_iter"])
    with pytest.raises(ConfigError, match="train.total_iter: input should be a valid integer, got 'abc'"):
        parse_config(apply_overrides(_minimal(), ["train.total_iter=abc"]))
    with pytest.raises(ConfigError, match="train.optim_g.lrr: unknown key"):
        parse_config(apply_overrides(_minimal(), ["train.optim_g.lrr=1"]))


def test_load_config_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.yml"
    path.write_text(yaml.safe_dump({**_minimal(), "trian": {}}))
    with pytest.raises(ConfigError, match=r"bad\.yml: trian: unknown key"):
        load_config(path)
    with pytest.raises(ConfigError, match=r"missing\.yml: cannot read"):
        load_config(tmp_path / "missing.yml")
    path.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match=r"bad\.yml: not valid YAML"):
        load_config(path)


def test_player_weight_needs_the_masks() -> None:
    with pytest.raises(ConfigError, match=r"train\.pixel_opt\.player_weight: needs the player masks"):
        load_config(REPO / "configs" / "soccer_x4plus.yml", ["train.pixel_opt.player_weight=4"])
    with pytest.raises(ConfigError, match=r"train\.pixel_opt\.player_weight: .*greater than or equal to 1"):
        load_config(REPO / "configs" / "soccer_x4plus.yml", ["train.pixel_opt.player_weight=0.5"])
    cfg = load_config(
        REPO / "configs" / "soccer_x4plus.yml",
        ["train.pixel_opt.player_weight=4", "datasets.train.dataroot_mask=data/masks"],
    )
    assert cfg.train.pixel_opt.player_weight == 4 and cfg.datasets.train.dataroot_mask == "data/masks"


def test_texture_losses_off_players_need_the_masks_and_the_gan_stage() -> None:
    with pytest.raises(ConfigError, match=r"train\.texture_losses_off_players: needs the player masks"):
        load_config(REPO / "configs" / "soccer_x4plus.yml", ["train.texture_losses_off_players=true"])
    masks = "datasets.train.dataroot_mask=data/masks"
    cfg = load_config(REPO / "configs" / "soccer_x4plus.yml", ["train.texture_losses_off_players=true", masks])
    assert cfg.train.texture_losses_off_players
    with pytest.raises(ConfigError, match=r"train\.texture_losses_off_players: only for model_type RealESRGANModel"):
        load_config(REPO / "configs" / "train_realesrnet_x4plus.yml", ["train.texture_losses_off_players=true", masks])


def test_dump_round_trips(tmp_path: Path) -> None:
    for name in ("finetune_soccer_x4plus.yml", "train_realesrnet_x4plus.yml"):
        cfg = load_config(REPO / "configs" / name, ["train.total_iter=7", "datasets.train.noise_range2=[2, 3]"])
        again = tmp_path / name
        again.write_text(dump_config(cfg))
        assert load_config(again) == cfg
        assert load_config(again).datasets.train.degradation.second.noise_range == (2, 3)
    mixed = load_config(REPO / "configs" / "soccer_x4plus.yml", ["datasets.train.web_prob=0.5"])
    assert mixed.datasets.train.degradation.web_prob == 0.5
    (tmp_path / "mixed.yml").write_text(dump_config(mixed))
    assert load_config(tmp_path / "mixed.yml") == mixed
    assert "web_prob" not in dump_config(load_config(REPO / "configs" / "soccer_x4plus.yml"))
