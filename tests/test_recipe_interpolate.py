"""Network interpolation of the soccer-x4plus recipe: the blend is exact, loads as the same network, and
refuses networks that differ."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from script_modules import load_script
from soccersr.archs import RRDBNet
from soccersr.weights import load_model

TINY = dict(num_in_ch=3, num_out_ch=3, scale=4, num_feat=8, num_block=1, num_grow_ch=4)


@pytest.fixture(scope="module")
def interpolate():
    return load_script(Path("recipes/soccer_x4plus/interpolate.py"))


def _checkpoint(path: Path, seed: int, **overrides: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    state = RRDBNet(**{**TINY, **overrides}).state_dict()
    torch.save({"params_ema": state}, path)
    return state


def test_blend_is_the_weighted_mean_and_loads_as_the_same_network(interpolate, tmp_path: Path) -> None:
    a = _checkpoint(tmp_path / "a.pth", 0)
    b = _checkpoint(tmp_path / "b.pth", 1)
    out = tmp_path / "blend.safetensors"
    assert interpolate.main([str(tmp_path / "a.pth"), str(tmp_path / "b.pth"), "--alpha", "0.25", "-o", str(out)]) == 0
    model = load_model(out)
    assert model.arch == "RRDBNet" and dict(model.arch_kwargs)["num_feat"] == 8
    blended = model.net.state_dict()
    for key in a:
        torch.testing.assert_close(blended[key], 0.75 * a[key] + 0.25 * b[key], rtol=0, atol=1e-7)
    # the end points are the two networks themselves
    for alpha, expected in ((0.0, a), (1.0, b)):
        ends = interpolate.interpolate(a, b, alpha)
        assert all(torch.equal(ends[k], expected[k]) for k in a)


def test_networks_that_differ_are_refused(interpolate, tmp_path: Path, capsys) -> None:
    _checkpoint(tmp_path / "a.pth", 0)
    _checkpoint(tmp_path / "wide.pth", 0, num_feat=16)
    out = tmp_path / "blend.safetensors"
    assert (
        interpolate.main([str(tmp_path / "a.pth"), str(tmp_path / "wide.pth"), "--alpha", "0.5", "-o", str(out)]) == 1
    )
    assert "num_feat" in capsys.readouterr().out and not out.exists()
    with pytest.raises(SystemExit):
        interpolate.main([str(tmp_path / "a.pth"), str(tmp_path / "a.pth"), "--alpha", "1.5", "-o", str(out)])
