"""One torchrun worker for test_train_ddp: trains the tiny config and keeps what the test compares.

Run as `python -m torch.distributed.run --nproc_per_node 2 tests/ddp_worker.py CONFIG.json OUT_DIR`.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch

import soccersr.train.loop as loop
from soccersr.train import parse_config


def main(config_json: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    rank = int(os.environ["RANK"])
    real_check = loop.ranks_in_sync

    def recording_check(module, ctx):  # also keep each rank's G and D weights for the test to compare
        name = type(module).__name__
        torch.save({k: v.clone() for k, v in module.state_dict().items()}, Path(out_dir) / f"{name}_rank{ctx.rank}.pt")
        return real_check(module, ctx)

    loop.ranks_in_sync = recording_check
    result = loop.train(parse_config(json.loads(Path(config_json).read_text())), device="cpu")
    torch.save({"iteration": result.iteration, "losses": result.losses}, Path(out_dir) / f"result_rank{rank}.pt")


if __name__ == "__main__":
    main(*sys.argv[1:])
