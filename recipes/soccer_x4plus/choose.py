"""Choose the model to gate: the ship gate's own checks (gate.py), applied on the validation game.

    python recipes/soccer_x4plus/choose.py .devrun/experiments/v2b/models/net_g_*.pth \\
        --blend 0.3 0.6 --previous soccer-x4plus -o .devrun/choose_v2b

The held-out games decide whether a model ships, so they must not also pick it: that would let their
noise choose the candidate, and the gate would be passed by luck. The choice is made on the validation
game instead (``prepare.py``'s ``val/hr`` + ``val/labels``), scored exactly as the gate scores the
held-out games: ``soccersr eval`` under both degradations, seed 0, players from the boxes, OpenVINO bf16.

The rule, fixed before any scoring: the candidate that passes the most gate checks against ``--stock``
wins; a tie goes to the higher players' PSNR gain under the training degradation (the check no model
on this line has passed yet), then to the earlier candidate. Candidates are the weights files given
(labelled ``<experiment>_<iteration>`` for training checkpoints, else by file stem) and, with
``--blend``, network interpolations from ``--previous`` towards the last file at each alpha.

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
from gate import checks  # noqa: E402  (a sibling script: the gate's checks have one home)

from soccersr.io.atomic import atomic_write_bytes  # noqa: E402

DEGRADATIONS = ("training", "web")
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("weights", type=Path, nargs="+", help="candidate weights files, in order (oldest first)")
    parser.add_argument("--stock", default="x4plus", help="the model the gate compares with")
    parser.add_argument("--previous", default=None, help="the model a candidate would replace (also a blend end)")
    parser.add_argument("--blend", type=float, nargs="*", default=[], help="alphas of blends previous -> last file")
    parser.add_argument("--data", type=Path, default=Path(".devrun/soccer"), help="prepare.py's output")
    parser.add_argument("-o", "--out", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.blend and args.previous is None:
        parser.error("--blend needs --previous (the model at alpha 0)")
    for path in args.weights:
        if not path.is_file():
            parser.error(f"{path}: no such weights file")
    val = args.data / "val"
    for needed in (val / "hr", val / "labels", args.data / "niqe_soccer_train.npz"):
        if not needed.exists():
            parser.error(f"{needed}: missing (run prepare.py collect + build, and eval fit-niqe)")
    args.out.mkdir(parents=True, exist_ok=True)
    here, python = Path(__file__).resolve().parent, sys.executable
    # eval labels models by file stem: links named by label keep checkpoints of different runs apart.
    files: dict[str, Path] = {}
    for path in args.weights:
        link = args.out / f"{label_of(path)}{path.suffix}"
        link.unlink(missing_ok=True)
        link.symlink_to(path.resolve())
        files[link.stem] = link
    for alpha in args.blend:
        blend = args.out / f"blend_a{alpha:g}.safetensors"
        cmd = [python, str(here / "interpolate.py"), args.previous, str(args.weights[-1]), "--alpha", str(alpha)]
        subprocess.run([*cmd, "-o", str(blend)], check=True)
        files[blend.stem] = blend
    models = [args.stock, *([args.previous] if args.previous else [])]
    reports: dict[str, list[dict]] = {}
    for kind in DEGRADATIONS:
        cmd = [
            python,
            "-m",
            "soccersr.cli",
            "eval",
            "--hr",
            str(val / "hr"),
            "--boxes",
            str(val / "labels"),
            "--seed",
            "0",
            "--degradation",
            kind,
            "--device",
            "cpu",
            "--engine",
            "openvino",
            "--precision",
            "bf16",
            "--niqe-params",
            str(args.data / "niqe_soccer_train.npz"),
            "--no-sheets",
            "--report",
            str(args.out / kind),
        ]
        for model in [*models, *map(str, files.values())]:
            cmd += ["--model", model]
        subprocess.run(cmd, check=True)  # soccersr as this process finds it
        reports[kind] = [json.loads((args.out / kind / "report.json").read_text())]
    stock_label = Path(args.stock).stem
    previous_label = Path(args.previous).stem if args.previous else None
    rows = rank(reports, list(files), stock_label, previous_label)
    write_choice(rows, args.out, files)
    print((args.out / "choice.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
