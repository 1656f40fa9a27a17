"""Summaries of an evaluation: who wins each metric, by how much, and where they lose.

Pure functions over per-image scores, plus writers for the CSV, JSON and markdown files and
the terminal table. A "score table" is ``{metric: {model: {image: value}}}``; NaN means the
metric does not exist for that image (no usable player box, image too small for NIQE).
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from soccersr.io.atomic import atomic_write_bytes

Scores = Mapping[str, Mapping[str, Mapping[str, float]]]


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    higher_is_better: bool
    digits: int
    unit: str = ""


METRICS: tuple[Metric, ...] = (
    Metric("psnr", "PSNR-Y", True, 2, " dB"),
    Metric("ssim", "SSIM-Y", True, 4),
    Metric("psnr_players", "PSNR-Y players", True, 2, " dB"),
    Metric("ssim_players", "SSIM-Y players", True, 4),
    Metric("niqe", "NIQE", False, 3),
    Metric("time_s", "time/image", False, 3, " s"),
)
METRIC_BY_KEY = {m.key: m for m in METRICS}


@dataclass(frozen=True)
class Pairwise:
    """Model ``model`` against ``other`` on the images where both have a value."""

    model: str
    other: str
    mean_diff: float
    """mean(model - other) in the metric's units (negative is better for lower-is-better metrics)."""
    wins: int
    losses: int
    ties: int
    worst: tuple[tuple[str, float], ...]
    """Up to five images where ``model`` loses most, with their difference model - other."""


@dataclass(frozen=True)
class MetricSummary:
    metric: str
    images: int
    """Images where every model has a value (the means and counts are over these)."""
    means: dict[str, float]
    best_counts: dict[str, int]
    """Per model, on how many images it is strictly the best of all models."""
    ties: int
    """Images where two or more models share the best value."""
    winner: str | None
    """Model with the best mean, None when there are no images or the means tie."""
    versus: tuple[Pairwise, ...]
    """The winner against each other model."""


def _better(metric: Metric, a: float, b: float) -> float:
    """a - b, signed so that positive means a is better."""
    if a == b:  # also inf == inf: no difference
        return 0.0
    return a - b if metric.higher_is_better else b - a


def _diff(a: float, b: float) -> float:
    return 0.0 if a == b else a - b  # inf - inf is no difference, not NaN


def _mean(values: Sequence[float]) -> float:
    return math.fsum(values) / len(values) if values else math.nan


def nanmean(values: Sequence[float]) -> float:
    """Mean of the values that are not NaN (NaN if there are none)."""
    return _mean([v for v in values if not math.isnan(v)])


def summarize_metric(metric: Metric, per_model: Mapping[str, Mapping[str, float]]) -> MetricSummary:
    """Winner, means and per-image wins of one metric over the images every model has a value for."""
    models = list(per_model)
    common = sorted(set.intersection(*(set(v) for v in per_model.values())) if models else set())
    images = [im for im in common if all(not math.isnan(per_model[m][im]) for m in models)]
    means = {m: _mean([per_model[m][im] for im in images]) for m in models}
    best_counts = {m: 0 for m in models}
    ties = 0
    for im in images:
        values = {m: per_model[m][im] for m in models}
        best = max(values.values()) if metric.higher_is_better else min(values.values())
        leaders = [m for m, v in values.items() if v == best]
        if len(leaders) == 1:
            best_counts[leaders[0]] += 1
        else:
            ties += 1
    winner = None
    if images and models:
        ranked = sorted(models, key=lambda m: means[m], reverse=metric.higher_is_better)
        if len(ranked) == 1 or means[ranked[0]] != means[ranked[1]]:
            winner = ranked[0]
    versus = []
    if winner is not None:
        for other in models:
            if other == winner:
                continue
            better = {im: _better(metric, per_model[winner][im], per_model[other][im]) for im in images}
            losing = sorted((d, im) for im, d in better.items() if d < 0)[:5]
            versus.append(
                Pairwise(
                    model=winner,
                    other=other,
                    mean_diff=_mean([_diff(per_model[winner][im], per_model[other][im]) for im in images]),
                    wins=sum(d > 0 for d in better.values()),
                    losses=sum(d < 0 for d in better.values()),
                    ties=sum(d == 0 for d in better.values()),
                    worst=tuple((im, _diff(per_model[winner][im], per_model[other][im])) for _, im in losing),
                )
            )
    return MetricSummary(metric.key, len(images), means, best_counts, ties, winner, tuple(versus))


def summarize(scores: Scores) -> list[MetricSummary]:
    """One summary per metric present in ``scores``, in the order of METRICS."""
    return [summarize_metric(m, scores[m.key]) for m in METRICS if m.key in scores and scores[m.key]]


# ---------------------------------------------------------------------------------------------
# Formatting


def fmt(metric: Metric | str, value: float | None, *, unit: bool = False) -> str:
    """A metric value for people: fixed digits, 'inf', or 'n/a'."""
    m = METRIC_BY_KEY[metric] if isinstance(metric, str) else metric
    if value is None or math.isnan(value):
        return "n/a"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return f"{value:.{m.digits}f}{m.unit if unit else ''}"


def fmt_diff(metric: Metric, value: float) -> str:
    if math.isnan(value):
        return "n/a"
    if math.isinf(value):
        return "+inf"
    return f"{value:+.{metric.digits}f}{metric.unit}"


def terminal_table(summaries: Sequence[MetricSummary], models: Sequence[str]) -> str:
    """Mean of every metric per model, the best marked with '*', and one winner line per metric."""
    header = ["model"] + [METRIC_BY_KEY[s.metric].label for s in summaries]
    rows = []
    for model in models:
        row = [model]
        for s in summaries:
            cell = fmt(s.metric, s.means.get(model, math.nan))
            row.append(cell + ("*" if s.winner == model and len(models) > 1 else ""))
        rows.append(row)
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in [header, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    if len(models) > 1:
        lines.append("")
        lines.extend(winner_sentence(s) for s in summaries)
    return "\n".join(lines)


def winner_sentence(s: MetricSummary) -> str:
    """E.g. 'PSNR-Y (higher is better): B wins, +0.54 dB vs A, better on 5 of 6 images (A better on 1, 0 ties)'."""
    metric = METRIC_BY_KEY[s.metric]
    direction = "higher" if metric.higher_is_better else "lower"
    if s.images == 0:
        return f"{metric.label}: no image where every model has a value"
    if s.winner is None:
        return f"{metric.label} ({direction} is better): the means tie over {s.images} images"
    parts = []
    for p in s.versus:
        parts.append(
            f"{fmt_diff(metric, p.mean_diff)} vs {p.other}, better on {p.wins} of {s.images} images "
            f"({p.other} better on {p.losses}, {p.ties} ties)"
        )
    return f"{metric.label} ({direction} is better): {s.winner} wins, " + "; ".join(parts)


# ---------------------------------------------------------------------------------------------
# Files


def _json_safe(value: Any) -> Any:
    """NaN -> null, +-inf -> "inf"/"-inf", recursively (strict JSON has neither)."""
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return value
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def write_json(path: Path, data: Mapping[str, Any]) -> None:
    _atomic_write(path, json.dumps(_json_safe(data), indent=2, allow_nan=False, sort_keys=False) + "\n")


def summaries_as_dicts(summaries: Sequence[MetricSummary]) -> list[dict[str, Any]]:
    return [asdict(s) for s in summaries]


def write_csv(path: Path, rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> None:
    """One row per (image, model); floats written with full precision, NaN as empty."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()})
    atomic_write_bytes(path, buffer.getvalue().encode("utf-8"), durable=False)


def markdown_summary(
    summaries: Sequence[MetricSummary],
    models: Sequence[str],
    *,
    title: str,
    context_lines: Sequence[str],
    reference_rows: Mapping[str, Mapping[str, float]] | None = None,
) -> str:
    """The human-readable verdict: a means table, the winner of each metric, and where it loses.

    ``reference_rows`` adds non-competing rows to the means table (e.g. the NIQE of the HR images).
    """
    lines = [f"# {title}", ""]
    lines += [f"- {line}" for line in context_lines]
    lines += ["", "## Means", ""]
    arrows = {True: "↑", False: "↓"}
    header = ["model"] + [
        f"{METRIC_BY_KEY[s.metric].label} ({arrows[METRIC_BY_KEY[s.metric].higher_is_better]})" for s in summaries
    ]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "---|" * len(header))
    for model in models:
        cells = []
        for s in summaries:
            cell = fmt(s.metric, s.means.get(model, math.nan), unit=True)
            cells.append(f"**{cell}**" if s.winner == model and len(models) > 1 else cell)
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    for name, values in (reference_rows or {}).items():
        cells = [
            fmt(s.metric, values.get(s.metric, math.nan), unit=True) if s.metric in values else "" for s in summaries
        ]
        lines.append(f"| *{name}* | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("Means are over the images where every model has a value (count in the next table).")
    if len(models) > 1:
        lines += ["", "## Winner per metric", ""]
        lines.append(
            "| metric | winner | mean difference (winner − other) | images won (strictly best of all) | ties | images |"
        )
        lines.append("|---|---|---|---|---|---|")
        for s in summaries:
            metric = METRIC_BY_KEY[s.metric]
            diff = "; ".join(f"{fmt_diff(metric, p.mean_diff)} vs {p.other}" for p in s.versus) or "—"
            won = ", ".join(f"{m}: {c}" for m, c in s.best_counts.items())
            lines.append(f"| {metric.label} | {s.winner or 'tie'} | {diff} | {won} | {s.ties} | {s.images} |")
        lines += ["", "## Where the winner loses", ""]
        any_loss = False
        for s in summaries:
            metric = METRIC_BY_KEY[s.metric]
            for p in s.versus:
                if p.losses:
                    any_loss = True
                    worst = ", ".join(f"{im} ({fmt_diff(metric, d)})" for im, d in p.worst)
                    lines.append(
                        f"- {metric.label}: {p.model} is worse than {p.other} on {p.losses} of {s.images} images; "
                        f"worst: {worst}"
                    )
        if not any_loss:
            lines.append("- The winner of each metric is never worse on any single image.")
    return "\n".join(lines) + "\n"


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, text.encode("utf-8"), durable=False)


def write_text(path: Path, text: str) -> None:
    """Write a text file atomically (temporary file, then rename)."""
    _atomic_write(path, text)
