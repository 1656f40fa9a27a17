"""Tiny but real networks for tests: RRDBNet with one 8-feature block, or a 2-conv compact net."""

from __future__ import annotations

import torch

from soccersr.weights.model import SRModel, build_network, size_multiple_for


def tiny_model(arch: str = "RRDBNet", *, scale: int = 4, model_scale: float | None = None, seed: int = 0) -> SRModel:
    """``model_scale`` differs from ``scale`` for "network, then a fixed resize" models (animevideov3 x2/x3)."""
    if arch == "RRDBNet":
        kwargs: dict[str, int | str] = dict(
            num_in_ch=3, num_out_ch=3, scale=scale, num_feat=8, num_block=1, num_grow_ch=4
        )
    else:
        kwargs = dict(num_in_ch=3, num_out_ch=3, num_feat=8, num_conv=2, upscale=scale, act_type="prelu")
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        net = build_network(arch, kwargs).eval()
        for p in net.parameters():
            if p.ndim == 1:  # distinct biases and PReLU slopes, like trained weights (the init makes them 0 / 0.25)
                p.data.uniform_(-0.1, 0.5)
    return SRModel(
        net=net,
        name=f"tiny-{arch}-x{scale}",
        arch=arch,
        arch_kwargs=kwargs,
        net_scale=scale,
        scale=model_scale if model_scale is not None else scale,
        size_multiple=size_multiple_for(arch, kwargs),
        source="test",
    )
