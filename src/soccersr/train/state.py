"""Everything a run changes as it trains, in one bundle: ``TrainState``.

The networks (G, its EMA, D), their optimisers and learning-rate schedulers, the position in the
data, and each process's random streams (torch's global generator, the degradation generator and
the training-pair pool). ``state_dict()`` is what a training-state file holds, so a run loaded
from one continues bit for bit. Its keys are those of the first format (``soccersr-train-state/1``):
files written before this module existed load unchanged.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from soccersr.degrade import TrainingPairPool
from soccersr.train.build import (
    build_discriminator,
    build_generator,
    build_optimizer,
    build_scheduler,
    load_into,
    read_pretrained,
)
from soccersr.train.checkpoint import cpu_state
from soccersr.train.config import TrainingConfig
from soccersr.train.data import BatchStream, build_batch_stream
from soccersr.train.distributed import DistContext
from soccersr.train.ema import make_ema

log = logging.getLogger(__name__)

Scheduler = torch.optim.lr_scheduler.LRScheduler

# The random streams of one process; the numbers are part of the seeds, so they never change.
_DEGRADATION, _POOL, _LOADER = 1, 2, 3


class StateMismatch(ValueError):
    """A saved state does not fit what this config builds; the message says which part."""


def stream_seed(base: int, rank: int, purpose: int) -> int:
    """The seed of one random stream: independent per (run seed, rank, purpose), so ranks do not degrade alike."""
    return int(np.random.SeedSequence([base, rank, purpose]).generate_state(1, dtype=np.uint64)[0] >> 1)


@dataclass
class TrainState:
    """What a checkpoint must hold to continue bit for bit (see the module docstring)."""

    g: nn.Module
    """The bare generator (never a DDP or compiled wrapper): its names are the checkpoint's."""
    g_ema: nn.Module | None
    d: nn.Module | None
    opt_g: torch.optim.Optimizer
    sched_g: Scheduler
    opt_d: torch.optim.Optimizer | None
    sched_d: Scheduler | None
    stream: BatchStream
    degradation_rng: torch.Generator
    """This process's degradation parameters and crops come from here (CPU)."""
    pool: TrainingPairPool
    iteration: int = 0
    """Completed iterations."""

    def learning_rates(self) -> tuple[float, float]:
        """(G, D) learning rates the next iteration runs with (D: NaN without a discriminator)."""
        lr_d = self.opt_d.param_groups[0]["lr"] if self.opt_d is not None else float("nan")
        return self.opt_g.param_groups[0]["lr"], lr_d

    def step_schedulers(self) -> None:
        """Set the lr of the next iteration; call once per iteration, after the optimiser steps."""
        # They count iterations, as the official schedule does, also during a D-only warm-up when G
        # has not stepped yet, or when D never steps (GAN weight 0): torch warns about exactly that
        # order, which is intended here.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step", category=UserWarning)
            self.sched_g.step()
            if self.sched_d is not None:
                self.sched_d.step()

    # ---- saving: every rank contributes its own random streams, rank 0 writes the rest once ----

    def rank_state_dict(self, device: torch.device) -> dict[str, Any]:
        """This process's random streams and pool (``device``: where its CUDA generator lives)."""
        return {
            "torch_cpu": torch.get_rng_state(),
            "torch_cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
            "degradation": self.degradation_rng.get_state(),
            "pool": self.pool.state_dict(),
        }

    def state_dict(self, ranks: list[dict[str, Any]]) -> dict[str, Any]:
        """The training-state file's content; ``ranks``: every rank's ``rank_state_dict``, in rank order.

        The networks are contiguous CPU copies (``net_g``, ``net_g_ema``, ``net_d``), which the
        exported weights reuse.
        """
        return {
            "iteration": self.iteration,
            "net_g": cpu_state(self.g),
            "net_g_ema": None if self.g_ema is None else cpu_state(self.g_ema),
            "net_d": None if self.d is None else cpu_state(self.d),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": None if self.opt_d is None else self.opt_d.state_dict(),
            "sched_g": self.sched_g.state_dict(),
            "sched_d": None if self.sched_d is None else self.sched_d.state_dict(),
            "data": self.stream.state_dict(),
            "ranks": ranks,
            "world_size": len(ranks),
        }

    # ---- loading ----

    def load_state_dict(self, state: dict[str, Any], *, rank: int, world_size: int, device: torch.device) -> None:
        """Continue from ``state``; raises StateMismatch when it does not fit the built networks or pool.

        Saved by another number of processes, the networks, optimisers and data position still
        load, but the random streams and pools start afresh (one warning).
        """
        try:
            self._load_shared(state)
        except (KeyError, RuntimeError, ValueError, TypeError) as e:
            raise StateMismatch(f"does not match this config ({str(e).splitlines()[0]})") from None
        ranks = state["ranks"]
        if len(ranks) != world_size:
            log.warning(
                "the state was saved by %d process(es), this run has %d: degradation streams and pools restart",
                len(ranks),
                world_size,
            )
        else:
            self._load_rank(ranks[rank], device)
        self.iteration = int(state["iteration"])

    def _load_shared(self, state: dict[str, Any]) -> None:
        self.g.load_state_dict(state["net_g"])
        if self.g_ema is not None:
            # A state saved without an EMA (ema_decay was 0): the EMA starts from G.
            self.g_ema.load_state_dict(state["net_g_ema"] if state["net_g_ema"] is not None else state["net_g"])
        if self.d is not None:
            self.d.load_state_dict(state["net_d"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.sched_g.load_state_dict(state["sched_g"])
        if self.opt_d is not None and self.sched_d is not None:
            self.opt_d.load_state_dict(state["opt_d"])
            self.sched_d.load_state_dict(state["sched_d"])
        for optimizer in (self.opt_g, self.opt_d):
            if optimizer is not None:
                match_param_layout(optimizer)
        self.stream.load_state_dict(state["data"])

    def _load_rank(self, mine: dict[str, Any], device: torch.device) -> None:
        torch.set_rng_state(mine["torch_cpu"])
        if mine["torch_cuda"] is not None and device.type == "cuda":
            torch.cuda.set_rng_state(mine["torch_cuda"], device)
        self.degradation_rng.set_state(mine["degradation"])
        try:
            self.pool.load_state_dict(mine["pool"], device=device)
        except ValueError as e:  # e.g. queue_size or batch size changed since the checkpoint
            raise StateMismatch(f"its pair pool does not fit this config ({e})") from None


def match_param_layout(optimizer: torch.optim.Optimizer) -> None:
    """Give each moment buffer its parameter's strides (a CPU NCHW checkpoint resumed channels_last on CUDA).

    Multi-tensor and fused optimiser kernels pair elements in memory order, so the layouts must agree.
    """
    for group in optimizer.param_groups:
        for param in group["params"]:
            state = optimizer.state.get(param, {})
            for key, value in state.items():
                if torch.is_tensor(value) and value.shape == param.shape and value.stride() != param.stride():
                    state[key] = torch.empty_like(param, dtype=value.dtype).copy_(value)


# ---- building: what a fresh run starts from ----


def build_networks(
    cfg: TrainingConfig, *, from_pretrained: bool
) -> tuple[nn.Module, nn.Module | None, nn.Module | None]:
    """(G, its EMA, D) as configured; with ``from_pretrained``, loaded from ``path.pretrain_network_g`` / ``_d``.

    Seed torch's global generator first: every rank must build the same initial weights.
    """
    p = cfg.path
    g, d = build_generator(cfg), build_discriminator(cfg)
    ema_source: dict[str, torch.Tensor] | None = None
    if from_pretrained and p.pretrain_network_g:
        src = p.pretrain_network_g
        pretrained = read_pretrained(src, param_key=p.param_key_g, key_path="path.pretrain_network_g")
        load_into(g, pretrained, strict=p.strict_load_g, key_path="path.pretrain_network_g", source=src)
        # As the official model: the EMA starts from the file's params_ema (its params when absent).
        ema_source = (
            pretrained
            if p.param_key_g == "params_ema"
            else read_pretrained(src, param_key="params_ema", key_path="path.pretrain_network_g")
        )
    if from_pretrained and d is not None and p.pretrain_network_d:
        src = p.pretrain_network_d
        load_into(
            d,
            read_pretrained(src, param_key=p.param_key_d, key_path="path.pretrain_network_d"),
            strict=p.strict_load_d,
            key_path="path.pretrain_network_d",
            source=src,
        )
    g_ema = make_ema(g) if cfg.train.ema_decay > 0 else None
    if g_ema is not None and ema_source is not None:
        load_into(
            g_ema,
            ema_source,
            strict=p.strict_load_g,
            key_path="path.pretrain_network_g",
            source=str(p.pretrain_network_g),
        )
    return g, g_ema, d


def build_train_state(
    cfg: TrainingConfig, ctx: DistContext, *, g: nn.Module, g_ema: nn.Module | None, d: nn.Module | None
) -> TrainState:
    """Optimisers, schedulers, this rank's batches and random streams around networks already on ``ctx.device``."""
    t, device = cfg.train, ctx.device
    opt_g = build_optimizer(g.parameters(), t.optim_g, device)
    opt_d = build_optimizer(d.parameters(), t.optim_d, device) if d is not None and t.optim_d else None
    return TrainState(
        g=g,
        g_ema=g_ema,
        d=d,
        opt_g=opt_g,
        sched_g=build_scheduler(opt_g, t.scheduler, t.warmup_iter),
        opt_d=opt_d,
        sched_d=build_scheduler(opt_d, t.scheduler, t.warmup_iter) if opt_d is not None else None,
        stream=build_batch_stream(
            cfg.datasets.train,
            rank=ctx.rank,
            world_size=ctx.world_size,
            seed=cfg.manual_seed,
            pin_memory=device.type == "cuda",
            loader_seed=stream_seed(cfg.manual_seed, ctx.rank, _LOADER),
        ),
        degradation_rng=torch.Generator().manual_seed(stream_seed(cfg.manual_seed, ctx.rank, _DEGRADATION)),
        pool=TrainingPairPool(
            cfg.datasets.train.queue_size,
            seed=stream_seed(cfg.manual_seed, ctx.rank, _POOL),
            gt_channels=3 if cfg.datasets.train.dataroot_mask is None else 4,  # the player mask rides along
        ),
    )
