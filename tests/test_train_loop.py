"""Whole runs on the tiny soccer crops: the loss goes down, the LR schedule, exact resume, the GAN stage."""

from __future__ import annotations

import copy
import csv
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml

from soccersr.cli import main
from soccersr.train import ConfigError, TrainError, load_config, parse_config, train
from soccersr.train.checkpoint import list_states
from test_train_common import tiny_raw


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_realesrnet_l1_goes_down_and_lr_steps_at_the_milestone(tmp_path: Path, soccer_crops: Path, capsys) -> None:
    raw = tiny_raw(tmp_path, soccer_crops, total_iter=20)
    raw["train"]["scheduler"] = {"milestones": [14], "gamma": 0.5}
    config = tmp_path / "esrnet.yml"
    config.write_text(yaml.safe_dump(raw))
    assert main(["train", "--config", str(config), "--device", "cpu", "-o", "train.optim_g.lr=0.003"]) == 0
    assert "done: iteration 20" in capsys.readouterr().out
    exp = tmp_path / "experiments" / "tiny"
    rows = _rows(exp / "logs" / "train.csv")
    assert [int(r["iteration"]) for r in rows] == list(range(1, 21))
    losses = [float(r["l_g_pix"]) for r in rows]
    first, last = np.mean(losses[:5]), np.mean(losses[-5:])
    print(f"Real-ESRNet tiny run: mean L1 of iterations 1-5 = {first:.4f}, 16-20 = {last:.4f}")
    assert last < 0.75 * first
    # MultiStepLR really drives Adam: 3e-3 up to the milestone, then halved.
    assert [float(r["lr_g"]) for r in rows] == [0.003] * 14 + [0.0015] * 6
    state = torch.load(exp / "training_states" / "20.state", weights_only=True)
    assert state["opt_g"]["param_groups"][0]["lr"] == pytest.approx(0.0015)  # what iteration 21 would use
    assert load_config(exp / "config.yml").train.optim_g.lr == 0.003  # the resolved config, overrides included
    assert set(torch.load(exp / "models" / "net_g_20.pth", weights_only=True)) == {"params_ema"}  # the lean default


def _val_set(tmp_path: Path, soccer_crops: Path) -> tuple[Path, Path]:
    lq_dir, hr_dir = tmp_path / "val" / "lq", tmp_path / "val" / "hr"
    lq_dir.mkdir(parents=True)
    hr_dir.mkdir(parents=True)
    for path in sorted(soccer_crops.glob("*.png"))[:2]:
        hr = cv2.imread(str(path))[:64, :64]
        cv2.imwrite(str(hr_dir / path.name), hr)
        cv2.imwrite(str(lq_dir / path.name), cv2.resize(hr, (16, 16), interpolation=cv2.INTER_AREA))
    return lq_dir, hr_dir


def _rgb(path: Path) -> np.ndarray:
    return cv2.imread(str(path))[:, :, ::-1].astype(np.float32) / 255


def _tensors(path: Path) -> dict[str, torch.Tensor]:
    def walk(obj: object, prefix: str) -> dict[str, torch.Tensor]:
        if isinstance(obj, torch.Tensor):
            return {prefix: obj}
        if isinstance(obj, dict):
            return {k: v for key, value in obj.items() for k, v in walk(value, f"{prefix}/{key}").items()}
        if isinstance(obj, (list, tuple)):
            return {k: v for i, value in enumerate(obj) for k, v in walk(value, f"{prefix}/{i}").items()}
        return {}

    return walk(torch.load(path, weights_only=True), "")


def test_realesrgan_resume_is_bit_identical_even_after_a_corrupt_checkpoint(tmp_path: Path, soccer_crops: Path) -> None:
    from soccersr.weights import load_model

    lq_dir, hr_dir = _val_set(tmp_path, soccer_crops)
    raw = tiny_raw(tmp_path, soccer_crops, gan=True, total_iter=4)
    raw["datasets"]["val"] = {"dataroot_lq": str(lq_dir), "dataroot_gt": str(hr_dir)}
    raw["val"] = {"val_freq": 2, "save_img": True}
    raw["logger"].update(save_checkpoint_freq=2, keep_checkpoints=2, save_weights="all")

    # Uninterrupted: 4 iterations of the GAN stage (random VGG allowed), validated at 2 and 4.
    straight = parse_config({**raw, "path": {"experiments_root": str(tmp_path / "a")}})
    assert train(straight, device="cpu").iteration == 4
    a = tmp_path / "a" / "tiny"
    rows = _rows(a / "logs" / "train.csv")
    assert all(float(r["out_d_real"]) == float(r["out_d_real"]) and r["l_g_gan"] for r in rows)
    val = _rows(a / "logs" / "val.csv")
    assert [r["iteration"] for r in val] == ["2", "4"]
    # The logged PSNR is that of the saved EMA outputs against the HR crops (Y channel, border 4).
    from soccersr.metrics import psnr

    expected = np.mean(
        [
            psnr(_rgb(a / "visualization" / hr.stem / f"{hr.stem}_4.png"), _rgb(hr), crop_border=4)
            for hr in sorted(hr_dir.glob("*.png"))
        ]
    )
    assert float(val[-1]["psnr"]) == pytest.approx(expected, abs=1e-4)
    assert 0 < float(val[-1]["ssim"]) <= 1
    assert load_model(a / "models" / "net_g_4.pth").arch_kwargs["num_feat"] == 8
    with pytest.raises(TrainError, match="already holds training states; pass --auto-resume"):
        train(straight, device="cpu")

    # Interrupted after iteration 3; its newest checkpoint is then torn (as by a full disk), so the
    # resumed run must fall back to iteration 2 and replay 3 and 4 exactly.
    b_root = {"experiments_root": str(tmp_path / "b")}
    train(parse_config({**raw, "path": b_root, "train": {**raw["train"], "total_iter": 3}}), device="cpu")
    b = tmp_path / "b" / "tiny"
    assert [i for i, _ in list_states(b)] == [2, 3]
    torn = b / "training_states" / "3.state"
    torn.write_bytes(torn.read_bytes()[:1000])
    assert train(parse_config({**raw, "path": b_root}), auto_resume=True, device="cpu").iteration == 4

    for name in ("models/net_g_4.pth", "models/net_d_4.pth", "training_states/4.state"):
        ta, tb = _tensors(a / name), _tensors(b / name)
        assert ta.keys() == tb.keys() and len(ta) > 10
        different = [k for k in ta if not torch.equal(ta[k], tb[k])]
        assert not different, f"{name}: {different[:3]}"
    # The logs read as one run: the rows of the lost iteration 3 were replaced.
    assert [r["iteration"] for r in _rows(b / "logs" / "train.csv")] == ["1", "2", "3", "4"]
    assert [r["iteration"] for r in _rows(b / "logs" / "val.csv")] == ["2", "4"]


def test_web_mix_and_player_weighted_l1_run_and_resume_exactly(tmp_path: Path, soccer_crops: Path) -> None:
    # soccersr's two additions together: half the samples degraded the web way, and the L1 weighing the
    # player pixels 4x, their masks riding through the crop and the pool (which a resume restores).
    masks = tmp_path / "masks"
    masks.mkdir()
    for path in sorted(soccer_crops.glob("*.png")):
        height, width = cv2.imread(str(path)).shape[:2]
        mask = np.zeros((height, width), np.uint8)
        mask[height // 4 : height // 2, width // 3 : width // 2] = 255
        cv2.imwrite(str(masks / path.name), mask)
    raw = tiny_raw(tmp_path, soccer_crops, gan=True, total_iter=4)
    raw["datasets"]["train"].update(web_prob=0.5, dataroot_mask=str(masks))
    raw["train"]["pixel_opt"]["player_weight"] = 4.0
    raw["logger"].update(save_checkpoint_freq=2, keep_checkpoints=2)
    assert train(parse_config({**raw, "path": {"experiments_root": str(tmp_path / "a")}}), device="cpu").iteration == 4
    b_root = {"experiments_root": str(tmp_path / "b")}
    train(parse_config({**raw, "path": b_root, "train": {**raw["train"], "total_iter": 2}}), device="cpu")
    assert train(parse_config({**raw, "path": b_root}), auto_resume=True, device="cpu").iteration == 4
    ta, tb = (_tensors(root / "tiny" / "training_states" / "4.state") for root in (tmp_path / "a", tmp_path / "b"))
    assert ta["/ranks/0/pool/gt"].shape[1] == 4  # the GT and its player mask
    assert ta.keys() == tb.keys() and all(torch.equal(ta[k], tb[k]) for k in ta)
    # Switching the masks off for the rest of a run is refused at resume, by name.
    plain = copy.deepcopy(raw)
    del plain["datasets"]["train"]["dataroot_mask"]
    plain["train"].update(total_iter=6, pixel_opt={"loss_weight": 1.0})
    with pytest.raises(TrainError, match="saved GT pairs have 4 channels, this run's have 3"):
        train(parse_config({**plain, "path": b_root}), auto_resume=True, device="cpu")


def test_finetune_starts_from_pretrained_g_ema_and_d(tmp_path: Path, soccer_crops: Path) -> None:
    from soccersr.archs import RRDBNet, UNetDiscriminatorSN

    torch.manual_seed(11)
    params, params_ema = (
        RRDBNet(num_feat=8, num_block=1, num_grow_ch=4),
        RRDBNet(num_feat=8, num_block=1, num_grow_ch=4),
    )
    d = UNetDiscriminatorSN(num_feat=8)
    g_file, d_file = tmp_path / "net_g_pre.pth", tmp_path / "net_d_pre.pth"
    torch.save({"params": params.state_dict(), "params_ema": params_ema.state_dict()}, g_file)
    torch.save({"params": d.state_dict()}, d_file)
    raw = tiny_raw(tmp_path, soccer_crops, gan=True, total_iter=1)
    raw["path"].update(pretrain_network_g=str(g_file), param_key_g="params", pretrain_network_d=str(d_file))
    raw["logger"]["save_weights"] = "all"  # G's params and D too, to compare them with the files
    raw["train"]["optim_g"]["lr"] = raw["train"]["optim_d"]["lr"] = 1e-9  # one step that barely moves
    train(parse_config(raw), device="cpu")
    out = torch.load(tmp_path / "experiments" / "tiny" / "models" / "net_g_1.pth", weights_only=True)
    for key, value in params.state_dict().items():
        torch.testing.assert_close(out["params"][key], value, atol=1e-6, rtol=0)  # G = the file's "params"
        # The EMA starts from the file's params_ema (official), then takes one 0.999 step towards G.
        torch.testing.assert_close(
            out["params_ema"][key], 0.999 * params_ema.state_dict()[key] + 0.001 * value, atol=1e-6, rtol=0
        )
    d_out = torch.load(tmp_path / "experiments" / "tiny" / "models" / "net_d_1.pth", weights_only=True)["params"]
    torch.testing.assert_close(d_out["conv9.weight"], d.state_dict()["conv9.weight"], atol=1e-6, rtol=0)

    raw["path"]["pretrain_network_d"] = str(g_file)  # a generator file given as D
    raw["name"] = "wrong_d"
    with pytest.raises(
        ConfigError, match=r"path\.pretrain_network_d: .*net_g_pre\.pth does not fit the configured network"
    ):
        train(parse_config(raw), device="cpu")


def test_gan_run_without_vgg_weights_stops_with_where_to_put_them(
    tmp_path: Path, soccer_crops: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    raw = tiny_raw(tmp_path, soccer_crops, gan=True)
    raw["train"]["allow_random_vgg"] = False
    config = tmp_path / "gan.yml"
    config.write_text(yaml.safe_dump(raw))
    assert main(["train", "--config", str(config), "--device", "cpu"]) == 1
    err = capsys.readouterr().err
    assert "VGG19 ImageNet weights not found" in err
    assert str(tmp_path / "torch_home" / "hub" / "checkpoints" / "vgg19-dcbb9e9d.pth") in err
    # Without the perceptual loss no VGG is needed.
    assert (
        main(
            [
                "train",
                "--config",
                str(config),
                "--device",
                "cpu",
                "-o",
                "name=no_vgg",
                "-o",
                "train.perceptual_opt.perceptual_weight=0",
                "-o",
                "train.total_iter=1",
            ]
        )
        == 0
    )


def test_cli_reports_config_errors_with_exit_code_2(tmp_path: Path, soccer_crops: Path, capsys) -> None:
    raw = tiny_raw(tmp_path, soccer_crops)
    raw["train"]["optim_g"]["lrr"] = 1
    config = tmp_path / "bad.yml"
    config.write_text(yaml.safe_dump(raw))
    assert main(["train", "--config", str(config)]) == 2
    assert f"soccersr train: error: {config}: train.optim_g.lrr: unknown key" in capsys.readouterr().err
    assert main(["train", "--config", str(tmp_path / "missing.yml")]) == 2


def test_time_limit_stops_early_with_a_checkpoint_and_export(tmp_path: Path, soccer_crops: Path, monkeypatch) -> None:
    """A fixed-length GPU session: the run ends at a logging step once the time is up, and what it
    trained is saved exactly as at total_iter."""
    import soccersr.train.loop as loop

    clock = iter(float(t) for t in range(0, 10_000, 30))  # every monotonic() call advances 30 s
    monkeypatch.setattr(loop.time, "monotonic", lambda: next(clock))
    raw = tiny_raw(tmp_path, soccer_crops, total_iter=1000)
    raw["train"]["time_limit_min"] = 1.0
    raw["logger"]["print_freq"] = 2
    cfg = parse_config(raw)
    result = train(cfg, device="cpu")
    # deadline = 0 + 60 s; checks at iterations 2 (t=30: go on) and 4 (t=60: not past), 6 (t=90: stop).
    assert result.iteration == 6
    exp = tmp_path / "experiments" / "tiny"
    assert list_states(exp)[-1][0] == 6
    assert (exp / "models" / "net_g_6.pth").is_file()


def test_resume_with_another_pool_size_is_a_clear_error(tmp_path: Path, soccer_crops: Path, capsys) -> None:
    raw = tiny_raw(tmp_path, soccer_crops, total_iter=2)
    config = tmp_path / "tiny.yml"
    config.write_text(yaml.safe_dump(raw))
    assert main(["train", "--config", str(config), "--device", "cpu"]) == 0
    capsys.readouterr()
    code = main(
        [
            "train",
            "--config",
            str(config),
            "--device",
            "cpu",
            "--auto-resume",
            "-o",
            "train.total_iter=4",
            "-o",
            "datasets.train.queue_size=6",
        ]
    )
    assert code == 1
    assert "2.state: its pair pool does not fit this config" in capsys.readouterr().err
