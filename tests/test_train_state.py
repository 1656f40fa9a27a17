"""TrainState: a state file written before TrainState existed still loads, resumes and is written back alike.

``tests/golden/train_state_v1.state`` was written by ``train()`` at commit d015a60 (the loop with
loose ``_save`` / ``_restore`` arguments) for ``_fixture_raw`` below: the Real-ESRGAN stage,
iteration 2 of 2, on four synthetic 64x64 images (no real frames in the repository).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import torch

from soccersr.train import parse_config, train
from soccersr.train.checkpoint import STATE_FORMAT, load_state, state_path
from soccersr.train.distributed import DistContext
from soccersr.train.state import TrainState, build_networks, build_train_state
from test_train_common import tiny_raw

FIXTURE = Path(__file__).parent / "golden" / "train_state_v1.state"


def _synthetic_images(folder: Path) -> Path:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(4):
        noise = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
        cv2.imwrite(str(folder / f"{i:02d}.png"), cv2.resize(noise, (64, 64), interpolation=cv2.INTER_CUBIC))
    return folder


def _fixture_raw(tmp_path: Path, total_iter: int) -> dict[str, Any]:
    raw = tiny_raw(tmp_path, _synthetic_images(tmp_path / "synthetic"), gan=True, total_iter=total_iter)
    raw["network_g"].update(num_feat=4, num_grow_ch=2)
    raw["network_d"]["num_feat"] = 4
    raw["datasets"]["train"].update(gt_size=16, crop_pad_size=32)
    return raw


def _leaves(obj: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts and lists flattened to {"/net_g/conv_first.weight": tensor, ...}; the config left out."""
    if isinstance(obj, dict):
        return {
            k: v for key, value in obj.items() if key != "config" for k, v in _leaves(value, f"{prefix}/{key}").items()
        }
    if isinstance(obj, (list, tuple)):
        return {k: v for i, value in enumerate(obj) for k, v in _leaves(value, f"{prefix}/{i}").items()}
    return {prefix: obj}


def _same(a: Any, b: Any) -> bool:
    if torch.is_tensor(a) or torch.is_tensor(b):
        return torch.is_tensor(a) and torch.is_tensor(b) and a.dtype == b.dtype and torch.equal(a, b)
    return a == b


def _built_state(tmp_path: Path) -> TrainState:
    cfg = parse_config(_fixture_raw(tmp_path, total_iter=4))
    ctx = DistContext(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))
    g, g_ema, d = build_networks(cfg, from_pretrained=True)
    return build_train_state(cfg, ctx, g=g, g_ema=g_ema, d=d)


def test_state_dict_gives_back_every_value_of_a_loaded_v1_file(tmp_path: Path) -> None:
    saved = load_state(FIXTURE)
    assert saved["format"] == STATE_FORMAT and saved["iteration"] == 2
    state = _built_state(tmp_path)
    state.load_state_dict(saved, rank=0, world_size=1, device=torch.device("cpu"))
    assert state.iteration == 2 and state.stream.state_dict() == {"epoch": 0, "batch": 2}
    again = _leaves(state.state_dict([state.rank_state_dict(torch.device("cpu"))]))
    expected = _leaves({k: v for k, v in saved.items() if k != "format"})
    assert again.keys() == expected.keys()
    assert not [k for k in expected if not _same(again[k], expected[k])]


def test_a_v1_file_resumes_and_the_new_state_has_the_same_layout(tmp_path: Path) -> None:
    raw = _fixture_raw(tmp_path, total_iter=4)
    cfg = parse_config(raw)
    state_path(cfg.experiment_dir, 2).parent.mkdir(parents=True)
    shutil.copy(FIXTURE, state_path(cfg.experiment_dir, 2))
    result = train(cfg, auto_resume=True, device="cpu")
    assert result.iteration == 4 and result.last_state == state_path(cfg.experiment_dir, 4)
    old, new = _leaves(load_state(FIXTURE)), _leaves(load_state(result.last_state))
    assert new.keys() == old.keys()
    shapes = {k: (tuple(v.shape), v.dtype) for k, v in old.items() if torch.is_tensor(v)}
    assert shapes == {k: (tuple(v.shape), v.dtype) for k, v in new.items() if torch.is_tensor(v)}
    # It trained on: G moved on from the file's weights.
    assert not torch.equal(new["/net_g/conv_first.weight"], old["/net_g/conv_first.weight"])


def test_a_state_that_does_not_fit_says_which_part(tmp_path: Path) -> None:
    from soccersr.train.state import StateMismatch

    saved = load_state(FIXTURE)
    state = _built_state(tmp_path)
    with pytest.raises(StateMismatch, match="does not match this config"):
        state.load_state_dict({**saved, "net_d": {}}, rank=0, world_size=1, device=torch.device("cpu"))
