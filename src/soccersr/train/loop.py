"""The training loop: set up once, then degrade -> step -> log -> checkpoint -> validate, until total_iter.

Runs as one process or under torchrun (one process per GPU). Rank 0 logs, validates and writes
checkpoints; every rank trains on its own share of the data with its own degradation stream.
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from soccersr.degrade import TrainingPairPool
from soccersr.errors import SoccersrError
from soccersr.io.atomic import atomic_write_bytes
from soccersr.train import checkpoint as ckpt
from soccersr.train.build import (
    build_discriminator,
    build_generator,
    build_optimizer,
    build_perceptual,
    build_scheduler,
    load_into,
    read_pretrained,
)
from soccersr.train.config import TrainingConfig, config_to_dict, dump_config
from soccersr.train.data import BatchStream, ShardedBatchSampler
from soccersr.train.distributed import (
    DistContext,
    barrier,
    broadcast_from_main,
    close_distributed,
    gather_to_main,
    init_distributed,
    mean_over_ranks,
    ranks_in_sync,
)
from soccersr.train.ema import make_ema
from soccersr.train.logs import LOSS_COLUMNS_ESRGAN, LOSS_COLUMNS_ESRNET, TrainLogger
from soccersr.train.step import Networks, StepOptions, train_step

log = logging.getLogger(__name__)


class TrainError(SoccersrError, RuntimeError):
    """The run cannot start or continue; the message says why."""


@dataclass(frozen=True)
class TrainResult:
    iteration: int
    """The last completed iteration."""
    experiment_dir: Path
    last_state: Path | None
    """The newest training-state file (rank 0), if any was written."""
    losses: dict[str, float]
    """The losses at the last logging step."""


def _seed(base: int, rank: int, purpose: int) -> int:
    # Independent streams per (run seed, rank, purpose): ranks must not degrade alike.
    return int(np.random.SeedSequence([base, rank, purpose]).generate_state(1, dtype=np.uint64)[0] >> 1)


def train(cfg: TrainingConfig, *, resume: str | Path | None = None, auto_resume: bool = False,
          device: str | torch.device = "auto") -> TrainResult:
    """Train (or continue training) as configured; under torchrun every process calls this."""
    ctx = init_distributed(device)
    try:
        return _run(cfg, ctx, resume=resume, auto_resume=auto_resume)
    finally:
        close_distributed(ctx)


def _find_state(cfg: TrainingConfig, resume: str | Path | None, auto_resume: bool) -> tuple[Path, dict[str, Any]] | None:
    explicit = resume or cfg.path.resume_state
    if explicit:
        return Path(explicit), ckpt.load_state(Path(explicit))
    if auto_resume:
        found = ckpt.load_latest_state(cfg.experiment_dir)
        if found is None:
            log.info("--auto-resume: no training state in %s, starting from scratch", cfg.experiment_dir)
        return found
    if ckpt.list_states(cfg.experiment_dir):
        raise TrainError(f"{cfg.experiment_dir}: already holds training states; pass --auto-resume to continue "
                         "that run, or choose another 'name'")
    return None


def _run(cfg: TrainingConfig, ctx: DistContext, *, resume: str | Path | None, auto_resume: bool) -> TrainResult:
    exp, device, t = cfg.experiment_dir, ctx.device, cfg.train
    if device.type == "cuda":
        # The same input shapes every step: let cuDNN time its convolution algorithms once and keep the fastest.
        torch.backends.cudnn.benchmark = True
    found = _find_state(cfg, resume, auto_resume)  # every rank reads the same file from shared storage
    state = found[1] if found else None
    if ctx.is_main:
        exp.mkdir(parents=True, exist_ok=True)
        ckpt.remove_stale_temporaries(exp)
        atomic_write_bytes(exp / "config.yml", dump_config(cfg).encode("utf-8"))
    barrier(ctx)

    # ---- networks: the same init on every rank (DDP also broadcasts rank 0's weights) ----
    torch.manual_seed(cfg.manual_seed)
    g, d = build_generator(cfg), build_discriminator(cfg)
    ema_source: dict[str, torch.Tensor] | None = None
    if state is None and cfg.path.pretrain_network_g:
        src = cfg.path.pretrain_network_g
        pretrained = read_pretrained(src, param_key=cfg.path.param_key_g, key_path="path.pretrain_network_g")
        load_into(g, pretrained, strict=cfg.path.strict_load_g, key_path="path.pretrain_network_g", source=src)
        # As the official model: the EMA starts from the file's params_ema (its params when absent).
        ema_source = pretrained if cfg.path.param_key_g == "params_ema" else read_pretrained(
            src, param_key="params_ema", key_path="path.pretrain_network_g")
    if state is None and d is not None and cfg.path.pretrain_network_d:
        src = cfg.path.pretrain_network_d
        load_into(d, read_pretrained(src, param_key=cfg.path.param_key_d, key_path="path.pretrain_network_d"),
                  strict=cfg.path.strict_load_d, key_path="path.pretrain_network_d", source=src)
    g_ema = make_ema(g) if t.ema_decay > 0 else None
    if g_ema is not None and ema_source is not None:
        load_into(g_ema, ema_source, strict=cfg.path.strict_load_g, key_path="path.pretrain_network_g",
                  source=str(cfg.path.pretrain_network_g))
    perceptual = build_perceptual(cfg) if cfg.is_gan else None
    opts = StepOptions.from_config(cfg, device)
    memory_format = torch.channels_last if opts.channels_last else torch.preserve_format
    for module in (g, d, g_ema, perceptual):
        if module is not None:
            module.to(device=device, memory_format=memory_format)

    opt_g = build_optimizer(g.parameters(), t.optim_g, device)
    sched_g = build_scheduler(opt_g, t.scheduler, t.warmup_iter)
    opt_d = build_optimizer(d.parameters(), t.optim_d, device) if d is not None and t.optim_d else None
    sched_d = build_scheduler(opt_d, t.scheduler, t.warmup_iter) if opt_d is not None else None

    # ---- data and the per-rank random streams ----
    from soccersr.data.dataset import HRImageDataset, PairedImageDataset

    data_cfg = cfg.datasets.train
    dataset = HRImageDataset(Path(data_cfg.meta_info), Path(data_cfg.dataroot_gt), crop_pad_size=data_cfg.crop_pad_size,
                             use_hflip=data_cfg.use_hflip, use_rot=data_cfg.use_rot,
                             on_bad_image=data_cfg.on_bad_image, seed=cfg.manual_seed)
    sampler = ShardedBatchSampler(len(dataset), data_cfg.batch_size_per_gpu, rank=ctx.rank,
                                  world_size=ctx.world_size, seed=cfg.manual_seed)
    workers = data_cfg.num_worker_per_gpu
    # Its own generator (worker seeds) keeps the loader off the global RNG; items are seeded by the dataset.
    loader = DataLoader(dataset, batch_sampler=sampler, num_workers=workers, persistent_workers=workers > 0,
                        pin_memory=device.type == "cuda", prefetch_factor=4 if workers > 0 else None,
                        generator=torch.Generator().manual_seed(_seed(cfg.manual_seed, ctx.rank, 3)))
    stream = BatchStream(loader, sampler)
    generator = torch.Generator().manual_seed(_seed(cfg.manual_seed, ctx.rank, 1))
    pool = TrainingPairPool(data_cfg.queue_size, seed=_seed(cfg.manual_seed, ctx.rank, 2))

    start = 0
    if found is not None:
        start = _restore(found, cfg, ctx, g=g, g_ema=g_ema, d=d, opt_g=opt_g, opt_d=opt_d, sched_g=sched_g,
                         sched_d=sched_d, stream=stream, generator=generator, pool=pool)
    nets = _wrap(g, d, g_ema, perceptual, compile_=t.compile, ctx=ctx)

    val_set = None
    if ctx.is_main and cfg.datasets.val is not None:
        val_set = PairedImageDataset(Path(cfg.datasets.val.dataroot_lq), Path(cfg.datasets.val.dataroot_gt),
                                     scale=cfg.scale)
    logger = None
    if ctx.is_main:
        logger = TrainLogger(exp / "logs", loss_columns=LOSS_COLUMNS_ESRGAN if cfg.is_gan else LOSS_COLUMNS_ESRNET,
                             start_iteration=start, tensorboard=cfg.logger.use_tb_logger)
    log.info("training %s (%s) on %s x %d from iteration %d to %d", cfg.name, cfg.model_type, device,
             ctx.world_size, start, t.total_iter)
    if isinstance(cfg.num_gpu, int) and cfg.num_gpu != ctx.world_size:
        log.warning("num_gpu is %d but %d process(es) run: the process count (torchrun) decides", cfg.num_gpu,
                    ctx.world_size)

    from tqdm import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    last_state = found[0] if found else None
    values: dict[str, float] = {}
    iteration = start
    window_start, window_iters = time.perf_counter(), 0
    deadline = None if t.time_limit_min is None else time.monotonic() + 60 * t.time_limit_min
    stop_at = t.total_iter
    # disable=None: a progress bar on rank 0 when stderr is a terminal, none in log files.
    with logging_redirect_tqdm(), tqdm(total=t.total_iter, initial=start, unit="it", dynamic_ncols=True,
                                       disable=None if ctx.is_main else True, smoothing=0.05) as bar:
        while iteration < stop_at:
            gt = stream.next()["gt"].to(device, non_blocking=True)
            iteration += 1
            lr_g = opt_g.param_groups[0]["lr"]  # the lr this iteration runs with
            lr_d = opt_d.param_groups[0]["lr"] if opt_d is not None else math.nan
            losses = train_step(gt, nets=nets, opt_g=opt_g, opt_d=opt_d, pool=pool, generator=generator,
                                opts=opts, iteration=iteration)
            # The schedulers set the optimisers' lr for the next iteration. They count iterations,
            # as the official schedule does, also during a D-only warm-up when G has not stepped yet
            # (torch warns about exactly that order; here it is intended).
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step", category=UserWarning)
                sched_g.step()
            if sched_d is not None:
                sched_d.step()
            bar.update(1)
            window_iters += 1

            if deadline is not None and iteration % cfg.logger.print_freq == 0:
                # Rank 0's clock decides, so every rank stops at the same iteration.
                if broadcast_from_main(time.monotonic() > deadline, ctx):
                    log.info("iter %d  time limit of %g min reached: stopping here", iteration, t.time_limit_min)
                    stop_at = iteration
            done = iteration == stop_at
            if iteration % cfg.logger.print_freq == 0 or done:
                # The only host-device sync of an ordinary iteration.
                values = mean_over_ranks(losses, ctx)
                bad = [k for k, v in values.items() if not math.isfinite(v)]
                if bad:
                    raise TrainError(f"iteration {iteration}: {bad[0]} is {values[bad[0]]}; training diverged "
                                     f"(last checkpoint: {last_state or 'none'})")
                now = time.perf_counter()
                row = {"epoch": stream.epoch, "lr_g": lr_g, "lr_d": lr_d,
                       "sec_per_iter": (now - window_start) / window_iters, **values}
                window_start, window_iters = now, 0
                if logger is not None:
                    logger.train(iteration, row)
                    bar.set_postfix({k: f"{v:.4g}" for k, v in values.items() if k.startswith("l_")}, refresh=False)
                    log.info("iter %d  lr %.3g  %s", iteration, lr_g,
                             "  ".join(f"{k} {v:.4g}" for k, v in values.items()))

            if iteration % cfg.logger.save_checkpoint_freq == 0 or done:
                last_state = _save(cfg, ctx, iteration, g=g, g_ema=g_ema, d=d, opt_g=opt_g, opt_d=opt_d,
                                   sched_g=sched_g, sched_d=sched_d, stream=stream, generator=generator, pool=pool)

            if cfg.val is not None and (iteration % cfg.val.val_freq == 0 or done):
                if ctx.is_main and val_set is not None and logger is not None:
                    metrics = _validate(cfg, g_ema if g_ema is not None else g, val_set, device, iteration)
                    logger.val(iteration, metrics)
                    log.info("iter %d  validation  psnr %.3f dB  ssim %.4f", iteration, metrics["psnr"], metrics["ssim"])
                barrier(ctx)  # the other ranks wait instead of running ahead into a collective

    if logger is not None:
        logger.close()
    return TrainResult(iteration=iteration, experiment_dir=exp, last_state=last_state, losses=values)


def _wrap(g: torch.nn.Module, d: torch.nn.Module | None, g_ema: torch.nn.Module | None, perceptual: Any, *,
          compile_: bool, ctx: DistContext) -> Networks:
    if compile_:
        # In place: parameter names (EMA, checkpoints) stay those of the bare modules.
        g.compile()
        if d is not None:
            d.compile()
        if perceptual is not None:
            perceptual.vgg.compile()
    g_forward: Any = g
    d_forward: Any = d
    if ctx.distributed:
        ids = [ctx.device.index] if ctx.device.type == "cuda" else None
        g_forward = DistributedDataParallel(g, device_ids=ids)
        if d is not None:
            d_forward = DistributedDataParallel(d, device_ids=ids)
    return Networks(g=g, g_forward=g_forward, g_ema=g_ema, d=d, d_forward=d_forward, d_frozen_forward=d,
                    perceptual=perceptual)


def _save(cfg: TrainingConfig, ctx: DistContext, iteration: int, *, g: Any, g_ema: Any, d: Any, opt_g: Any,
          opt_d: Any, sched_g: Any, sched_d: Any, stream: BatchStream, generator: torch.Generator,
          pool: TrainingPairPool) -> Path | None:
    """Every rank contributes its random streams and pool; rank 0 writes; all wait for it."""
    per_rank = {
        "torch_cpu": torch.get_rng_state(),
        "torch_cuda": torch.cuda.get_rng_state(ctx.device) if ctx.device.type == "cuda" else None,
        "degradation": generator.get_state(),
        "pool": pool.state_dict(),
    }
    ranks = gather_to_main(per_rank, ctx)
    for name, module in (("generator", g), ("discriminator", d)):
        if module is not None and not ranks_in_sync(module, ctx):
            raise TrainError(f"iteration {iteration}: the {name} weights differ between ranks")
    path = None
    if ctx.is_main:
        exp = cfg.experiment_dir
        # One CPU copy of each network serves the exported weights and the training state.
        net_g, net_g_ema, net_d = (None if m is None else ckpt.cpu_state(m) for m in (g, g_ema, d))
        ckpt.export_generator(exp, iteration, net_g, net_g_ema, net_d,
                              network=(cfg.network_g.type, dict(cfg.network_g.kwargs)))
        path = ckpt.save_state(exp, iteration, {
            "net_g": net_g, "net_g_ema": net_g_ema, "net_d": net_d,
            "opt_g": opt_g.state_dict(), "opt_d": None if opt_d is None else opt_d.state_dict(),
            "sched_g": sched_g.state_dict(), "sched_d": None if sched_d is None else sched_d.state_dict(),
            "data": stream.state_dict(), "ranks": ranks, "world_size": ctx.world_size,
            "config": config_to_dict(cfg),
        }, keep=cfg.logger.keep_checkpoints)
        log.info("iter %d  saved %s", iteration, path)
    barrier(ctx)  # nobody runs ahead (or exits) before the checkpoint is on disk
    return path


def _restore(found: tuple[Path, dict[str, Any]], cfg: TrainingConfig, ctx: DistContext, *, g: Any, g_ema: Any,
             d: Any, opt_g: Any, opt_d: Any, sched_g: Any, sched_d: Any, stream: BatchStream,
             generator: torch.Generator, pool: TrainingPairPool) -> int:
    path, state = found
    try:
        g.load_state_dict(state["net_g"])
        if g_ema is not None:
            g_ema.load_state_dict(state["net_g_ema"] if state["net_g_ema"] is not None else state["net_g"])
        if d is not None:
            d.load_state_dict(state["net_d"])
        opt_g.load_state_dict(state["opt_g"])
        sched_g.load_state_dict(state["sched_g"])
        if opt_d is not None:
            opt_d.load_state_dict(state["opt_d"])
            sched_d.load_state_dict(state["sched_d"])
        for optimizer in (opt_g, opt_d):
            if optimizer is not None:
                _match_param_layout(optimizer)
        stream.load_state_dict(state["data"])
    except (KeyError, RuntimeError, ValueError, TypeError) as e:
        raise TrainError(f"{path}: does not match this config ({str(e).splitlines()[0]})") from None
    changed = _changed_keys(state.get("config", {}), config_to_dict(cfg))
    if changed:
        log.warning("resuming with a config that differs from the checkpoint's in: %s", ", ".join(changed[:10]))
    ranks = state["ranks"]
    if len(ranks) == ctx.world_size:
        mine = ranks[ctx.rank]
        torch.set_rng_state(mine["torch_cpu"])
        if mine["torch_cuda"] is not None and ctx.device.type == "cuda":
            torch.cuda.set_rng_state(mine["torch_cuda"], ctx.device)
        generator.set_state(mine["degradation"])
        try:
            pool.load_state_dict(mine["pool"], device=ctx.device)
        except ValueError as e:  # e.g. queue_size or batch size changed since the checkpoint
            raise TrainError(f"{path}: its pair pool does not fit this config ({e})") from None
    else:
        log.warning("%s was saved by %d process(es), this run has %d: degradation streams and pools restart",
                    path, len(ranks), ctx.world_size)
    log.info("resumed from %s (iteration %d)", path, state["iteration"])
    return int(state["iteration"])


def _match_param_layout(optimizer: torch.optim.Optimizer) -> None:
    """Give each moment buffer its parameter's strides (a CPU NCHW checkpoint resumed channels_last on CUDA).

    Multi-tensor and fused optimiser kernels pair elements in memory order, so the layouts must agree.
    """
    for group in optimizer.param_groups:
        for param in group["params"]:
            state = optimizer.state.get(param, {})
            for key, value in state.items():
                if torch.is_tensor(value) and value.shape == param.shape and value.stride() != param.stride():
                    state[key] = torch.empty_like(param, dtype=value.dtype).copy_(value)


def _changed_keys(old: Any, new: Any, prefix: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[str] = []
        for key in dict.fromkeys([*old, *new]):
            out += _changed_keys(old.get(key), new.get(key), f"{prefix}{key}.")
        return out
    return [] if old == new else [prefix.rstrip(".")]


def _validate(cfg: TrainingConfig, net: torch.nn.Module, dataset: Any, device: torch.device,
              iteration: int) -> dict[str, float]:
    from soccersr.train.validate import validate
    from soccersr.weights.model import size_multiple_for

    image_dir = cfg.experiment_dir / "visualization" if cfg.val is not None and cfg.val.save_img else None
    return validate(net, dataset, device=device, scale=cfg.scale, iteration=iteration, image_dir=image_dir,
                    size_multiple=size_multiple_for(cfg.network_g.type, dict(cfg.network_g.kwargs)))
