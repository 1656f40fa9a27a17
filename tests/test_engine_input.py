"""The engine's input check: what ``TileEngine.upscale`` refuses before any tile runs."""

from __future__ import annotations

import pytest
import torch

from soccersr.infer.engine import Upscaler
from tiny_models import tiny_model


@pytest.fixture(scope="module")
def upscaler() -> Upscaler:
    return Upscaler(tiny_model("RRDBNet"), engine="torch", device="cpu", tile=16, tile_overlap=4)


def _image(seed: int = 0) -> torch.Tensor:
    return torch.rand(2, 3, 20, 28, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_input_is_refused(upscaler: Upscaler, bad: float) -> None:
    """One NaN pixel used to come out as NaN over a whole tile's receptive field (issue 13, item 11),
    where the contract promises [0, 1]."""
    x = _image()
    x[1, 2, 5, 7] = bad
    with pytest.raises(
        ValueError,
        match=r"^images contain NaN or infinite values \(1 of 3360, first in image 1\); "
        r"expected float32 RGB in \[0, 1\]$",
    ):
        upscaler.upscale(x)


def test_finite_input_outside_0_1_is_clamped_not_refused(upscaler: Upscaler) -> None:
    """Out-of-range but finite values (e.g. from an unclamped resize) keep working: the output is clamped."""
    x = _image() * 1.2 - 0.1
    out = upscaler.upscale(x)
    assert out.shape == (2, 3, 80, 112) and torch.isfinite(out).all()
    assert out.min() >= 0 and out.max() <= 1
