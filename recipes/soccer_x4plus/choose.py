"""Choose the model to gate: the ship gate's own checks (gate.py), applied on the validation game.

    python recipes/soccer_x4plus/choose.py .devrun/experiments/v2b/models/net_g_*.pth \\
        --blend 0.3 0.6 --previous soccer-x4plus -o .devrun/choose_v2b

The held-out games decide whether a model ships, so they must not also pick it: that would let their
noise choose the candidate, and the gate would be passed by luck. The choice is made on the validation
game instead (``prepare.py``'s ``val/hr`` + ``val/labels``), scored exactly as the gate scores the
held-out games (scoring.py): ``soccersr eval`` under both degradations, seed 0, players from the boxes,
OpenVINO bf16.

The rule, fixed before any scoring: the candidate that passes the most gate checks against ``--stock``
wins; a tie goes to the higher players' PSNR gain under the training degradation (the check no model
on this line has passed yet), then to the earlier candidate. Candidates are the weights files given
(labelled ``<experiment>_<iteration>`` for training checkpoints, else by file stem) and, with
``--blend``, network interpolations from ``--blend-from`` (default ``--previous``) towards the last file
at each alpha.

Writes OUT/training and OUT/web (the eval reports), OUT/choice.md (the table and the rule) and
OUT/choice.json; prints the chosen file.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gate import checks  # noqa: E402  (sibling scripts: the checks and the scoring have one home each)
from scoring import DEGRADATIONS, add_runtime_arguments, labelled, needed_files, runtime_of, score_game  # noqa: E402

from soccersr.io.atomic import atomic_write_bytes  # noqa: E402

HARD_CHECK = "psnr_players"  # the tie-break: its gain under the training degradation


def label_of(path: Path) -> str:
    """``v2b_450`` for ``.../v2b/models/net_g_450.pth``, else the file stem."""
    match = re.fullmatch(r"net_g_(\d+)", path.stem)
    if match and path.parent.name == "models":
        return f"{path.parent.parent.name}_{match.group(1)}"
    return path.stem


def rank(reports: dict[str, list[dict]], candidates: list[str], stock: str, previous: str | None) -> list[dict]:
    """One row per candidate with its gate checks on the validation reports, best first by the rule."""
    rows = []
    for order, label in enumerate(candidates):
        table = [
            {**row, "degradation": kind}
            for kind in DEGRADATIONS
            for row in checks(reports[kind], label, stock, previous)
        ]
        hard = next(r["value"] for r in table if r["degradation"] == "training" and r["check"].startswith(HARD_CHECK))
        rows.append(
            {
                "label": label,
                "passed": sum(r["pass"] for r in table),
                "checks": table,
                "tie_break": hard,
                "order": order,
            }
        )
    return sorted(rows, key=lambda r: (-r["passed"], -r["tie_break"], r["order"]))


def write_choice(rows: list[dict], out: Path, files: dict[str, Path]) -> None:
    """choice.md (every candidate's checks, the winner first) and choice.json."""
    labels = [row["label"] for row in rows]
    lines = [
        "# Choice on the validation game (recipes/soccer_x4plus/choose.py)",
        "",
        "Rule, fixed before scoring: most gate checks passed; then the higher players' PSNR gain under the",
        "training degradation; then the earlier candidate. Candidates are in ranked order, the chosen one",
        "first; each value is the candidate minus the model the check names.",
        "",
        "| check | " + " | ".join(labels) + " |",
        "|---|" + "---|" * len(labels),
        "| **passed** | " + " | ".join(f"**{row['passed']}/{len(row['checks'])}**" for row in rows) + " |",
    ]
    for i, check in enumerate(rows[0]["checks"]):
        cells = [f"{row['checks'][i]['value']:+.4f} {'ok' if row['checks'][i]['pass'] else 'FAIL'}" for row in rows]
        lines.append(f"| {check['degradation']} {check['check']} | " + " | ".join(cells) + " |")
    lines += ["", f"chosen: **{rows[0]['label']}** (`{files[rows[0]['label']]}`)", ""]
    atomic_write_bytes(out / "choice.md", "\n".join(lines).encode())
    chosen = {"chosen": rows[0]["label"], "file": str(files[rows[0]["label"]]), "rows": rows}
    atomic_write_bytes(out / "choice.json", json.dumps(chosen, indent=1).encode())


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("weights", type=Path, nargs="+", help="candidate weights files, in order (oldest first)")
    parser.add_argument("--stock", default="x4plus", help="the model the gate compares with")
    parser.add_argument("--previous", default=None, help="the model a candidate would replace")
    parser.add_argument("--blend", type=float, nargs="*", default=[], help="alphas of blends FROM -> last file")
    parser.add_argument("--blend-from", default=None, help="the blends' model at alpha 0 (default: --previous)")
    parser.add_argument("--data", type=Path, default=Path(".devrun/soccer"), help="prepare.py's output")
    parser.add_argument(
        "--baselines",
        type=Path,
        default=None,
        help="an earlier OUT that scored --stock and --previous (its training/ and web/ reports): only the "
        "candidates run",
    )
    add_runtime_arguments(parser)
    parser.add_argument("-o", "--out", type=Path, required=True)
    args = parser.parse_args(argv)
    args.blend_from = args.blend_from or args.previous
    if args.blend and args.blend_from is None:
        parser.error("--blend needs --blend-from or --previous (the model at alpha 0)")
    for path in [*args.weights, *needed_files(args.data, "val", args.baselines)]:
        if not path.exists():
            parser.error(f"{path}: missing (weights, prepare.py collect + build, eval fit-niqe, or the baselines' run)")
    return args


def candidate_files(args: argparse.Namespace) -> dict[str, Path]:
    """{label: file} of the checkpoints (linked into OUT under their label) and the blends (written there)."""
    # Links named by label keep checkpoints of different runs (all net_g_N) apart.
    files = {label_of(path): labelled(path, args.out, label_of(path)) for path in args.weights}
    for alpha in args.blend:
        blend = args.out / f"blend_a{alpha:g}.safetensors"
        cmd = [sys.executable, str(Path(__file__).resolve().parent / "interpolate.py"), args.blend_from]
        subprocess.run([*cmd, str(args.weights[-1]), "--alpha", str(alpha), "-o", str(blend)], check=True)
        files[blend.stem] = blend
    return files


def score(args: argparse.Namespace, files: dict[str, Path]) -> dict[str, list[dict]]:
    """The gate's scoring (scoring.py) on the validation game: {degradation: [eval reports]}."""
    candidates = [str(path) for path in files.values()]
    return score_game(
        args.data,
        "val",
        candidates,
        args.out,
        stock=args.stock,
        previous=args.previous,
        baselines=args.baselines,
        runtime=runtime_of(args),
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    files = candidate_files(args)
    reports = score(args, files)
    previous = Path(args.previous).stem if args.previous else None
    rows = rank(reports, list(files), Path(args.stock).stem, previous)
    write_choice(rows, args.out, files)
    print((args.out / "choice.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
