"""recipes/soccer_x4plus/finish.py: the fp16 weights survive the split into parts and the join, and a
damaged part or a network other than the one the zoo row declares never lands in the package folder."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from script_modules import load_script
from soccersr.archs import RRDBNet

TINY = dict(num_in_ch=3, num_out_ch=3, scale=4, num_feat=8, num_block=1, num_grow_ch=4)


@pytest.fixture(scope="module")
def finish():
    return load_script(Path("recipes/soccer_x4plus/finish.py"))


def _checkpoint(path: Path, **overrides: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    state = RRDBNet(**{**TINY, **overrides}).state_dict()
    torch.save({"params_ema": state, "params": {k: torch.zeros_like(v) for k, v in state.items()}}, path)
    return state


def _packed(finish, tmp_path: Path, name: str, **overrides: int) -> Path:
    out = tmp_path / name
    _checkpoint(tmp_path / f"{name}.pth", **overrides)
    finish.pack(tmp_path / f"{name}.pth", out)
    return out


def test_pack_then_join_gives_the_ema_weights_in_fp16(finish, tmp_path: Path, monkeypatch) -> None:
    state = _checkpoint(tmp_path / "net_g_10.pth")
    monkeypatch.setattr(finish, "PART_BYTES", 4096)  # force several parts from a tiny network
    out = tmp_path / "out"  # pack creates it
    finish.pack(tmp_path / "net_g_10.pth", out)
    manifest = json.loads((out / "pack.json").read_text())
    assert len(manifest["parts"]) > 1
    target = tmp_path / "pkg" / "soccer-x4plus.safetensors"
    finish.join(out, target, expect=TINY)
    joined = load_file(target)
    assert joined.keys() == state.keys()
    for key, value in state.items():  # the EMA weights, not "params", rounded to fp16
        assert joined[key].dtype == torch.float16
        assert torch.equal(joined[key], value.half())
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask, "a normal new file, not a 0600 temp file"


def test_pack_refuses_a_checkpoint_without_ema(finish, tmp_path: Path) -> None:
    torch.save({"params": RRDBNet(**TINY).state_dict()}, tmp_path / "no_ema.pth")
    with pytest.raises(SystemExit, match="no params_ema"):
        finish.pack(tmp_path / "no_ema.pth", tmp_path / "out")


def test_join_refuses_a_damaged_part(finish, tmp_path: Path) -> None:
    out = _packed(finish, tmp_path, "net")
    part = out / json.loads((out / "pack.json").read_text())["parts"][0]["name"]
    good = part.read_bytes()
    part.write_bytes(good[:-1] + bytes([good[-1] ^ 1]))
    target = tmp_path / "soccer-x4plus.safetensors"
    with pytest.raises(SystemExit, match="checksum mismatch"):
        finish.join(out, target, expect=TINY)
    assert not target.exists()


@pytest.mark.parametrize("overrides", [dict(scale=2), dict(num_block=2), dict(num_feat=16)])
def test_join_refuses_another_network_than_the_zoo_row(finish, tmp_path: Path, overrides: dict[str, int]) -> None:
    out = _packed(finish, tmp_path, "other", **overrides)
    target = tmp_path / "soccer-x4plus.safetensors"
    with pytest.raises(SystemExit, match="expected an RRDBNet"):
        finish.join(out, target, expect=TINY)
    assert not target.exists()


def test_join_checks_the_real_zoo_row_by_default(finish, tmp_path: Path) -> None:
    # The tiny network is an x4 RRDBNet too, but not the 23-block one soccer-x4plus declares.
    out = _packed(finish, tmp_path, "tiny")
    with pytest.raises(SystemExit, match="'num_block': 23"):
        finish.join(out, tmp_path / "soccer-x4plus.safetensors")


def test_join_refuses_missing_weights(finish, tmp_path: Path) -> None:
    state = RRDBNet(**TINY).state_dict()
    del state["body.0.rdb2.conv3.weight"]
    torch.save({"params_ema": state}, tmp_path / "holed.pth")
    finish.pack(tmp_path / "holed.pth", tmp_path / "out")
    with pytest.raises(SystemExit, match="does not load as RRDBNet"):
        finish.join(tmp_path / "out", tmp_path / "soccer-x4plus.safetensors", expect=TINY)
    assert not (tmp_path / "soccer-x4plus.safetensors").exists()
