"""How the ship gate scores models on one game (issue 12): the protocol choose.py and gate_candidate.py share.

``soccersr eval`` on the game's HR frames under both degradations, each LQ seeded 0, the players
from the game's boxes, NIQE with the parameters fitted on the training GT (``eval fit-niqe``), and
OpenVINO bf16 on the CPU: the engine of the shipped reports (bf16 agrees with fp32 to 52 dB; on a
GPU pass ``Runtime("cuda", "torch", "fp16")``). Models are labelled by file stem.

With ``baselines`` (a folder whose training/ and web/ reports scored the stock and previous models
with this same protocol) only the new models run: the same HR, seed and degradation make the same
LQ, and ``gate.per_image`` merges the reports by image.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from gate import DEGRADATIONS  # a sibling script: the gate says which degradations it needs

NIQE_PARAMS = "niqe_soccer_train.npz"  # in prepare.py's output: `eval fit-niqe DATA/train/hr -o DATA/<this>`


@dataclass(frozen=True)
class Runtime:
    device: str = "cpu"
    engine: str = "openvino"
    precision: str = "bf16"


def add_runtime_arguments(parser: argparse.ArgumentParser) -> None:
    """--device / --engine / --precision of the scoring runs (default: OpenVINO bf16 on the CPU).

    Reports scored elsewhere (``--baselines``) stay comparable on a GPU with ``--engine torch --precision
    fp32``: the LQ is synthesised on the CPU from the same seed, and fp32 agrees across runtimes to ~50 dB.
    """
    parser.add_argument("--device", default=Runtime.device)
    parser.add_argument("--engine", default=Runtime.engine)
    parser.add_argument("--precision", default=Runtime.precision)


def runtime_of(args: argparse.Namespace) -> Runtime:
    return Runtime(args.device, args.engine, args.precision)


def labelled(weights: Path, out: Path, label: str) -> Path:
    """A link OUT/<label><suffix> to ``weights``: eval labels a model by its file stem."""
    link = out / f"{label}{weights.suffix}"
    link.unlink(missing_ok=True)
    link.symlink_to(weights.resolve())
    return link


def needed_files(data: Path, game: str, baselines: Path | None) -> list[Path]:
    """What scoring reads besides the models: check it before any model runs."""
    files = [data / game / "hr", data / game / "labels", data / NIQE_PARAMS]
    return files + ([baselines / kind / "report.json" for kind in DEGRADATIONS] if baselines else [])


def score_game(
    data: Path,
    game: str,
    candidates: list[str],
    out: Path,
    *,
    stock: str,
    previous: str | None,
    baselines: Path | None = None,
    runtime: Runtime = Runtime(),
    sheets: bool = False,
) -> dict[str, list[dict]]:
    """Run eval on DATA/GAME (its hr/ and labels/) into OUT/<degradation>; {degradation: [reports]}.

    ``stock`` and ``previous`` run beside the candidates unless ``baselines`` already scored them.
    """
    models = [] if baselines else [stock, *([previous] if previous else [])]
    models += candidates
    reports: dict[str, list[dict]] = {}
    for kind in DEGRADATIONS:
        cmd = [sys.executable, "-m", "soccersr.cli", "eval", "--hr", str(data / game / "hr")]
        cmd += ["--boxes", str(data / game / "labels"), "--niqe-params", str(data / NIQE_PARAMS)]
        cmd += ["--degradation", kind, "--seed", "0"]
        cmd += ["--device", runtime.device, "--engine", runtime.engine, "--precision", runtime.precision]
        cmd += [] if sheets else ["--no-sheets"]
        cmd += ["--report", str(out / kind), *(arg for model in models for arg in ("--model", model))]
        subprocess.run(cmd, check=True)  # soccersr as this process finds it
        earlier = [_load(baselines / kind / "report.json")] if baselines else []
        reports[kind] = [*earlier, _load(out / kind / "report.json")]
    return reports


def _load(path: Path) -> dict:
    return json.loads(path.read_text())
