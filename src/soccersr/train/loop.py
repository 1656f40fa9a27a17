"""The training loop: build everything, then per iteration: checkpoint and validate when due, step, log.

Runs as one process or under torchrun (one process per GPU). Rank 0 logs, validates and writes
checkpoints; every rank trains on its own share of the data with its own degradation stream.
Everything that can stop a start (the state to resume, data, pretrained and VGG weights) is
built before the experiment folder is created or touched, so a failed start leaves nothing.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from soccersr.data.dataset import PairedImageDataset
from soccersr.errors import SoccersrError
from soccersr.io.atomic import atomic_write_bytes
from soccersr.train import checkpoint as ckpt
from soccersr.train.build import build_perceptual
from soccersr.train.config import TrainingConfig, config_to_dict, dump_config
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
from soccersr.train.logs import LOSS_COLUMNS_ESRGAN, LOSS_COLUMNS_ESRNET, TrainLogger
from soccersr.train.state import StateMismatch, TrainState, build_networks, build_train_state
from soccersr.train.step import Networks, StepOptions, train_step
from soccersr.train.validate import validate
from soccersr.weights.model import size_multiple_for

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


def train(
    cfg: TrainingConfig,
    *,
    resume: str | Path | None = None,
    auto_resume: bool = False,
    device: str | torch.device = "auto",
) -> TrainResult:
    """Train (or continue training) as configured; under torchrun every process calls this."""
    ctx = init_distributed(device)
    try:
        return _run(cfg, ctx, resume=resume, auto_resume=auto_resume)
    finally:
        close_distributed(ctx)


def _run(cfg: TrainingConfig, ctx: DistContext, *, resume: str | Path | None, auto_resume: bool) -> TrainResult:
    device, t = ctx.device, cfg.train
    if device.type == "cuda":
        # The same input shapes every step: let cuDNN time its convolution algorithms once and keep the fastest.
        torch.backends.cudnn.benchmark = True

    # ---- set up: the state to continue from, networks, optimisers, data; nothing is written yet ----
    found = _find_state(cfg, resume, auto_resume)  # every rank reads the same file from shared storage
    torch.manual_seed(cfg.manual_seed)  # the same initial weights on every rank (DDP also broadcasts rank 0's)
    g, g_ema, d = build_networks(cfg, from_pretrained=found is None)
    perceptual = build_perceptual(cfg) if cfg.is_gan else None
    opts = StepOptions.from_config(cfg, device)
    memory_format = torch.channels_last if opts.channels_last else torch.preserve_format
    for module in (g, d, g_ema, perceptual):
        if module is not None:
            module.to(device=device, memory_format=memory_format)
    state = build_train_state(cfg, ctx, g=g, g_ema=g_ema, d=d)
    if found is not None:
        _resume(state, found, cfg, ctx)
    nets = _wrap(state, perceptual, compile_=t.compile, ctx=ctx)
    val_set = _open_val_set(cfg, ctx)

    # ---- the run can start: only now the experiment folder is created (or, resuming, written to) ----
    logger = _start_experiment(cfg, ctx, state.iteration)
    log.info(
        "training %s (%s) on %s x %d from iteration %d to %d",
        cfg.name,
        cfg.model_type,
        device,
        ctx.world_size,
        state.iteration,
        t.total_iter,
    )
    if isinstance(cfg.num_gpu, int) and cfg.num_gpu != ctx.world_size:
        log.warning(
            "num_gpu is %d but %d process(es) run: the process count (torchrun) decides", cfg.num_gpu, ctx.world_size
        )
    try:
        return _loop(cfg, ctx, state, nets, opts, val_set, logger, last_state=found[0] if found else None)
    finally:
        if logger is not None:
            logger.close()


def _loop(
    cfg: TrainingConfig,
    ctx: DistContext,
    state: TrainState,
    nets: Networks,
    opts: StepOptions,
    val_set: Any,
    logger: TrainLogger | None,
    *,
    last_state: Path | None,
) -> TrainResult:
    t, start = cfg.train, state.iteration
    stop_at = t.total_iter
    deadline = None if t.time_limit_min is None else time.monotonic() + 60 * t.time_limit_min
    timer = _IterationTimer()
    values: dict[str, float] = {}
    # disable=None: a progress bar on rank 0 when stderr is a terminal, none in log files.
    with (
        logging_redirect_tqdm(),
        tqdm(
            total=t.total_iter,
            initial=start,
            unit="it",
            dynamic_ncols=True,
            disable=None if ctx.is_main else True,
            smoothing=0.05,
        ) as bar,
    ):
        while True:
            # ---- checkpoint, then validation: on their schedules and at the end (state.iteration is done) ----
            done = state.iteration >= stop_at
            if state.iteration > start and (done or state.iteration % cfg.logger.save_checkpoint_freq == 0):
                last_state = _save_checkpoint(cfg, ctx, state)
            if state.iteration > start and cfg.val is not None and (done or state.iteration % cfg.val.val_freq == 0):
                _validate(cfg, ctx, state, val_set, logger)
            if done:
                break

            # ---- learning rate: the schedulers set it at the end of the previous iteration ----
            lr_g, lr_d = state.learning_rates()

            # ---- one step: degrade a batch of HR crops, update G (and D), move the EMA ----
            batch = state.stream.next()
            gt = batch["gt"].to(ctx.device, non_blocking=True)
            mask = batch["player_mask"].to(ctx.device, non_blocking=True) if "player_mask" in batch else None
            state.iteration += 1
            losses = train_step(
                gt,
                player_mask=mask,
                nets=nets,
                opt_g=state.opt_g,
                opt_d=state.opt_d,
                pool=state.pool,
                generator=state.degradation_rng,
                opts=opts,
                iteration=state.iteration,
            )
            state.step_schedulers()  # after the step, so a checkpoint holds the next iteration's lr
            bar.update(1)
            timer.tick()

            # ---- time limit and log, at logging steps (each is a host-device sync) ----
            logging_step = state.iteration % cfg.logger.print_freq == 0
            if logging_step and deadline is not None and _time_is_up(deadline, ctx):
                log.info("iter %d  time limit of %g min reached: stopping here", state.iteration, t.time_limit_min)
                stop_at = state.iteration
            if logging_step or state.iteration == stop_at:
                values = _log(state, losses, lr_g, lr_d, timer, ctx, logger, bar, last_state=last_state)
    return TrainResult(
        iteration=state.iteration, experiment_dir=cfg.experiment_dir, last_state=last_state, losses=values
    )


# ---- set-up helpers, in the order _run calls them ----


def _find_state(
    cfg: TrainingConfig, resume: str | Path | None, auto_resume: bool
) -> tuple[Path, dict[str, Any]] | None:
    """The (path, content) to continue from, None for a fresh run; CheckpointError when unreadable."""
    explicit = resume or cfg.path.resume_state
    if explicit:
        return Path(explicit), ckpt.load_state(Path(explicit))
    if auto_resume:
        found = ckpt.load_latest_state(cfg.experiment_dir)
        if found is None:
            log.info("--auto-resume: no training state in %s, starting from scratch", cfg.experiment_dir)
        return found
    if ckpt.list_states(cfg.experiment_dir):
        raise TrainError(
            f"{cfg.experiment_dir}: already holds training states; pass --auto-resume to continue "
            "that run, or choose another 'name'"
        )
    return None


def _resume(state: TrainState, found: tuple[Path, dict[str, Any]], cfg: TrainingConfig, ctx: DistContext) -> None:
    path, saved = found
    try:
        state.load_state_dict(saved, rank=ctx.rank, world_size=ctx.world_size, device=ctx.device)
    except StateMismatch as e:
        raise TrainError(f"{path}: {e}") from None
    changed = _changed_keys(saved.get("config", {}), config_to_dict(cfg))
    if changed:
        log.warning("resuming with a config that differs from the checkpoint's in: %s", ", ".join(changed[:10]))
    log.info("resumed from %s (iteration %d)", path, state.iteration)


def _changed_keys(old: Any, new: Any, prefix: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[str] = []
        for key in dict.fromkeys([*old, *new]):
            out += _changed_keys(old.get(key), new.get(key), f"{prefix}{key}.")
        return out
    return [] if old == new else [prefix.rstrip(".")]


def _wrap(state: TrainState, perceptual: Any, *, compile_: bool, ctx: DistContext) -> Networks:
    """What the step runs: the state's modules, compiled and/or DDP-wrapped as configured."""
    g, d = state.g, state.d
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
    return Networks(
        g=g, g_forward=g_forward, g_ema=state.g_ema, d=d, d_forward=d_forward, d_frozen_forward=d, perceptual=perceptual
    )


def _open_val_set(cfg: TrainingConfig, ctx: DistContext) -> Any:
    if not ctx.is_main or cfg.datasets.val is None:
        return None
    val = cfg.datasets.val
    return PairedImageDataset(Path(val.dataroot_lq), Path(val.dataroot_gt), scale=cfg.scale)


def _start_experiment(cfg: TrainingConfig, ctx: DistContext, start_iteration: int) -> TrainLogger | None:
    """Create the experiment folder with the resolved config and open the logs (rank 0's)."""
    logger = None
    if ctx.is_main:
        exp = cfg.experiment_dir
        exp.mkdir(parents=True, exist_ok=True)
        ckpt.remove_stale_temporaries(exp)
        atomic_write_bytes(exp / "config.yml", dump_config(cfg).encode("utf-8"))
        logger = TrainLogger(
            exp / "logs",
            loss_columns=LOSS_COLUMNS_ESRGAN if cfg.is_gan else LOSS_COLUMNS_ESRNET,
            start_iteration=start_iteration,
            tensorboard=cfg.logger.use_tb_logger,
        )
    barrier(ctx)
    return logger


# ---- loop helpers ----


class _IterationTimer:
    """Seconds per iteration over the iterations since the last logging step."""

    def __init__(self) -> None:
        self._start, self._count = time.perf_counter(), 0

    def tick(self) -> None:
        self._count += 1

    def lap(self) -> float:
        now = time.perf_counter()
        seconds = (now - self._start) / max(self._count, 1)
        self._start, self._count = now, 0
        return seconds


def _time_is_up(deadline: float, ctx: DistContext) -> bool:
    # Rank 0's clock decides, so every rank stops at the same iteration.
    return bool(broadcast_from_main(time.monotonic() > deadline, ctx))


def _log(
    state: TrainState,
    losses: dict[str, torch.Tensor],
    lr_g: float,
    lr_d: float,
    timer: _IterationTimer,
    ctx: DistContext,
    logger: TrainLogger | None,
    bar: Any,
    *,
    last_state: Path | None,
) -> dict[str, float]:
    """Average the losses over ranks, stop on a non-finite one, write the CSV row and the log line."""
    values = mean_over_ranks(losses, ctx)  # the only host-device sync of an ordinary iteration
    bad = [k for k, v in values.items() if not math.isfinite(v)]
    if bad:
        raise TrainError(
            f"iteration {state.iteration}: {bad[0]} is {values[bad[0]]}; training diverged "
            f"(last checkpoint: {last_state or 'none'})"
        )
    row = {"epoch": state.stream.epoch, "lr_g": lr_g, "lr_d": lr_d, "sec_per_iter": timer.lap(), **values}
    if logger is not None:
        logger.train(state.iteration, row)
        bar.set_postfix({k: f"{v:.4g}" for k, v in values.items() if k.startswith("l_")}, refresh=False)
        log.info("iter %d  lr %.3g  %s", state.iteration, lr_g, "  ".join(f"{k} {v:.4g}" for k, v in values.items()))
    return values


def _save_checkpoint(cfg: TrainingConfig, ctx: DistContext, state: TrainState) -> Path | None:
    """Every rank contributes its random streams and pool; rank 0 writes; all wait for it."""
    ranks = gather_to_main(state.rank_state_dict(ctx.device), ctx)
    for name, module in (("generator", state.g), ("discriminator", state.d)):
        if module is not None and not ranks_in_sync(module, ctx):
            raise TrainError(f"iteration {state.iteration}: the {name} weights differ between ranks")
    path = None
    if ctx.is_main:
        assert ranks is not None
        exp, saved = cfg.experiment_dir, state.state_dict(ranks)
        # The exported weights reuse the state's CPU copies of the networks.
        ckpt.export_generator(
            exp,
            state.iteration,
            saved["net_g"],
            saved["net_g_ema"],
            saved["net_d"],
            network=(cfg.network_g.type, dict(cfg.network_g.kwargs)),
            weights=cfg.logger.save_weights,
        )
        path = ckpt.save_state(
            exp, state.iteration, {**saved, "config": config_to_dict(cfg)}, keep=cfg.logger.keep_checkpoints
        )
        log.info("iter %d  saved %s", state.iteration, path)
    barrier(ctx)  # nobody runs ahead (or exits) before the checkpoint is on disk
    return path


def _validate(
    cfg: TrainingConfig, ctx: DistContext, state: TrainState, val_set: Any, logger: TrainLogger | None
) -> None:
    """Rank 0 measures the EMA generator (G without one) on the validation pairs; the others wait."""
    if ctx.is_main and val_set is not None and logger is not None:
        image_dir = cfg.experiment_dir / "visualization" if cfg.val is not None and cfg.val.save_img else None
        net = state.g_ema if state.g_ema is not None else state.g
        metrics = validate(
            net,
            val_set,
            device=ctx.device,
            scale=cfg.scale,
            iteration=state.iteration,
            image_dir=image_dir,
            size_multiple=size_multiple_for(cfg.network_g.type, dict(cfg.network_g.kwargs)),
        )
        logger.val(state.iteration, metrics)
        log.info("iter %d  validation  psnr %.3f dB  ssim %.4f", state.iteration, metrics["psnr"], metrics["ssim"])
    barrier(ctx)  # the other ranks wait instead of running ahead into a collective
