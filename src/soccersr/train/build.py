"""Build what a run trains with: networks (with pretrained weights), perceptual loss, optimisers, schedulers."""

from __future__ import annotations

import bisect
import functools
import logging
from collections.abc import Iterable, Mapping
from pathlib import Path

import torch
from torch import nn

from soccersr.train.config import (
    DISCRIMINATOR_CLASSES,
    GENERATOR_CLASSES,
    ConfigError,
    OptimConfig,
    SchedulerConfig,
    TrainingConfig,
)
from soccersr.train.losses import PerceptualLoss
from soccersr.train.vgg import build_vgg
from soccersr.weights import WeightsError, load_model, load_state_dict_file
from soccersr.weights.load import MissingParamKey
from soccersr.weights.zoo import find_spec

log = logging.getLogger(__name__)


def build_generator(cfg: TrainingConfig) -> nn.Module:
    return GENERATOR_CLASSES[cfg.network_g.type](**cfg.network_g.kwargs)


def build_discriminator(cfg: TrainingConfig) -> nn.Module | None:
    if cfg.network_d is None:
        return None
    return DISCRIMINATOR_CLASSES[cfg.network_d.type](**cfg.network_d.kwargs)


def read_pretrained(source: str, *, param_key: str, key_path: str) -> dict[str, torch.Tensor]:
    """State dict from a built-in model name or a weights file, taking ``param_key`` when the file has it.

    Raises ConfigError naming ``key_path`` (e.g. path.pretrain_network_g) and the reason.
    """
    try:
        if find_spec(source) is not None:
            return load_model(source).net.state_dict()
        path = Path(source)
        try:
            # The official files hold {"params": ..., "params_ema": ...}; pick the configured one.
            return load_state_dict_file(path, param_key=param_key)
        except MissingParamKey:
            log.info("%s has no %r entry; using its default weights", path, param_key)
        return load_state_dict_file(path)
    except WeightsError as e:
        raise ConfigError(f"{key_path}: {e}") from None
    except (OSError, RuntimeError, ValueError) as e:
        raise ConfigError(f"{key_path}: {source}: cannot read ({str(e).splitlines()[0]})") from None


def load_into(net: nn.Module, state: Mapping[str, torch.Tensor], *, strict: bool, key_path: str, source: str) -> None:
    """``load_state_dict`` with one-line errors; non-strict loads log what was skipped."""
    own = net.state_dict()
    for key, value in state.items():
        if key in own and own[key].shape != value.shape:
            raise ConfigError(
                f"{key_path}: {source}: {key} has shape {tuple(value.shape)}, "
                f"the configured network needs {tuple(own[key].shape)}"
            )
    result = net.load_state_dict(dict(state), strict=False)
    if strict and (result.missing_keys or result.unexpected_keys):
        first = (result.missing_keys or result.unexpected_keys)[0]
        kind = "missing key" if result.missing_keys else "unexpected key"
        raise ConfigError(
            f"{key_path}: {source} does not fit the configured network ({kind} {first}); "
            "check network_g / network_d or set strict_load to false"
        )
    if result.missing_keys or result.unexpected_keys:
        log.warning(
            "%s: loaded non-strictly: %d missing, %d unexpected keys",
            source,
            len(result.missing_keys),
            len(result.unexpected_keys),
        )


def build_perceptual(cfg: TrainingConfig) -> PerceptualLoss | None:
    """The VGG perceptual loss, or None when it is not configured or has weight 0."""
    p = cfg.train.perceptual_opt
    if p is None or p.perceptual_weight == 0:
        return None
    vgg = build_vgg(
        tuple(p.layer_weights),
        weights=cfg.path.vgg_weights,
        allow_random=cfg.train.allow_random_vgg,
        vgg_type=p.vgg_type,
        use_input_norm=p.use_input_norm,
        input_norm=None if p.input_norm == "auto" else p.input_norm,
        range_norm=p.range_norm,
    )
    return PerceptualLoss(vgg, p.layer_weights, p.perceptual_weight)


def build_optimizer(params: Iterable[nn.Parameter], cfg: OptimConfig, device: torch.device) -> torch.optim.Adam:
    # The fused CUDA kernel updates all parameters in a few launches instead of one per tensor.
    return torch.optim.Adam(
        list(params), lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay, fused=device.type == "cuda"
    )


def lr_multiplier(step: int, *, milestones: tuple[int, ...], gamma: float, warmup_iter: int) -> float:
    """Learning-rate factor after ``step`` scheduler steps (= before iteration ``step + 1``).

    MultiStepLR: ``gamma`` per milestone passed; with ``warmup_iter > 0`` the first iterations
    ramp linearly (BasicSR: lr * iter / warmup_iter while iter < warmup_iter).
    """
    factor = gamma ** bisect.bisect_right(milestones, step)
    iteration = step + 1
    if warmup_iter > 0 and iteration < warmup_iter:
        factor *= iteration / warmup_iter
    return factor


def build_scheduler(
    optimizer: torch.optim.Optimizer, cfg: SchedulerConfig, warmup_iter: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """A torch scheduler that sets the optimiser's lr every step (call ``.step()`` once per iteration)."""
    factor = functools.partial(
        lr_multiplier, milestones=tuple(cfg.milestones), gamma=cfg.gamma, warmup_iter=warmup_iter
    )
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
