"""One training step with injected inputs: degradation wiring, G/D updates, D frozen in the G step, EMA."""

from __future__ import annotations

import pytest
import torch

from soccersr.archs import RRDBNet, UNetDiscriminatorSN
from soccersr.degrade import DegradationConfig, TrainingPairPool
from soccersr.train.ema import make_ema
from soccersr.train.losses import PerceptualLoss, l1_loss
from soccersr.train.step import (
    Networks,
    StepOptions,
    TrainingPair,
    l1_weight,
    optimize,
    players_as_target,
    synthesize_batch,
    updates_generator,
)
from soccersr.train.vgg import VGG19Features


def _opts(**kw) -> StepOptions:
    base = dict(degradation=DegradationConfig(), gt_size=32, scale=4, gan=True, sharpen_gt_first=False)
    return StepOptions(**{**base, **kw})


def _gan_nets() -> tuple[Networks, torch.optim.Optimizer, torch.optim.Optimizer]:
    torch.manual_seed(0)
    g = RRDBNet(num_feat=8, num_block=1, num_grow_ch=4)
    d = UNetDiscriminatorSN(num_feat=8)
    vgg = VGG19Features(("conv1_2", "conv2_2"))
    vgg.init_random()
    nets = Networks.plain(
        g, d=d, g_ema=make_ema(g), perceptual=PerceptualLoss(vgg, {"conv1_2": 0.1, "conv2_2": 1}, 1.0)
    )
    return nets, torch.optim.Adam(g.parameters(), 1e-3), torch.optim.Adam(d.parameters(), 1e-3)


def _snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in module.named_parameters()}


def _changed(module: torch.nn.Module, before: dict[str, torch.Tensor]) -> bool:
    return any(not torch.equal(p, before[k]) for k, p in module.named_parameters())


def test_d_only_iteration_then_full_step_and_ema() -> None:
    nets, opt_g, opt_d = _gan_nets()
    gt = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    pair = TrainingPair(
        lq=torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(2)), gt=gt, gt_usm=gt.clamp(0.1, 0.9)
    )
    opts = _opts(net_d_init_iters=1)
    g0, d0 = _snapshot(nets.g), _snapshot(nets.d)

    logs = optimize(pair, nets=nets, opt_g=opt_g, opt_d=opt_d, opts=opts, iteration=1)
    assert set(logs) == {"l_d_real", "l_d_fake", "out_d_real", "out_d_fake"}  # D-only warm-up iteration
    assert not _changed(nets.g, g0) and _changed(nets.d, d0)
    assert not _changed(nets.g_ema, g0)  # EMA of an unchanged G stays put

    g1, d1, ema1 = _snapshot(nets.g), _snapshot(nets.d), _snapshot(nets.g_ema)
    logs = optimize(pair, nets=nets, opt_g=opt_g, opt_d=opt_d, opts=opts, iteration=2)
    assert set(logs) == {"l_g_pix", "l_g_percep", "l_g_gan", "l_d_real", "l_d_fake", "out_d_real", "out_d_fake"}
    assert all(v.ndim == 0 and not v.requires_grad for v in logs.values())
    assert _changed(nets.g, g1) and _changed(nets.d, d1)
    for name, p in nets.g_ema.named_parameters():
        torch.testing.assert_close(
            p, 0.999 * ema1[name] + 0.001 * dict(nets.g.named_parameters())[name], rtol=0, atol=1e-7
        )
    assert torch.isfinite(torch.stack(list(logs.values()))).all()
    assert all(p.requires_grad for p in nets.d.parameters())  # D unfrozen again for the next step


def _never_called(_x: torch.Tensor) -> torch.Tensor:
    raise AssertionError("D ran although the GAN weight is 0")


def test_zero_gan_weight_skips_d_and_trains_g_as_l1_plus_perceptual() -> None:
    gt = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    pair = TrainingPair(lq=torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(2)), gt=gt, gt_usm=gt)
    no_gan, opt_g, opt_d = _gan_nets()
    d0 = _snapshot(no_gan.d)
    no_gan.d_forward = no_gan.d_frozen_forward = _never_called
    # iteration 1 of a run with a D warm-up: with no adversarial term there is nothing to warm up, so G steps.
    opts = _opts(gan_weight=0.0, net_d_init_iters=5)
    logs = optimize(pair, nets=no_gan, opt_g=opt_g, opt_d=opt_d, opts=opts, iteration=1)
    assert set(logs) == {"l_g_pix", "l_g_percep"}
    assert not _changed(no_gan.d, d0)

    reference, ref_opt_g, _ = _gan_nets()  # the same start, run as a stage that has no D at all
    reference.d = reference.d_forward = reference.d_frozen_forward = None
    ref_logs = optimize(pair, nets=reference, opt_g=ref_opt_g, opt_d=None, opts=_opts(gan=False), iteration=1)
    torch.testing.assert_close(logs, ref_logs, rtol=0, atol=0)
    for name, p in no_gan.g.named_parameters():
        torch.testing.assert_close(p, dict(reference.g.named_parameters())[name], rtol=0, atol=0)


class _RecordingSGD(torch.optim.SGD):
    """Notes whether D's weights already had gradients when its own step began."""

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.grads_before = [p.grad for group in self.param_groups for p in group["params"]]
        super().zero_grad(set_to_none)


def test_g_step_trains_g_through_a_frozen_d() -> None:
    nets, opt_g, _ = _gan_nets()
    nets.perceptual = None
    gt = torch.rand(2, 3, 32, 32)
    pair = TrainingPair(lq=torch.rand(2, 3, 8, 8), gt=gt, gt_usm=gt)
    g0, d0 = _snapshot(nets.g), _snapshot(nets.d)
    recorder = _RecordingSGD(nets.d.parameters(), lr=0.0)
    logs = optimize(pair, nets=nets, opt_g=opt_g, opt_d=recorder, opts=_opts(pixel_weight=None), iteration=1)
    assert set(logs) >= {"l_g_gan"} and "l_g_pix" not in logs
    assert _changed(nets.g, g0)  # the GAN loss alone moved G: it flows through D
    assert all(grad is None for grad in recorder.grads_before)  # ...but left no gradient on D's weights
    assert not _changed(nets.d, d0)
    assert updates_generator(_opts(net_d_iters=2, net_d_init_iters=3), 4)
    assert not updates_generator(_opts(net_d_iters=2, net_d_init_iters=3), 2)
    assert not updates_generator(_opts(net_d_iters=2), 3)
    assert updates_generator(_opts(gan=False, net_d_init_iters=5), 1)


def test_synthesize_batch_shapes_levels_and_determinism() -> None:
    gt = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))

    def run(seed: int, **kw) -> object:
        return synthesize_batch(
            gt, opts=_opts(**kw), generator=torch.Generator().manual_seed(seed), pool=TrainingPairPool(4, seed=0)
        )

    a, b, c = run(1), run(1), run(2)
    assert a.lq.shape == (2, 3, 8, 8) and a.gt.shape == a.gt_usm.shape == (2, 3, 32, 32)
    assert torch.equal(a.lq, b.lq) and torch.equal(a.gt, b.gt) and not torch.equal(a.lq, c.lq)
    assert torch.equal(a.lq, torch.round(a.lq * 255) / 255)  # 8-bit levels
    assert not torch.equal(a.gt, a.gt_usm)  # Real-ESRGAN: sharpened targets recomputed after the pool
    # The GT crop is one of the input's 32x32 windows at a multiple of 4 (aligned with the LQ crop).
    hits = [
        (t, l) for t in range(0, 33, 4) for l in range(0, 33, 4) if torch.equal(a.gt, gt[..., t : t + 32, l : l + 32])
    ]
    assert len(hits) == 1
    web = run(1, degradation=DegradationConfig(web_prob=1.0))
    assert web.lq.shape == a.lq.shape and torch.equal(web.lq, torch.round(web.lq * 255) / 255)
    assert torch.equal(web.lq, run(1, degradation=DegradationConfig(web_prob=1.0)).lq)
    assert not torch.equal(web.lq, a.lq)
    esrnet = run(1, gan=False, sharpen_gt_first=True)
    assert esrnet.gt is esrnet.gt_usm and not torch.equal(esrnet.gt, a.gt)  # Real-ESRNet: the GT itself is sharpened


def test_player_mask_rides_with_the_gt_and_weights_the_l1() -> None:
    gen = torch.Generator().manual_seed(0)
    mask = (torch.rand(2, 1, 64, 64, generator=gen) > 0.8).float()
    gt = torch.rand(2, 3, 64, 64, generator=gen) * 0.5
    gt[:, 2:] = torch.where(mask.bool(), 1.0, gt[:, 2:])  # blue saturates exactly on the players
    pool = TrainingPairPool(2, seed=0)
    opts = _opts(player_weight=5.0)
    for seed in range(3):  # the pool's second round hands back the first batch's pairs
        pair = synthesize_batch(
            gt, opts=opts, generator=torch.Generator().manual_seed(seed), pool=pool, player_mask=mask
        )
        weight = l1_weight(pair, opts)
        assert pair.gt.shape == (2, 3, 32, 32) and weight is not None
        assert torch.equal(weight, 1 + 4 * (pair.gt[:, 2:] == 1).float())
        assert torch.equal(pair.player_mask, (pair.gt[:, 2:] == 1).float())
    plain = synthesize_batch(
        gt, opts=_opts(), generator=torch.Generator().manual_seed(0), pool=TrainingPairPool(2), player_mask=mask
    )
    assert l1_weight(plain, _opts()) is None  # weight 1: the plain L1


def test_texture_losses_off_players_send_no_gradient_to_players() -> None:
    nets, opt_g, opt_d = _gan_nets()
    gt = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    lq = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    mask = torch.zeros(2, 1, 32, 32)
    mask[:, :, 8:20, 4:12] = 1
    opts = _opts(pixel_weight=None, texture_losses_off_players=True)
    pair = TrainingPair(lq=lq, gt=gt, gt_usm=gt.clamp(0.1, 0.9), player_mask=mask)

    # The blend's gradient: none on the players, the loss's own elsewhere.
    output = nets.g(lq).detach().requires_grad_(True)
    loss = nets.perceptual(players_as_target(output, pair.gt_usm, pair, opts), pair.gt_usm)
    loss = loss + nets.d(players_as_target(output, pair.gt, pair, opts)).mean()
    loss.backward()
    on_players = mask.bool().expand_as(output)
    assert torch.count_nonzero(output.grad[on_players]) == 0
    assert torch.count_nonzero(output.grad[~on_players]) > 0.9 * int((~on_players).sum())
    assert players_as_target(output, gt, pair, _opts()) is output  # off by default

    # A batch that is all players: perceptual and GAN losses leave G where it was (no L1 here).
    everywhere = TrainingPair(lq=lq, gt=gt, gt_usm=gt, player_mask=torch.ones(2, 1, 32, 32))
    g0 = _snapshot(nets.g)
    logs = optimize(everywhere, nets=nets, opt_g=opt_g, opt_d=opt_d, opts=opts, iteration=1)
    assert float(logs["l_g_percep"]) == 0 and not _changed(nets.g, g0)
    optimize(everywhere, nets=nets, opt_g=opt_g, opt_d=opt_d, opts=_opts(pixel_weight=None), iteration=2)
    assert _changed(nets.g, g0)


def test_weighted_l1_is_a_weighted_mean_on_the_plain_scale() -> None:
    pred, target = torch.zeros(1, 3, 2, 2), torch.tensor([1.0, 2, 3, 4]).view(1, 1, 2, 2).expand(1, 3, 2, 2)
    weight = torch.tensor([1.0, 1, 1, 5]).view(1, 1, 2, 2)
    assert float(l1_loss(pred, target, weight)) == pytest.approx((1 + 2 + 3 + 20) / 8)
    assert float(l1_loss(pred, target, torch.ones(1, 1, 2, 2))) == pytest.approx(float(l1_loss(pred, target)))


def test_full_step_on_the_device(device: torch.device) -> None:
    """On CUDA: bf16 autocast, channels_last and the pinned async parameter copy; fp32 NCHW on the CPU."""
    cuda = device.type == "cuda"
    nets, _, _ = _gan_nets()
    fmt = torch.channels_last if cuda else torch.contiguous_format
    for m in (nets.g, nets.d, nets.g_ema, nets.perceptual):
        m.to(device=device, memory_format=fmt)
    opt_g = torch.optim.Adam(nets.g.parameters(), 1e-3, fused=cuda)
    opt_d = torch.optim.Adam(nets.d.parameters(), 1e-3, fused=cuda)
    opts = _opts(amp_dtype=torch.bfloat16 if cuda else None, channels_last=cuda)
    pool = TrainingPairPool(4, seed=0)
    generator = torch.Generator().manual_seed(0)
    hr = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(3)).to(device)
    g0 = _snapshot(nets.g)
    for iteration in (1, 2, 3):  # the third swaps with stored pairs
        pair = synthesize_batch(hr, opts=opts, generator=generator, pool=pool)
        logs = optimize(pair, nets=nets, opt_g=opt_g, opt_d=opt_d, opts=opts, iteration=iteration)
    assert pair.lq.device.type == device.type and pair.lq.is_contiguous(memory_format=fmt)
    assert len(pool) == 4
    values = torch.stack([v.float() for v in logs.values()]).cpu()
    assert torch.isfinite(values).all() and all(v.dtype == torch.float32 for v in logs.values())
    assert _changed(nets.g, g0)
    assert all(p.dtype == torch.float32 for p in nets.g_ema.parameters())
