"""Two CPU processes (gloo) train together as under torchrun, and their weights stay identical."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import torch
import torch.multiprocessing as mp

from test_train_common import tiny_raw


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world_size: int, port: int, raw: dict, out_dir: str) -> None:
    # What torchrun would set for each process.
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world_size),
                      RANK=str(rank), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    import soccersr.train.loop as loop
    from soccersr.train import parse_config

    real_check = loop.ranks_in_sync

    def recording_check(module, ctx):  # also keep each rank's G and D weights for the test to compare
        name = type(module).__name__
        torch.save({k: v.clone() for k, v in module.state_dict().items()}, Path(out_dir) / f"{name}_rank{ctx.rank}.pt")
        return real_check(module, ctx)

    loop.ranks_in_sync = recording_check
    result = loop.train(parse_config(raw), device="cpu")
    torch.save({"iteration": result.iteration, "losses": result.losses}, Path(out_dir) / f"result_rank{rank}.pt")


def test_two_gloo_processes_stay_in_sync(tmp_path: Path, soccer_crops: Path) -> None:
    raw = tiny_raw(tmp_path, soccer_crops, gan=True, total_iter=3)
    mp.spawn(_worker, args=(2, _free_port(), raw, str(tmp_path)), nprocs=2, join=True)

    results = [torch.load(tmp_path / f"result_rank{r}.pt", weights_only=True) for r in (0, 1)]
    assert [r["iteration"] for r in results] == [3, 3]
    assert results[0]["losses"] == results[1]["losses"]  # logged losses are averaged over ranks
    g0, g1 = (torch.load(tmp_path / f"RRDBNet_rank{r}.pt", weights_only=True) for r in (0, 1))
    assert all(torch.equal(g0[k], g1[k]) for k in g0)
    d0, d1 = (torch.load(tmp_path / f"UNetDiscriminatorSN_rank{r}.pt", weights_only=True) for r in (0, 1))
    assert all(torch.equal(d0[k], d1[k]) for k in d0)  # spectral-norm u/v buffers included

    exp = tmp_path / "experiments" / "tiny"
    state = torch.load(exp / "training_states" / "3.state", weights_only=True)
    assert state["world_size"] == 2 and len(state["ranks"]) == 2
    torch.testing.assert_close(state["net_g"], g0, rtol=0, atol=0)
    # Each rank degrades its own share of the data with its own random stream.
    pools = [rank["pool"] for rank in state["ranks"]]
    assert pools[0]["count"] == pools[1]["count"] == 4
    assert not torch.equal(pools[0]["lq"], pools[1]["lq"]) and not torch.equal(pools[0]["gt"], pools[1]["gt"])
    assert not torch.equal(state["ranks"][0]["degradation"], state["ranks"][1]["degradation"])
    assert state["data"] == {"epoch": 2, "batch": 1}  # 3 images per rank: one batch of 2 per epoch
