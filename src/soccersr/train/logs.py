"""Training logs: CSV files always (``logs/train.csv``, ``logs/val.csv``), TensorBoard scalars when available.

Only rank 0 writes. On resume, rows past the resumed iteration (written by the killed run after
its last checkpoint) are dropped, so the CSV reads as one continuous run.
"""

from __future__ import annotations

import csv
import io
import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from soccersr.io.atomic import atomic_write_bytes

log = logging.getLogger(__name__)

LOSS_COLUMNS_ESRNET = ("l_g_pix",)
LOSS_COLUMNS_ESRGAN = ("l_g_pix", "l_g_percep", "l_g_gan", "l_d_real", "l_d_fake", "out_d_real", "out_d_fake")
TRAIN_COLUMNS = ("iteration", "epoch", "lr_g", "lr_d", "sec_per_iter")
VAL_COLUMNS = ("iteration", "psnr", "ssim")


def _truncate_after(path: Path, iteration: int, columns: Sequence[str]) -> None:
    """Keep the rows with ``iteration <= iteration`` (atomic rewrite); the header becomes ``columns``."""
    if not path.is_file():
        return
    with open(path, newline="", encoding="utf-8") as f:
        rows = [
            row
            for row in csv.DictReader(f)
            if row.get("iteration", "").isdigit() and int(row["iteration"]) <= iteration
        ]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), restval="", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_bytes(path, buffer.getvalue().encode("utf-8"))


class _CsvLog:
    def __init__(self, path: Path, columns: Sequence[str], start_iteration: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        _truncate_after(path, start_iteration, columns)
        new = not path.is_file() or path.stat().st_size == 0
        self._file = open(path, "a", newline="", encoding="utf-8")  # noqa: SIM115 - closed in close()
        self._writer = csv.DictWriter(self._file, fieldnames=list(columns), restval="", extrasaction="ignore")
        if new:
            self._writer.writeheader()
            self._file.flush()

    def write(self, row: Mapping[str, Any]) -> None:
        self._writer.writerow({k: _fmt(v) for k, v in row.items()})
        self._file.flush()  # a killed run keeps every line it logged

    def close(self) -> None:
        self._file.close()


def _fmt(value: Any) -> Any:
    if isinstance(value, float) and math.isfinite(value):
        return f"{value:.6g}"
    return value


class TrainLogger:
    """CSV + optional TensorBoard for one run (create on rank 0 only).

    Args:
        log_dir: the experiment's ``logs`` folder (TensorBoard events go to ``log_dir/tb``).
        loss_columns: the loss names of this stage, in CSV column order.
        start_iteration: 0, or the resumed iteration.
        tensorboard: write TensorBoard scalars when ``torch.utils.tensorboard`` imports.
    """

    def __init__(self, log_dir: Path, *, loss_columns: Sequence[str], start_iteration: int, tensorboard: bool) -> None:
        self.train_csv = _CsvLog(log_dir / "train.csv", [*TRAIN_COLUMNS, *loss_columns], start_iteration)
        self.val_csv = _CsvLog(log_dir / "val.csv", VAL_COLUMNS, start_iteration)
        self.tb: Any = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                log.info("tensorboard is not installed: logging to CSV only")
            else:
                # purge_step drops events a killed run wrote after its last checkpoint.
                self.tb = SummaryWriter(str(log_dir / "tb"), purge_step=start_iteration + 1)

    def train(self, iteration: int, values: Mapping[str, float]) -> None:
        self.train_csv.write({"iteration": iteration, **values})
        if self.tb is not None:
            for key, value in values.items():
                if key not in ("iteration", "epoch"):
                    self.tb.add_scalar(f"train/{key}", value, iteration)

    def val(self, iteration: int, metrics: Mapping[str, float]) -> None:
        self.val_csv.write({"iteration": iteration, **metrics})
        if self.tb is not None:
            for key, value in metrics.items():
                self.tb.add_scalar(f"val/{key}", value, iteration)

    def close(self) -> None:
        self.train_csv.close()
        self.val_csv.close()
        if self.tb is not None:
            self.tb.close()
