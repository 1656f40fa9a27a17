"""The ship gate of soccer-x4plus v2 (issue 12), applied to `soccersr eval` reports as the issue writes it.

On the held-out games, under both degradations (training and web), against x4plus:
- fidelity: PSNR-Y >= +0.3 dB and SSIM-Y >= +0.02, for the whole frame and for the players;
- naturalness: NIQE <= x4plus's, and better (lower) than v1's.

    python recipes/soccer_x4plus/gate.py REPORT_TRAINING/report.json REPORT_WEB/report.json \
        --candidate v2 --stock x4plus --previous soccer-x4plus

Reports of the same degradation may split the models (e.g. the baselines evaluated earlier, the
candidate later): with the same HR, seed and degradation their LQ are identical, and their per-image
scores are merged by image (the images must be the same). Prints one line per check and exits 0 when
every check passes, 1 otherwise. ``--json`` writes the table.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

DEGRADATIONS = ("training", "web")  # the gate needs a report of each
FIDELITY = (("psnr", 0.3), ("ssim", 0.02), ("psnr_players", 0.3), ("ssim_players", 0.02))


METRICS = ("psnr", "ssim", "psnr_players", "ssim_players", "niqe")


def per_image(reports: list[dict]) -> dict[str, dict[str, dict[str, float]]]:
    """{metric: {model: {image: value}}} over reports of one degradation; their LQ must be the same."""
    out: dict[str, dict[str, dict[str, float]]] = {m: {} for m in METRICS}
    seeds: dict[str, int] = {}
    for report in reports:
        for record in report["images"]:
            if seeds.setdefault(record["image"], record["lq_seed"]) != record["lq_seed"]:
                raise SystemExit(f"{record['image']}: the reports used different LQ seeds")
            for model, res in record["results"].items():
                for metric in METRICS:
                    if res.get(metric) is not None:
                        out[metric].setdefault(model, {})[record["image"]] = float(res[metric])
    return out


def means(reports: list[dict]) -> dict[str, dict[str, float]]:
    """{metric: {model: mean over the images every model has a value for}} (as the eval summary)."""
    result: dict[str, dict[str, float]] = {}
    for metric, models in per_image(reports).items():
        if not models:
            continue
        common = set.intersection(*(set(v) for v in models.values()))
        images = [im for im in common if all(math.isfinite(models[m][im]) for m in models)]
        result[metric] = {m: sum(v[im] for im in images) / len(images) for m, v in models.items()}
    return result


def checks(reports: list[dict], candidate: str, stock: str, previous: str | None) -> list[dict]:
    m = means(reports)
    out = []
    for metric, margin in FIDELITY:
        diff = m[metric][candidate] - m[metric][stock]
        out.append({"check": f"{metric} - {stock} >= +{margin}", "value": diff, "pass": diff >= margin})
    niqe = m["niqe"]
    out.append(
        {"check": f"niqe <= {stock}'s", "value": niqe[candidate] - niqe[stock], "pass": niqe[candidate] <= niqe[stock]}
    )
    if previous is not None:
        out.append(
            {
                "check": f"niqe < {previous}'s",
                "value": niqe[candidate] - niqe[previous],
                "pass": niqe[candidate] < niqe[previous],
            }
        )
    return out


def verdict(by_kind: dict[str, list[dict]], candidate: str, stock: str, previous: str | None, out: Path | None) -> bool:
    """Print one line per check and the verdict; write the table to ``out`` (JSON) when given."""
    table, passed = [], True
    for kind, reports in by_kind.items():
        for row in checks(reports, candidate, stock, previous):
            row["degradation"] = kind
            table.append(row)
            passed &= row["pass"]
            print(f"{kind:8s} {row['check']:28s} {row['value']:+.4f}  {'pass' if row['pass'] else 'FAIL'}")
    kinds = {row["degradation"] for row in table}
    if kinds != set(DEGRADATIONS):
        print(f"the gate needs both degradations, got {sorted(kinds)}")
        passed = False
    print("GATE: " + ("PASS" if passed else "FAIL"))
    if out:
        out.write_text(json.dumps({"passed": passed, "checks": table}, indent=1))
    return passed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("reports", type=Path, nargs="+", help="report.json of each degradation")
    parser.add_argument("--candidate", required=True, help="label of the model to ship")
    parser.add_argument("--stock", default="x4plus")
    parser.add_argument("--previous", default=None, help="label of the model it would replace (v1)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    by_kind: dict[str, list[dict]] = {}
    for path in args.reports:
        report = json.loads(path.read_text())
        by_kind.setdefault((report.get("degradation") or {}).get("kind", "training"), []).append(report)
    return 0 if verdict(by_kind, args.candidate, args.stock, args.previous, args.json) else 1


if __name__ == "__main__":
    sys.exit(main())
