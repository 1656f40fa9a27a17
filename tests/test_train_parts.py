"""Building blocks of training: EMA, LR schedule, losses, VGG19 loading, checkpoints, per-rank batches."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from soccersr.archs import RRDBNet
from soccersr.train import checkpoint as ckpt
from soccersr.train.build import build_optimizer, build_scheduler, lr_multiplier
from soccersr.train.config import SchedulerConfig
from soccersr.train.data import ShardedBatchSampler
from soccersr.train.ema import ema_update_, make_ema
from soccersr.train.losses import PerceptualLoss, gan_loss, l1_loss
from soccersr.train.vgg import VGG19_LAYERS, VGG19Features, VGGWeightsError, build_vgg, default_weights_path


def _tiny_g(seed: int = 0) -> RRDBNet:
    torch.manual_seed(seed)
    return RRDBNet(num_feat=8, num_block=1, num_grow_ch=4)


# ---------------------------------------------------------------- EMA


def test_ema_follows_the_decay_formula_in_place() -> None:
    g = _tiny_g()
    ema = make_ema(g)
    ema_tensors_before = [p for p in ema.parameters()]  # the same tensor objects must be updated
    opt = torch.optim.Adam(g.parameters(), lr=1e-2)
    g(torch.rand(1, 3, 8, 8)).mean().backward()
    opt.step()
    before = {k: v.clone().double() for k, v in ema.state_dict().items()}
    ema_update_(ema, g, 0.999)
    for name, value in ema.state_dict().items():
        expected = 0.999 * before[name] + 0.001 * dict(g.named_parameters())[name].detach().double()
        torch.testing.assert_close(value.double(), expected, rtol=0, atol=1e-7)
    assert all(a is b for a, b in zip(ema_tensors_before, ema.parameters(), strict=True))
    moved = sum((a - b).abs().sum() for a, b in zip(ema.parameters(), g.parameters(), strict=True))
    assert moved > 0  # the EMA lags behind G
    assert not any(p.requires_grad for p in ema.parameters())
    with pytest.raises(ValueError, match="parameter names differ"):
        ema_update_(ema, RRDBNet(num_feat=8, num_block=2, num_grow_ch=4), 0.9)


# ---------------------------------------------------------------- LR schedule


def test_lr_multiplier_multistep_and_warmup() -> None:
    m = dict(milestones=(3, 5), gamma=0.5, warmup_iter=-1)
    assert [lr_multiplier(s, **m) for s in range(7)] == [1, 1, 1, 0.5, 0.5, 0.25, 0.25]
    assert [lr_multiplier(s, milestones=(100,), gamma=0.5, warmup_iter=4) for s in range(5)] == [0.25, 0.5, 0.75, 1, 1]


def test_scheduler_drives_the_optimiser_lr() -> None:
    g = _tiny_g()
    opt = build_optimizer(
        g.parameters(), type("O", (), {"lr": 1e-3, "betas": (0.9, 0.99), "weight_decay": 0.0})(), torch.device("cpu")
    )  # duck-typed OptimConfig
    sched = build_scheduler(opt, SchedulerConfig(milestones=(2,), gamma=0.1), warmup_iter=-1)
    seen = []
    for _ in range(4):
        seen.append(opt.param_groups[0]["lr"])  # the lr the optimiser steps with
        opt.step()
        sched.step()
    assert seen == pytest.approx([1e-3, 1e-3, 1e-4, 1e-4])
    # Resumable: a fresh optimiser + scheduler continue at the same lr.
    opt2 = torch.optim.Adam(g.parameters(), lr=1e-3)
    sched2 = build_scheduler(opt2, SchedulerConfig(milestones=(2,), gamma=0.1), warmup_iter=-1)
    sched2.load_state_dict(sched.state_dict())
    opt2.load_state_dict(opt.state_dict())
    assert opt2.param_groups[0]["lr"] == pytest.approx(1e-4)


# ---------------------------------------------------------------- losses and VGG


def _fake_torchvision_file(path: Path) -> dict[str, torch.Tensor]:
    """A file with torchvision's vgg19 key names and shapes (features + a classifier to ignore)."""
    net = VGG19Features(("pool5",))
    net.init_random(seed=3)
    state = {k: v.clone() for k, v in net.state_dict().items()}
    state["classifier.0.weight"] = torch.zeros(4, 4)
    torch.save(state, path)
    return state


def test_vgg_loads_torchvision_names_and_returns_pre_relu_features(tmp_path: Path) -> None:
    state = _fake_torchvision_file(tmp_path / "vgg19-dcbb9e9d.pth")
    assert sum(k.startswith("features.") for k in state) == 32  # 16 convs x (weight, bias)
    vgg = build_vgg(("conv1_2", "relu1_2"), weights=tmp_path / "vgg19-dcbb9e9d.pth", allow_random=False)
    assert len(vgg.features) == VGG19_LAYERS.index("relu1_2") + 1 == 4
    x = torch.rand(1, 3, 12, 12)
    out = vgg(x)
    # Independent reference: ImageNet normalisation, conv1_1, ReLU, conv1_2 (pre-ReLU).
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    h = F.relu(F.conv2d((x - mean) / std, state["features.0.weight"], state["features.0.bias"], padding=1))
    ref = F.conv2d(h, state["features.2.weight"], state["features.2.bias"], padding=1)
    torch.testing.assert_close(out["conv1_2"], ref)
    torch.testing.assert_close(out["relu1_2"], F.relu(ref))
    assert (out["conv1_2"] < 0).any()  # not clobbered by an in-place ReLU
    assert not any(p.requires_grad for p in vgg.parameters())


def test_missing_vgg_weights_stop_with_where_to_put_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    with pytest.raises(VGGWeightsError) as info:
        build_vgg(("conv5_4",), weights=None, allow_random=False)
    message = str(info.value)
    assert str(default_weights_path()) in message and "vgg19-dcbb9e9d.pth" in message
    assert str(tmp_path / "torch_home") in message and "path.vgg_weights" in message
    with pytest.raises(VGGWeightsError, match="nowhere.pth: VGG19 weights file not found"):
        build_vgg(("conv5_4",), weights=tmp_path / "nowhere.pth", allow_random=False)
    (tmp_path / "junk.pth").write_bytes(b"not a zip")
    with pytest.raises(VGGWeightsError, match="junk.pth: cannot read VGG19 weights"):
        build_vgg(("conv5_4",), weights=tmp_path / "junk.pth", allow_random=False)
    # The hub cache is used when present.
    default_weights_path().parent.mkdir(parents=True)
    _fake_torchvision_file(default_weights_path())
    assert build_vgg(("conv1_1",), weights=None, allow_random=False)(torch.rand(1, 3, 4, 4))["conv1_1"].shape == (
        1,
        64,
        4,
        4,
    )


def test_perceptual_loss_is_the_weighted_sum_of_feature_l1() -> None:
    vgg = VGG19Features(("conv1_2", "conv2_2"))
    vgg.init_random(seed=1)
    loss = PerceptualLoss(vgg, {"conv1_2": 0.1, "conv2_2": 1.0}, perceptual_weight=2.0)
    a, b = torch.rand(2, 3, 8, 8, requires_grad=True), torch.rand(2, 3, 8, 8)
    fa, fb = vgg(a), vgg(b)
    expected = 2.0 * (0.1 * (fa["conv1_2"] - fb["conv1_2"]).abs().mean() + (fa["conv2_2"] - fb["conv2_2"]).abs().mean())
    value = loss(a, b)
    torch.testing.assert_close(value, expected)
    assert loss(b, b) == 0
    value.backward()
    assert a.grad is not None and a.grad.abs().sum() > 0


def test_gan_and_l1_losses_match_their_formulas() -> None:
    logits = torch.tensor([[-2.0, 0.0], [1.0, 3.0]])
    softplus = lambda t: torch.log1p(torch.exp(t))  # noqa: E731
    torch.testing.assert_close(gan_loss(logits, True), softplus(-logits).mean())
    torch.testing.assert_close(gan_loss(logits, False), softplus(logits).mean())
    assert gan_loss(logits.bfloat16(), True).dtype == torch.float32
    assert l1_loss(torch.tensor([1.0, 2.0]), torch.tensor([2.0, 0.0])) == 1.5


# ---------------------------------------------------------------- checkpoints


def test_checkpoint_keeps_newest_and_falls_back_over_a_corrupt_one(tmp_path: Path, caplog) -> None:
    for it in (10, 20, 30, 40):
        ckpt.save_state(tmp_path, it, {"value": torch.tensor(float(it))}, keep=3)
    assert [i for i, _ in ckpt.list_states(tmp_path)] == [20, 30, 40]
    assert not list((tmp_path / ckpt.STATE_DIR).glob(".*"))  # no temporaries left
    path, state = ckpt.load_latest_state(tmp_path)
    assert path.name == "40.state" and state["iteration"] == 40 and state["value"] == 40
    # A torn newest file (disk full, copied half-way): fall back to the previous one, loudly.
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    path, state = ckpt.load_latest_state(tmp_path)
    assert state["iteration"] == 30
    assert "40.state: unreadable training state" in caplog.text and "falling back" in caplog.text
    (tmp_path / ckpt.STATE_DIR / "30.state").write_bytes(b"")
    assert ckpt.load_latest_state(tmp_path)[1]["iteration"] == 20
    with pytest.raises(ckpt.CheckpointError, match="99.state: training state not found"):
        ckpt.load_state(tmp_path / "99.state")
    torch.save({"something": 1}, tmp_path / "other.state")
    with pytest.raises(ckpt.CheckpointError, match="not a soccersr training state"):
        ckpt.load_state(tmp_path / "other.state")


def test_exported_generator_has_official_keys_and_loads(tmp_path: Path) -> None:
    from safetensors.torch import load_file

    from soccersr.weights import load_model

    g = _tiny_g(1)
    ema = _tiny_g(2)
    g_path = ckpt.export_generator(
        tmp_path, 7, ckpt.cpu_state(g.to(memory_format=torch.channels_last)), ckpt.cpu_state(ema), None
    )
    bundle = torch.load(g_path, weights_only=True)
    assert set(bundle) == {"params", "params_ema"}
    assert set(bundle["params"]) == set(RRDBNet(num_feat=8, num_block=1, num_grow_ch=4).state_dict())
    torch.testing.assert_close(bundle["params_ema"]["conv_first.weight"], ema.conv_first.weight)
    model = load_model(g_path)  # what `soccersr upscale --model` does with it: the EMA weights
    torch.testing.assert_close(model.net.conv_first.weight, ema.conv_first.weight)
    assert model.arch_kwargs["num_block"] == 1 and model.arch_kwargs["num_feat"] == 8
    st = load_file(str(tmp_path / "models" / "net_g_7.safetensors"))
    torch.testing.assert_close(st["conv_last.bias"], ema.conv_last.bias)
    torch.testing.assert_close(
        load_model(tmp_path / "models" / "net_g_7.safetensors").net.conv_hr.weight, ema.conv_hr.weight
    )


# ---------------------------------------------------------------- per-rank batches


def test_sharded_batches_split_ranks_and_resume_mid_epoch() -> None:
    a = ShardedBatchSampler(11, 2, rank=0, world_size=2, seed=5)
    b = ShardedBatchSampler(11, 2, rank=1, world_size=2, seed=5)
    assert len(a) == len(b) == 2  # 11 // 2 = 5 per rank -> 2 full batches, the short one dropped
    ia, ib = [i for batch in a for i in batch], [i for batch in b for i in batch]
    assert not set(ia) & set(ib) and all(len(batch) == 2 for batch in [*a, *b])
    assert list(a) == list(ShardedBatchSampler(11, 2, rank=0, world_size=2, seed=5))  # deterministic
    full = list(a)
    a.set_position(0, 1)
    assert list(a) == full[1:]
    a.set_position(1, 0)
    assert list(a) != full  # a new epoch, a new permutation
    with pytest.raises(ValueError, match="too few for 2 process"):
        ShardedBatchSampler(3, 2, world_size=2)


def test_resumed_adam_moments_take_the_parameter_layout() -> None:
    from soccersr.train.state import match_param_layout

    g = _tiny_g()
    opt = torch.optim.Adam(g.parameters(), lr=1e-3)
    g(torch.rand(1, 3, 8, 8)).mean().backward()
    opt.step()
    saved = opt.state_dict()  # NCHW moments, as a CPU run saves them
    g.to(memory_format=torch.channels_last)
    resumed = torch.optim.Adam(g.parameters(), lr=1e-3)
    resumed.load_state_dict(saved)
    match_param_layout(resumed)
    for p in g.parameters():
        assert resumed.state[p]["exp_avg"].stride() == p.stride()
        torch.testing.assert_close(resumed.state[p]["exp_avg"], opt.state[p]["exp_avg"], rtol=0, atol=0)


def test_exported_compact_generator_keeps_its_activation(tmp_path: Path) -> None:
    """ReLU and LeakyReLU have no weights: only the header can say which one was trained."""
    from soccersr.archs import SRVGGNetCompact
    from soccersr.weights import load_model

    kwargs = {"num_feat": 8, "num_conv": 2, "upscale": 4, "act_type": "leakyrelu"}
    g = SRVGGNetCompact(**kwargs)
    ckpt.export_generator(tmp_path, 3, ckpt.cpu_state(g), None, None, network=("SRVGGNetCompact", kwargs))
    model = load_model(tmp_path / "models" / "net_g_3.safetensors")
    assert model.arch_kwargs["act_type"] == "leakyrelu"
    x = torch.rand(1, 3, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(model.net(x), g(x))
