"""One training iteration of Real-ESRNet / Real-ESRGAN, as two plain functions.

``synthesize_batch`` turns a batch of HR crops into (LQ, GT, USM-GT) training pairs on the
training device (second-order degradation, optionally mixed with the web one, paired random crop,
training-pair pool).
``optimize`` takes one G step (L1 + perceptual + GAN with D frozen) and one D step (real vs
detached fake), then moves the EMA. ``train_step`` is the two in a row.

Nothing here calls ``.item()``: the returned losses are 0-dim tensors on the device, so a step
never waits for the GPU; the loop converts them to floats only at logging steps.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from soccersr import hardware
from soccersr.degrade import DegradationConfig, TrainingPairPool, degrade, paired_random_crop, sample_params, usm_sharp
from soccersr.degrade.web import mix_in_web
from soccersr.train.config import TrainingConfig
from soccersr.train.ema import ema_update_
from soccersr.train.losses import PerceptualLoss, gan_loss, l1_loss

Forward = Callable[[Tensor], Tensor]


@dataclass(frozen=True)
class StepOptions:
    """What one step needs to know, resolved once from the config and the device."""

    degradation: DegradationConfig
    gt_size: int
    scale: int
    gan: bool
    """Real-ESRGAN (G + D) rather than Real-ESRNet (G with L1 only)."""
    sharpen_gt_first: bool
    """Real-ESRNet ``gt_usm``: the GT is replaced by its USM-sharpened version before anything else."""
    l1_gt_usm: bool = True
    percep_gt_usm: bool = True
    gan_gt_usm: bool = False
    pixel_weight: float | None = 1.0
    """None: no pixel loss."""
    player_weight: float = 1.0
    """L1 weight of the player pixels (the batches' ``player_mask``); 1: the plain L1."""
    texture_losses_off_players: bool = False
    """G's perceptual and GAN losses see the player pixels as their targets' (no texture gradient on players)."""
    gan_weight: float = 0.1
    real_label: float = 1.0
    fake_label: float = 0.0
    net_d_iters: int = 1
    net_d_init_iters: int = 0
    ema_decay: float = 0.999
    amp_dtype: torch.dtype | None = None
    """bf16 autocast when set."""
    channels_last: bool = False

    @property
    def trains_d(self) -> bool:
        """Whether D is run at all. A zero GAN weight gives G nothing through D, so its forward in
        G's step, its own step and the D-only warm-up would cost time for nothing (a Real-ESRGAN
        stage with the perceptual loss and no adversarial term)."""
        return self.gan and self.gan_weight > 0

    @classmethod
    def from_config(cls, cfg: TrainingConfig, device: torch.device) -> StepOptions:
        t = cfg.train
        precision = t.precision if t.precision != "auto" else auto_precision(device)
        # oneDNN's and cuDNN's bf16 convolutions are fastest on NHWC tensors.
        channels_last = precision == "bf16" if t.channels_last == "auto" else bool(t.channels_last)
        l1_usm, percep_usm, gan_usm = cfg.usm_targets()
        return cls(
            degradation=cfg.datasets.train.degradation,
            gt_size=cfg.datasets.train.gt_size,
            scale=cfg.scale,
            gan=cfg.is_gan,
            sharpen_gt_first=cfg.sharpen_gt_first,
            l1_gt_usm=l1_usm,
            percep_gt_usm=percep_usm,
            gan_gt_usm=gan_usm,
            pixel_weight=None if t.pixel_opt is None else t.pixel_opt.loss_weight,
            player_weight=1.0 if t.pixel_opt is None else t.pixel_opt.player_weight,
            texture_losses_off_players=t.texture_losses_off_players,
            gan_weight=0.0 if t.gan_opt is None else t.gan_opt.loss_weight,
            real_label=1.0 if t.gan_opt is None else t.gan_opt.real_label_val,
            fake_label=0.0 if t.gan_opt is None else t.gan_opt.fake_label_val,
            net_d_iters=t.net_d_iters,
            net_d_init_iters=t.net_d_init_iters,
            ema_decay=t.ema_decay,
            amp_dtype=torch.bfloat16 if precision == "bf16" else None,
            channels_last=channels_last,
        )


def auto_precision(device: torch.device) -> str:
    """bf16 on CUDA and on CPUs that compute it natively (AMX / AVX512_BF16), else fp32.

    Elsewhere the CPU emulates bf16 and it is slower than fp32.
    """
    if device.type == "cuda" or (device.type == "cpu" and hardware.native_bf16()):
        return "bf16"
    return "fp32"


@dataclass
class Networks:
    """The modules of a run.

    ``g`` and ``d`` are the bare modules: their weights are what the EMA follows and checkpoints
    save. The ``*_forward`` callables are what the step runs: the same modules, possibly wrapped
    in DistributedDataParallel and/or torch.compile.
    """

    g: nn.Module
    g_forward: Forward
    g_ema: nn.Module | None = None
    d: nn.Module | None = None
    d_forward: Forward | None = None
    """D for its own step (DDP-wrapped when distributed: its gradients are averaged)."""
    d_frozen_forward: Forward | None = None
    """D inside the G step: never DDP-wrapped, since D gets no gradient there and DDP would wait for one."""
    perceptual: PerceptualLoss | None = None

    @classmethod
    def plain(
        cls,
        g: nn.Module,
        *,
        d: nn.Module | None = None,
        g_ema: nn.Module | None = None,
        perceptual: PerceptualLoss | None = None,
    ) -> Networks:
        """Unwrapped modules (single process, eager)."""
        return cls(g=g, g_forward=g, g_ema=g_ema, d=d, d_forward=d, d_frozen_forward=d, perceptual=perceptual)


@dataclass(frozen=True)
class TrainingPair:
    lq: Tensor
    """(B, 3, gt_size / scale, same) degraded input."""
    gt: Tensor
    """(B, 3, gt_size, gt_size) target."""
    gt_usm: Tensor
    """USM-sharpened ``gt`` (the same tensor when not needed)."""
    player_mask: Tensor | None = None
    """(B, 1, gt_size, gt_size), 1 on players, when the batch came with masks."""


def _autocast(device: torch.device, dtype: torch.dtype | None) -> AbstractContextManager[None]:
    return torch.autocast(device_type=device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None)


@torch.no_grad()
def synthesize_batch(
    gt: Tensor,
    *,
    opts: StepOptions,
    generator: torch.Generator,
    pool: TrainingPairPool,
    player_mask: Tensor | None = None,
) -> TrainingPair:
    """HR crops (B, 3, S, S) in [0, 1] on the training device -> a training pair batch.

    ``player_mask`` (B, 1, S, S), 1 on players, rides along with the GT as a fourth channel through
    the crop and the pool, so it stays aligned; it becomes the pair's ``player_mask``.
    Every random choice comes from ``generator`` (CPU) and the pool's own generator.
    """
    sharp = usm_sharp(gt) if (opts.gan or opts.sharpen_gt_first) else gt
    if opts.sharpen_gt_first:
        gt = sharp
    # Real-ESRGAN always degrades the sharpened GT; Real-ESRNet degrades whatever its GT is.
    source = sharp if opts.gan else gt
    params = sample_params(opts.degradation, gt.shape[0], generator=generator)
    if gt.device.type == "cuda":
        params = params.to(gt.device, non_blocking=True)
    lq = degrade(source, params, opts.degradation)
    if opts.degradation.web_prob > 0:
        # From the GT the run trains towards: for Real-ESRGAN the plain one, like the web LQ of ``soccersr eval``
        # (a web photo was never USM-sharpened); Real-ESRNet degrades whatever its GT is.
        lq = mix_in_web(lq, gt, opts.degradation.web_prob, scale=opts.scale, generator=generator)
    if player_mask is not None:
        gt = torch.cat([gt, player_mask.to(gt.dtype)], dim=1)
    (gt,), lq = paired_random_crop((gt,), lq, opts.gt_size, opts.scale, generator=generator)
    lq, gt = pool.exchange(lq, gt)
    if player_mask is not None:
        gt, player_mask = gt[:, :3], gt[:, 3:].contiguous()
    # Dense tensors in the networks' memory format (the crops are strided views).
    fmt = torch.channels_last if opts.channels_last else torch.contiguous_format
    lq, gt = lq.contiguous(memory_format=fmt), gt.contiguous(memory_format=fmt)
    # The pool handed back other images: sharpen them anew (as official).
    gt_usm = usm_sharp(gt).contiguous(memory_format=fmt) if opts.gan else gt
    return TrainingPair(lq=lq, gt=gt, gt_usm=gt_usm, player_mask=player_mask)


def updates_generator(opts: StepOptions, iteration: int) -> bool:
    """Official schedule: G is updated every ``net_d_iters`` iterations after ``net_d_init_iters``."""
    if not opts.trains_d:
        return True
    return iteration % opts.net_d_iters == 0 and iteration > opts.net_d_init_iters


def l1_weight(pair: TrainingPair, opts: StepOptions) -> Tensor | None:
    """(B, 1, gt_size, gt_size) per-pixel L1 weight (players weigh ``player_weight``), or None for the plain L1."""
    if pair.player_mask is None or opts.player_weight == 1:
        return None
    return 1 + (opts.player_weight - 1) * pair.player_mask


def players_as_target(output: Tensor, target: Tensor, pair: TrainingPair, opts: StepOptions) -> Tensor:
    """``output`` with the player pixels replaced by ``target``'s when texture losses are kept off players.

    The blend's gradient with respect to ``output`` is (1 - mask): a loss on it cannot push players
    towards texture, which is what the perceptual and GAN losses would otherwise do to the few pixels
    of a far player that the LQ barely shows.
    """
    if not opts.texture_losses_off_players or pair.player_mask is None:
        return output
    mask = pair.player_mask.to(target.dtype)
    return target * mask + output * (1 - mask)  # exactly the target where mask is 1


def optimize(
    pair: TrainingPair,
    *,
    nets: Networks,
    opt_g: torch.optim.Optimizer,
    opt_d: torch.optim.Optimizer | None,
    opts: StepOptions,
    iteration: int,
) -> dict[str, Tensor]:
    """One G step and (Real-ESRGAN) one D step on ``pair``; then the EMA update.

    ``iteration`` is 1-based. Returns detached 0-dim loss tensors: l_g_pix, l_g_percep, l_g_gan
    (when G was updated), l_d_real, l_d_fake, out_d_real, out_d_fake (Real-ESRGAN).
    """
    device = pair.lq.device
    l1_target = pair.gt_usm if opts.l1_gt_usm else pair.gt
    percep_target = pair.gt_usm if opts.percep_gt_usm else pair.gt
    gan_target = pair.gt_usm if opts.gan_gt_usm else pair.gt
    logs: dict[str, Tensor] = {}

    # ---- generator step: D is frozen, the GAN loss flows through it into G only ----
    if nets.d is not None:
        nets.d.requires_grad_(False)
    if updates_generator(opts, iteration):
        opt_g.zero_grad(set_to_none=True)
        with _autocast(device, opts.amp_dtype):
            output = nets.g_forward(pair.lq)
            total = output.new_zeros((), dtype=torch.float32)
            if opts.pixel_weight is not None:
                logs["l_g_pix"] = opts.pixel_weight * l1_loss(output, l1_target, l1_weight(pair, opts))
                total = total + logs["l_g_pix"]
            if nets.perceptual is not None:
                logs["l_g_percep"] = nets.perceptual(
                    players_as_target(output, percep_target, pair, opts), percep_target
                )
                total = total + logs["l_g_percep"]
            if opts.trains_d:
                assert nets.d_frozen_forward is not None
                fake = players_as_target(output, gan_target, pair, opts)
                logs["l_g_gan"] = opts.gan_weight * gan_loss(
                    nets.d_frozen_forward(fake), True, real_label=opts.real_label, fake_label=opts.fake_label
                )
                total = total + logs["l_g_gan"]
        total.backward()
        opt_g.step()
    else:
        # D-only iteration (net_d_init_iters / net_d_iters): G's output is still needed as the fake.
        with torch.no_grad(), _autocast(device, opts.amp_dtype):
            output = nets.g_forward(pair.lq)

    # ---- discriminator step: real vs the detached fake, loss weight 1 ----
    if opts.trains_d:
        assert nets.d is not None and nets.d_forward is not None and opt_d is not None
        nets.d.requires_grad_(True)
        opt_d.zero_grad(set_to_none=True)
        with _autocast(device, opts.amp_dtype):
            real_pred = nets.d_forward(gan_target)
            fake_pred = nets.d_forward(output.detach())
            l_d_real = gan_loss(real_pred, True, real_label=opts.real_label, fake_label=opts.fake_label)
            l_d_fake = gan_loss(fake_pred, False, real_label=opts.real_label, fake_label=opts.fake_label)
        # One backward of the sum = the official two backward calls (gradients add up).
        (l_d_real + l_d_fake).backward()
        opt_d.step()
        logs.update(
            l_d_real=l_d_real,
            l_d_fake=l_d_fake,
            out_d_real=real_pred.detach().float().mean(),
            out_d_fake=fake_pred.detach().float().mean(),
        )

    if nets.g_ema is not None and opts.ema_decay > 0:
        ema_update_(nets.g_ema, nets.g, opts.ema_decay)
    return {k: v.detach() for k, v in logs.items()}


def train_step(
    gt: Tensor,
    *,
    nets: Networks,
    opt_g: torch.optim.Optimizer,
    opt_d: torch.optim.Optimizer | None,
    pool: TrainingPairPool,
    generator: torch.Generator,
    opts: StepOptions,
    iteration: int,
    player_mask: Tensor | None = None,
) -> dict[str, Tensor]:
    """Degrade an HR batch (already on the training device) and optimise on it."""
    pair = synthesize_batch(gt, opts=opts, generator=generator, pool=pool, player_mask=player_mask)
    return optimize(pair, nets=nets, opt_g=opt_g, opt_d=opt_d, opts=opts, iteration=iteration)
