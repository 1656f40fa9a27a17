"""Exponential moving average of the generator's weights (saved as ``params_ema``).

``ema = decay * ema + (1 - decay) * g`` for every parameter, updated **in place** on the EMA
module's own tensors (the earlier Paddle port rebound dict entries instead, so its EMA never moved).
Buffers, which are not trained, are copied.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


def make_ema(model: nn.Module) -> nn.Module:
    """A frozen copy of ``model`` to hold the average (starts equal to ``model``)."""
    ema = copy.deepcopy(model)
    ema.requires_grad_(False)
    ema.eval()
    return ema


@torch.no_grad()
def ema_update_(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """Move ``ema`` towards ``model``: ``ema <- decay * ema + (1 - decay) * model``, in place.

    Both modules must have the same parameter names (pass the bare module, not a DDP or compiled wrapper).
    """
    ema_params = dict(ema.named_parameters())
    model_params = dict(model.named_parameters())
    if ema_params.keys() != model_params.keys():
        raise ValueError("EMA and model parameter names differ (pass the bare module, not a DDP/compiled wrapper)")
    names = list(ema_params)
    targets = [ema_params[n] for n in names]
    sources = [model_params[n].detach() for n in names]
    # One fused multi-tensor op instead of ~700 small kernels per step for the 23-block RRDBNet.
    # lerp(e, g, 1 - d) = e + (1 - d) * (g - e) = d * e + (1 - d) * g.
    torch._foreach_lerp_(targets, sources, 1.0 - decay)
    model_buffers = dict(model.named_buffers())
    for name, buf in ema.named_buffers():
        buf.copy_(model_buffers[name])
