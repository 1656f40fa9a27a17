"""Score a candidate on the held-out games and apply the ship gate (issue 12).

    python recipes/soccer_x4plus/gate_candidate.py .devrun/experiments/v2/models/net_g_1500.pth \\
        --previous soccer-x4plus --baselines .devrun/heldout -o .devrun/gate_v2
    python recipes/soccer_x4plus/gate_candidate.py .devrun/experiments/compact_web/models/net_g_1000.pth \\
        --stock animevideov3 -o .devrun/gate_compact

The candidate (its EMA, params_ema, is what loads) is scored against the stock model it must beat,
and the model it would replace (``--previous``: naturalness must beat that one too), exactly as
choose.py scores the validation game (scoring.py), then gate.py's checks decide. Writes
OUT/training and OUT/web (the eval reports and their sheets) and OUT/gate.json; exits 0 only when
every check passes.

Needs prepare.py's output (``--data``: eval/hr, eval/labels) and the NIQE parameters fitted on the
training GT (``scoring.NIQE_PARAMS`` there). Set SOCCERSR_CACHE_DIR to reuse converted built-in
models, and OMP_NUM_THREADS for the CPU threads.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gate import verdict  # noqa: E402  (sibling scripts: the checks and the scoring have one home each)
from scoring import add_runtime_arguments, labelled, needed_files, runtime_of, score_game  # noqa: E402

LABEL = "candidate"  # a link of this name keeps the candidate apart from a built-in model of its file's name


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("candidate", type=Path, help="the weights file to gate")
    parser.add_argument("--stock", default="x4plus", help="the model the gate compares with")
    parser.add_argument("--previous", default=None, help="the model the candidate would replace")
    parser.add_argument("--data", type=Path, default=Path(".devrun/soccer"), help="prepare.py's output")
    parser.add_argument(
        "--baselines", type=Path, default=None, help="earlier training/ and web/ reports of --stock and --previous"
    )
    add_runtime_arguments(parser)
    parser.add_argument("-o", "--out", type=Path, default=Path(".devrun/gate"))
    args = parser.parse_args(argv)
    for path in [args.candidate, *needed_files(args.data, "eval", args.baselines)]:
        if not path.exists():
            parser.error(f"{path}: missing (the weights, prepare.py collect + build, eval fit-niqe, or the baselines)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    link = labelled(args.candidate, args.out, LABEL)
    reports = score_game(
        args.data,
        "eval",
        [str(link)],
        args.out,
        stock=args.stock,
        previous=args.previous,
        baselines=args.baselines,
        runtime=runtime_of(args),
        sheets=True,
    )
    previous = Path(args.previous).stem if args.previous else None
    passed = verdict(reports, LABEL, Path(args.stock).stem, previous, args.out / "gate.json")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
