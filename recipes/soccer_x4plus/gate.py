"""The ship gate of soccer-x4plus v2 (issue 12), applied to `soccersr eval` reports as the issue writes it.

On the held-out games, under both degradations (training and web), against x4plus:
- fidelity: PSNR-Y >= +0.3 dB and SSIM-Y >= +0.02, for the whole frame and for the players;
- naturalness: NIQE <= x4plus's, and better (lower) than v1's.

    python recipes/soccer_x4plus/gate.py REPORT_TRAINING/report.json REPORT_WEB/report.json \
        --candidate v2 --stock x4plus --previous soccer-x4plus

Prints one line per check and exits 0 when every check passes, 1 otherwise. ``--json`` writes the table.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

FIDELITY = (("psnr", 0.3), ("ssim", 0.02), ("psnr_players", 0.3), ("ssim_players", 0.02))


def means(report: dict) -> dict[str, dict[str, float]]:
    """{metric: {model label: mean over the images every model has}}."""
    return {s["metric"]: s["means"] for s in report["summary"]}


def checks(report: dict, candidate: str, stock: str, previous: str | None) -> list[dict]:
    m = means(report)
    out = []
    for metric, margin in FIDELITY:
        diff = m[metric][candidate] - m[metric][stock]
        out.append({"check": f"{metric} - {stock} >= +{margin}", "value": diff, "pass": diff >= margin})
    niqe = m["niqe"]
    out.append({"check": f"niqe <= {stock}'s", "value": niqe[candidate] - niqe[stock],
                "pass": niqe[candidate] <= niqe[stock]})
    if previous is not None:
        out.append({"check": f"niqe < {previous}'s", "value": niqe[candidate] - niqe[previous],
                    "pass": niqe[candidate] < niqe[previous]})
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("reports", type=Path, nargs="+", help="report.json of each degradation")
    parser.add_argument("--candidate", required=True, help="label of the model to ship")
    parser.add_argument("--stock", default="x4plus")
    parser.add_argument("--previous", default=None, help="label of the model it would replace (v1)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    table, passed = [], True
    for path in args.reports:
        report = json.loads(path.read_text())
        kind = (report.get("degradation") or {}).get("kind", "training")
        for row in checks(report, args.candidate, args.stock, args.previous):
            row["degradation"] = kind
            table.append(row)
            passed &= row["pass"]
            print(f"{kind:8s} {row['check']:28s} {row['value']:+.4f}  {'pass' if row['pass'] else 'FAIL'}")
    kinds = {row["degradation"] for row in table}
    if kinds != {"training", "web"}:
        print(f"the gate needs both degradations, got {sorted(kinds)}")
        passed = False
    print("GATE: " + ("PASS" if passed else "FAIL"))
    if args.json:
        args.json.write_text(json.dumps({"passed": passed, "checks": table}, indent=1))
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
