"""recipes/soccer_x4plus/finish.py: the fp16 weights survive the split into parts and the join, and a
damaged part or a wrong network never lands in the package folder."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from soccersr.archs import RRDBNet

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def finish():
    spec = importlib.util.spec_from_file_location("finish", REPO / "recipes" / "soccer_x4plus" / "finish.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _checkpoint(path: Path, scale: int = 4) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    state = RRDBNet(num_in_ch=3, num_out_ch=3, scale=scale, num_feat=8, num_block=1, num_grow_ch=4).state_dict()
    torch.save({"params_ema": state, "params": {k: torch.zeros_like(v) for k, v in state.items()}}, path)
    return state


def test_pack_then_join_gives_the_ema_weights_in_fp16(finish, tmp_path: Path, monkeypatch) -> None:
    state = _checkpoint(tmp_path / "net_g_10.pth")
    monkeypatch.setattr(finish, "PART_BYTES", 4096)  # force several parts from a tiny network
    out = tmp_path / "out"
    out.mkdir()
    finish.pack(tmp_path / "net_g_10.pth", out)
    manifest = json.loads((out / "pack.json").read_text())
    assert len(manifest["parts"]) > 1
    target = tmp_path / "pkg" / "soccer-x4plus.safetensors"
    finish.join(out, target)
    joined = load_file(target)
    assert joined.keys() == state.keys()
    for key, value in state.items():  # the EMA weights, not "params", rounded to fp16
        assert joined[key].dtype == torch.float16
        assert torch.equal(joined[key], value.half())
    assert target.stat().st_mode & 0o044 == 0o044, "installed weights must be readable, not a 0600 temp file"


def test_join_refuses_a_damaged_part_and_a_wrong_network(finish, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    _checkpoint(tmp_path / "net.pth")
    finish.pack(tmp_path / "net.pth", out)
    part = out / json.loads((out / "pack.json").read_text())["parts"][0]["name"]
    good = part.read_bytes()
    part.write_bytes(good[:-1] + bytes([good[-1] ^ 1]))
    target = tmp_path / "soccer-x4plus.safetensors"
    with pytest.raises(SystemExit, match="checksum mismatch"):
        finish.join(out, target)
    assert not target.exists()

    x2 = tmp_path / "x2"
    x2.mkdir()
    _checkpoint(tmp_path / "x2.pth", scale=2)
    finish.pack(tmp_path / "x2.pth", x2)
    with pytest.raises(SystemExit, match="expected an x4 RRDBNet"):
        finish.join(x2, target)
    assert not target.exists() and list(tmp_path.glob(".*tmp*")) == []
