"""The Ray Data callable class: one engine per actor, one ``upscale_job`` per file.

``map_batches(UpscaleWorker, ...)`` creates a pool of actors; each builds its engine once with
``open_upscaler`` (the model, backend, device, precision and tiling of the command line), then
handles batches of input rows. A row is one file::

    {"source": "/archive/a.jpg", "relative": "a.jpg", "protected": "[]"}

``protected`` is a JSON list of the real paths of other inputs that this file's output could
land on (almost always empty): the same never-replace-an-input rule as the local loop, without
sending every actor the whole input list. The output row says what became of the file (the
fields of ``infer.batch.Outcome``). The worker writes each output itself, atomically, so a
worker killed mid-file leaves nothing under the output name, and Ray retries the file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from soccersr.infer.batch import BatchOptions, Job, Outcome, upscale_job
from soccersr.options import EngineOptions

EXIT_MARKER_ENV = "SOCCERSR_TEST_EXIT_MARKER"
"""For tests only: when set to a file that exists, the first worker to finish a tile removes the
file and exits at once (``os._exit``), as a process killed mid-file would."""

OUTPUT_COLUMNS = ("source", "output", "status", "message", "input_megapixels", "output_megapixels", "seconds")


def job_row(job: Job, protected: Iterable[Path]) -> dict[str, str]:
    """The input row of one job (paths as given: the driver makes them absolute)."""
    protected_json = json.dumps(sorted(map(str, protected)))
    return {"source": str(job.source), "relative": str(job.relative), "protected": protected_json}


def outcome_from_row(row: Mapping[str, Any]) -> Outcome:
    """An output row back into an ``Outcome``, on the driver."""
    return Outcome(
        source=Path(row["source"]),
        status=row["status"],
        output=Path(row["output"]) if row["output"] else None,
        message=row["message"],
        input_megapixels=float(row["input_megapixels"]),
        output_megapixels=float(row["output_megapixels"]),
        seconds=float(row["seconds"]),
    )


class UpscaleWorker:
    """Upscales the files of each batch; built once per Ray actor.

    Args:
        model: built-in model name or a weights / .onnx file every worker machine can read.
        engine: how to run it (``--engine``, ``--device``, ``--precision``, ``--tile``...).
        options: output folder, naming and skip rules (``--suffix``, ``--format``...).
        threads: CPU threads for the network (the actor's CPUs), None to leave PyTorch's default.
    """

    def __init__(self, model: str, engine: EngineOptions, options: BatchOptions, threads: int | None = None) -> None:
        import torch

        from soccersr.infer.backends import open_upscaler

        if threads is not None:
            torch.set_num_threads(threads)
        self.upscaler = open_upscaler(model, engine)
        self.options = options
        self._exit_marker = os.environ.get(EXIT_MARKER_ENV)

    def __call__(self, batch: Mapping[str, Sequence[str]]) -> dict[str, list]:
        outcomes = [
            self._one(Job(Path(source), Path(relative)), frozenset(map(Path, json.loads(protected))))
            for source, relative, protected in zip(batch["source"], batch["relative"], batch["protected"], strict=True)
        ]
        return {
            "source": [str(o.source) for o in outcomes],
            "output": ["" if o.output is None else str(o.output) for o in outcomes],
            "status": [o.status for o in outcomes],
            "message": [o.message for o in outcomes],
            "input_megapixels": [o.input_megapixels for o in outcomes],
            "output_megapixels": [o.output_megapixels for o in outcomes],
            "seconds": [o.seconds for o in outcomes],
        }

    def _one(self, job: Job, protected: frozenset[Path]) -> Outcome:
        progress = self._exit_when_marked if self._exit_marker else None
        try:
            return upscale_job(job, self.upscaler, self.options, inputs=protected, progress=progress)
        except Exception as error:  # noqa: BLE001 - anything unforeseen costs this file, not the archive
            text = str(error).strip().splitlines()
            reason = f"{type(error).__name__}: {text[0]}" if text else type(error).__name__
            return Outcome(job.source, "failed", message=f"{job.source}: upscaling failed on a worker ({reason})")

    def _exit_when_marked(self, done: int, total: int) -> None:
        if done < 1:
            return
        try:
            os.unlink(self._exit_marker)  # only one worker wins the marker
        except FileNotFoundError:
            return
        os._exit(70)
