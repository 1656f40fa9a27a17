"""Two CPU processes (gloo) train together under torchrun, and their weights stay identical.

The workers run under a real `torch.distributed.run` in a fresh interpreter, as users start them, so
nothing the test process loaded before (OpenVINO, PyAV, a browser driver) is in the workers.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import torch

from test_train_common import tiny_raw

WORKER = Path(__file__).with_name("ddp_worker.py")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_gloo_processes_stay_in_sync(tmp_path: Path, soccer_crops: Path) -> None:
    raw = tiny_raw(tmp_path, soccer_crops, gan=True, total_iter=3)
    config = tmp_path / "config.json"
    config.write_text(json.dumps(raw))
    torchrun = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nnodes=1",
        "--nproc_per_node=2",
        "--master_addr=127.0.0.1",
        f"--master_port={_free_port()}",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [*torchrun, str(WORKER), str(config), str(tmp_path)], env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]

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
