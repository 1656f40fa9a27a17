"""``soccersr eval`` end to end: inputs -> every model -> scores -> report folder.

Report folder layout::

    report.json     everything: config, models and their sources, versions, NIQE params, per-image scores, summary
    results.csv     one row per (image, model)
    summary.md      the verdict: which model wins each metric, by how much, where it loses
    index.html      all sheets with their scores (static page, relative links)
    sheets/         one comparison PNG per image
    lq/             the synthesised LQ inputs (reused by later runs with the same seed and HR)
    outputs/        the model outputs, with ``save_outputs``
"""

from __future__ import annotations

import dataclasses
import html
import logging
import math
import platform
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from soccersr import __version__
from soccersr.degrade import DegradationConfig
from soccersr.degrade.config import second_order_settings
from soccersr.degrade.web import DEGRADATIONS, WEB_BLUR_SIGMA, WEB_JPEG_QUALITY
from soccersr.eval import report
from soccersr.eval.boxes import BoxFileError, PixelBox, clip_box, region_scores
from soccersr.eval.inputs import EvalError, ImageInputs, ImageJob, LqCache, find_jobs, load_inputs
from soccersr.eval.niqe import NiqeError, NiqeModel, load_niqe_model, niqe_score
from soccersr.eval.sheets import (
    Column,
    IndexRow,
    crops_from_boxes,
    detail_crops,
    index_html,
    make_sheet,
    nearest_enlarge,
)
from soccersr.infer.devices import resolve_precision
from soccersr.infer.engine import Upscaler
from soccersr.io.hashing import file_sha256
from soccersr.io.images import DecodedImage, ImageReadError, write_image
from soccersr.metrics import psnr, ssim
from soccersr.weights import load_model
from soccersr.weights.builtin import BUILTIN_DIR, cache_file
from soccersr.weights.zoo import find_spec

log = logging.getLogger(__name__)

CSV_COLUMNS = (
    "image", "model", "psnr", "ssim", "psnr_players", "ssim_players", "player_boxes_used",
    "player_boxes_skipped", "niqe", "time_s", "width", "height", "lq_seed", "sheet",
)  # fmt: skip
REPORT_FORMAT = 1
"""Version of the report.json layout."""


@dataclass(frozen=True)
class EvalConfig:
    """What ``soccersr eval`` compares, on what, and where the report goes."""

    models: tuple[str, ...]
    """Built-in model names or weights files, one per model to compare."""
    report_dir: Path
    hr_dir: Path | None = None
    """Ground-truth images: enables PSNR/SSIM. Without ``lq_dir`` the LQ are synthesised from them."""
    lq_dir: Path | None = None
    """Given low-resolution inputs (same stems as the HR); alone, for real photos with no HR."""
    seed: int = 0
    degradation: str = "training"
    """How synthesised LQ are made: "training" (the Real-ESRGAN training degradation) or "web"
    (blur, bicubic, JPEG: ``degrade/web.py``)."""
    boxes_dir: Path | None = None
    """YOLO box files (same stem as the images) for the player metrics and the sheet crops."""
    niqe_params: Path | None = None
    """A NIQE params file (``soccersr eval fit-niqe``); without it there is no NIQE column."""
    engine: str = "auto"
    """Inference backend as for ``soccersr upscale``."""
    device: str = "auto"
    precision: str = "auto"
    """Inference precision as for ``soccersr upscale`` ("auto": fp16 on CUDA, fp32 on the CPU)."""
    tile: int | str = "auto"
    crops: tuple[tuple[int, int, int, int], ...] = ()
    """Sheet crops (x, y, w, h) on the output grid; default: players from the boxes, else the most detailed regions."""
    box_enlarge: float = 0.10
    sheets: bool = True
    save_outputs: bool = False
    max_pixels: int | None = 40_000_000

    def __post_init__(self) -> None:
        if not self.models:
            raise EvalError("models: give at least one --model")
        if self.hr_dir is None and self.lq_dir is None:
            raise EvalError("give --hr DIR (ground truth), --lq DIR (inputs), or both")
        for name in ("hr_dir", "lq_dir", "boxes_dir"):
            folder = getattr(self, name)
            if folder is not None and not Path(folder).is_dir():
                raise EvalError(f"{name}: {folder} is not a folder")
        if self.niqe_params is not None and not Path(self.niqe_params).is_file():
            raise EvalError(f"niqe_params: {self.niqe_params} does not exist")
        if self.degradation not in DEGRADATIONS:
            raise EvalError(f"degradation: expected one of {', '.join(DEGRADATIONS)}, got {self.degradation!r}")
        if not 0 <= self.box_enlarge <= 2:
            raise EvalError(f"box_enlarge: expected 0..2 (0.1 = +10%), got {self.box_enlarge}")
        for crop in self.crops:
            if len(crop) != 4 or crop[2] <= 0 or crop[3] <= 0 or crop[0] < 0 or crop[1] < 0:
                raise EvalError(f"crops: expected x,y,w,h with w, h > 0, got {crop}")

    @property
    def synthesise_lq(self) -> bool:
        return self.hr_dir is not None and self.lq_dir is None


@dataclass
class EvalOutcome:
    """What ``run_eval`` produced (also written to the report folder)."""

    report_dir: Path
    labels: list[str]
    summaries: list[report.MetricSummary]
    table: str
    """The terminal table."""
    failed: list[dict[str, str]] = field(default_factory=list)


@dataclass
class _Contender:
    """One model under evaluation."""

    label: str
    upscaler: Any
    info: dict[str, Any]
    warmed: bool = False


# ---------------------------------------------------------------------------------------------
# Models


def model_labels(specs: Sequence[str]) -> list[str]:
    """Short unique column names: built-in names as given, files by their stem (numbered if repeated)."""
    base = [Path(s).stem if ("/" in s or "\\" in s or Path(s).suffix) else s for s in specs]
    return [f"{b}#{i + 1}" if base.count(b) > 1 else b for i, b in enumerate(base)]


def weights_file(spec: str) -> Path | None:
    """The file a model's weights were read from: the given file, the packaged safetensors of a
    built-in model, or its converted cache file (None when there is none, e.g. a cache that could not be written)."""
    if Path(spec).is_file():
        return Path(spec)
    found = find_spec(spec)
    if found is None:
        return None
    kind, _, name = found.source.partition(":")
    path = BUILTIN_DIR / name if kind == "package" else cache_file(found)
    return path if path is not None and path.is_file() else None


def _load_contenders(cfg: EvalConfig) -> tuple[list[_Contender], int]:
    contenders = []
    for spec, label in zip(cfg.models, model_labels(cfg.models), strict=True):
        model = load_model(spec)
        upscaler = Upscaler(model, engine=cfg.engine, device=cfg.device, precision=cfg.precision, tile=cfg.tile)
        info: dict[str, Any] = {
            "label": label,
            "spec": spec,
            "name": model.name,
            "source": model.source,
            "arch": model.arch,
            "arch_kwargs": dict(model.arch_kwargs),
            "scale": float(upscaler.scale),
            "parameters": int(sum(p.numel() for p in model.net.parameters())),
            "device": str(upscaler.device),
            "precision": resolve_precision(cfg.precision, upscaler.device),
            "tile": int(upscaler.tile),
        }
        weights = weights_file(spec)
        if weights is not None:
            info["file"] = str(weights.resolve())
            info["sha256"] = file_sha256(weights)
        contenders.append(_Contender(label, upscaler, info))
    scales = sorted({float(c.upscaler.scale) for c in contenders})
    if len(scales) != 1:
        raise EvalError(f"models: all models must have the same scale to share inputs, got {scales}")
    if scales[0] != round(scales[0]) or scales[0] < 1:
        raise EvalError(f"models: eval needs an integer scale, got {scales[0]}")
    return contenders, int(scales[0])


def _upscale_timed(contender: _Contender, lq: np.ndarray) -> tuple[np.ndarray, float]:
    batch = torch.from_numpy(np.ascontiguousarray(lq.transpose(2, 0, 1))[None].astype(np.float32, copy=False))
    if not contender.warmed:
        # The first call pays for allocations and kernel selection; keep it out of the timings.
        contender.upscaler.upscale(batch[:, :, :32, :32])
        contender.warmed = True
    start = time.perf_counter()
    out = contender.upscaler.upscale(batch)
    elapsed = time.perf_counter() - start
    return out[0].numpy().transpose(1, 2, 0), elapsed


# ---------------------------------------------------------------------------------------------
# Scoring


def _safe_niqe(rgb: np.ndarray, model: NiqeModel, crop_border: int, what: str) -> float:
    try:
        return niqe_score(rgb, model, crop_border=crop_border)
    except NiqeError as exc:
        log.warning("no NIQE for %s: %s", what, exc)
        return math.nan


def _score(sr: np.ndarray, inputs: ImageInputs, niqe_model: NiqeModel | None, what: str) -> dict[str, Any]:
    """Every metric of one output that this run can compute (time is added by the caller)."""
    border = inputs.scale  # the BasicSR convention: crop border = scale
    res: dict[str, Any] = {}
    if inputs.hr is not None:
        res["psnr"] = psnr(sr, inputs.hr, crop_border=border)
        res["ssim"] = ssim(sr, inputs.hr, crop_border=border)
        if inputs.boxes is not None:
            region = region_scores(sr, inputs.hr, inputs.boxes, crop_border=border)
            res.update(psnr_players=region.psnr, ssim_players=region.ssim,
                       player_boxes_used=region.used, player_boxes_skipped=region.skipped)  # fmt: skip
    if niqe_model is not None:
        res["niqe"] = _safe_niqe(sr, niqe_model, border, what)
    return res


def _score_table(records: Sequence[Mapping[str, Any]], labels: Sequence[str]) -> dict[str, dict[str, dict[str, float]]]:
    """{metric: {model: {image: value}}} from the per-image records."""
    table: dict[str, dict[str, dict[str, float]]] = {}
    for record in records:
        for label in labels:
            for metric in report.METRICS:
                value = record["results"][label].get(metric.key)
                if value is not None:
                    table.setdefault(metric.key, {lbl: {} for lbl in labels})[label][record["image"]] = float(value)
    return table


# ---------------------------------------------------------------------------------------------
# The run


def run_eval(cfg: EvalConfig, *, on_image: Callable[[int, int, str], None] | None = None) -> EvalOutcome:
    """Evaluate every model of ``cfg`` on every image and write the report folder.

    ``on_image(index, total, name)`` is called before each image (progress display).
    Unreadable images are skipped and listed in ``EvalOutcome.failed``; setup errors raise
    EvalError (or the loaders' own WeightsError / NiqeError / ImageReadError).
    """
    jobs = find_jobs(cfg.hr_dir, cfg.lq_dir, cfg.boxes_dir)
    niqe_model = load_niqe_model(cfg.niqe_params) if cfg.niqe_params else None
    # Describe the inputs now: the report must name the params file as it was when used.
    niqe_json = _niqe_json(cfg, niqe_model)
    contenders, scale = _load_contenders(cfg)
    labels = [c.label for c in contenders]
    report_dir = Path(cfg.report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    lq_cache = LqCache(report_dir / "lq", scale, cfg.degradation) if cfg.synthesise_lq else None

    records: list[dict[str, Any]] = []
    index_rows: list[IndexRow] = []
    failed: list[dict[str, str]] = []
    for idx, job in enumerate(jobs):
        if on_image:
            on_image(idx, len(jobs), job.name)
        try:
            inputs = load_inputs(job, scale=scale, seed=cfg.seed, lq_cache=lq_cache,
                                 box_enlarge=cfg.box_enlarge, max_pixels=cfg.max_pixels)  # fmt: skip
        except (ImageReadError, BoxFileError, EvalError) as exc:
            log.error("skipping %s: %s", job.name, exc)
            failed.append({"image": job.name, "error": str(exc)})
            continue
        record, outputs = _evaluate_image(job, inputs, contenders, niqe_model, cfg, report_dir)
        if cfg.sheets:
            crops = _choose_crops(cfg.crops, inputs)
            sheet = _image_sheet(job.name, inputs, outputs, record, labels, crops, synthesised=cfg.synthesise_lq)
            record["sheet"] = f"sheets/{Path(job.name).stem}.png"
            record["crops"] = [[c.x0, c.y0, c.width, c.height] for c in crops]
            (report_dir / "sheets").mkdir(exist_ok=True)
            write_image(report_dir / record["sheet"], DecodedImage.from_pixels(sheet))
            index_rows.append(_index_row(record, labels))
        records.append(record)
        log.info("%s: %s", job.name, "; ".join(f"{lbl} {_short(record['results'][lbl])}" for lbl in labels))

    summaries = report.summarize(_score_table(records, labels))
    table = _write_reports(cfg, report_dir, scale, jobs, records, failed, summaries, contenders, niqe_json, index_rows)
    return EvalOutcome(report_dir=report_dir, labels=labels, summaries=summaries, table=table, failed=failed)


def _evaluate_image(
    job: ImageJob,
    inputs: ImageInputs,
    contenders: Sequence[_Contender],
    niqe_model: NiqeModel | None,
    cfg: EvalConfig,
    report_dir: Path,
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Run every model on one image and score it: the JSON record and the outputs (for the sheet)."""
    out_h, out_w = inputs.out_size
    record: dict[str, Any] = {
        "image": job.name,
        "hr": str(job.hr) if job.hr else None,
        "lq": str(inputs.lq_path) if inputs.lq_path else None,
        "lq_seed": inputs.lq_seed,
        "lq_size": [int(inputs.lq.shape[1]), int(inputs.lq.shape[0])],
        "output_size": [out_w, out_h],
        "boxes": str(job.boxes) if job.boxes else None,
        "results": {},
    }
    outputs: dict[str, np.ndarray] = {}
    for contender in contenders:
        sr, elapsed = _upscale_timed(contender, inputs.lq)
        if sr.shape[:2] != (out_h, out_w):
            raise EvalError(f"model {contender.label}: output is {sr.shape[1]}x{sr.shape[0]}, expected {out_w}x{out_h}")
        outputs[contender.label] = sr
        scores = _score(sr, inputs, niqe_model, f"{job.name} ({contender.label})")
        record["results"][contender.label] = {**scores, "time_s": elapsed}
        if cfg.save_outputs:
            path = report_dir / "outputs" / contender.label / f"{Path(job.name).stem}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            write_image(path, DecodedImage(sr))
    if inputs.hr is not None and niqe_model is not None:
        # How natural the ground truth itself scores: the floor the models are aiming at.
        record["hr_niqe"] = _safe_niqe(inputs.hr, niqe_model, inputs.scale, f"{job.name} (HR)")
    return record, outputs


def _short(res: Mapping[str, Any]) -> str:
    keys = ("psnr", "ssim", "psnr_players", "niqe", "time_s")
    return " ".join(f"{k}={report.fmt(k, float(res[k]))}" for k in keys if k in res)


# ---------------------------------------------------------------------------------------------
# Sheets


def _choose_crops(given: Sequence[tuple[int, int, int, int]], inputs: ImageInputs) -> list[PixelBox]:
    """--crops if given, else the largest players, else the most detailed regions."""
    out_h, out_w = inputs.out_size
    if given:
        chosen = []
        for x, y, w, h in given:
            c = clip_box(PixelBox(x, y, x + w, y + h), 0, 0, out_w, out_h)
            if c is None:
                log.warning("crop %s is outside the %dx%d output: ignored", (x, y, w, h), out_w, out_h)
            else:
                chosen.append(c)
        return chosen
    if inputs.boxes:
        return crops_from_boxes(inputs.boxes, out_w, out_h, count=3, min_side=16 * inputs.scale)
    # Neutral ground for "most detailed": the HR, or the LR enlarged (not any model's output).
    reference = (
        inputs.hr if inputs.hr is not None else cv2.resize(inputs.lq, (out_w, out_h), interpolation=cv2.INTER_CUBIC)
    )
    return detail_crops(reference, count=3, side=24 * inputs.scale)


_SHEET_LINES = (
    ("psnr", "PSNR {} dB", True), ("ssim", "SSIM {}", True), ("psnr_players", "players PSNR {} dB", True),
    ("ssim_players", "players SSIM {}", True), ("niqe", "NIQE {}", False), ("time_s", "{} s/image", False),
)  # fmt: skip


def _image_sheet(
    name: str,
    inputs: ImageInputs,
    outputs: Mapping[str, np.ndarray],
    record: Mapping[str, Any],
    labels: Sequence[str],
    crops: Sequence[PixelBox],
    *,
    synthesised: bool,
) -> np.ndarray:
    out_h, out_w = inputs.out_size
    results = record["results"]
    lines = [line for line in _SHEET_LINES if any(line[0] in results[lbl] for lbl in labels)]
    best: dict[str, float] = {}
    for key, _, higher in lines:
        values = {float(results[lbl][key]) for lbl in labels if key in results[lbl]}
        values = {v for v in values if not math.isnan(v)}
        if len(values) > 1:
            best[key] = max(values) if higher else min(values)
    lq = inputs.lq
    note = f"synthesised, seed {inputs.lq_seed}" if synthesised else "given"
    lr_line = f"{lq.shape[1]}x{lq.shape[0]} ({note})"
    columns = [Column(f"LR x{inputs.scale} nearest", nearest_enlarge(lq, out_h, out_w), (lr_line,))]
    for label in labels:
        res = results[label]
        keys = [(key, text) for key, text, _ in lines if key in res]
        columns.append(
            Column(
                label,
                outputs[label],
                tuple(text.format(report.fmt(key, float(res[key]))) for key, text in keys),
                tuple(best.get(key) == float(res[key]) for key, _ in keys),
            )
        )
    if inputs.hr is not None:
        hr_lines = [f"{out_w}x{out_h}"]
        if "hr_niqe" in record:
            hr_lines.append(f"NIQE {report.fmt('niqe', record['hr_niqe'])}")
        columns.append(Column("HR (ground truth)", inputs.hr, tuple(hr_lines)))
    return make_sheet(columns, crops, title=f"{name}  x{inputs.scale}")


def _index_row(record: Mapping[str, Any], labels: Sequence[str]) -> IndexRow:
    cells: dict[str, dict[str, str]] = {}
    best: dict[str, str] = {}
    for metric in report.METRICS:
        values = {
            lbl: float(record["results"][lbl][metric.key]) for lbl in labels if metric.key in record["results"][lbl]
        }
        for lbl, v in values.items():
            cells.setdefault(lbl, {})[metric.label] = report.fmt(metric, v)
        finite = {k: v for k, v in values.items() if not math.isnan(v)}
        if len(finite) > 1:
            target = max(finite.values()) if metric.higher_is_better else min(finite.values())
            leaders = [k for k, v in finite.items() if v == target]
            if len(leaders) == 1:
                best[metric.label] = leaders[0]
    return IndexRow(image=record["image"], sheet=record["sheet"], cells=cells, best=best)


# ---------------------------------------------------------------------------------------------
# Report files


def _write_reports(
    cfg: EvalConfig,
    report_dir: Path,
    scale: int,
    jobs: Sequence[ImageJob],
    records: Sequence[Mapping[str, Any]],
    failed: Sequence[Mapping[str, str]],
    summaries: Sequence[report.MetricSummary],
    contenders: Sequence[_Contender],
    niqe_json: Mapping[str, Any],
    index_rows: Sequence[IndexRow],
) -> str:
    """Write summary.md, results.csv, report.json and index.html; return the terminal table."""
    labels = [c.label for c in contenders]
    model_info = [c.info for c in contenders]
    context = _context_lines(cfg, len(jobs), len(records), failed, scale, niqe_json)
    hr_niqe = [float(r["hr_niqe"]) for r in records if "hr_niqe" in r]
    references = {"HR (reference)": {"niqe": report.nanmean(hr_niqe)}} if hr_niqe else None
    title = "soccersr eval: " + " vs ".join(labels)
    markdown = report.markdown_summary(summaries, labels, title=title, context_lines=context, reference_rows=references)
    report.write_text(report_dir / "summary.md", markdown + _models_markdown(model_info))

    rows = [
        {"image": r["image"], "model": lbl, **r["results"][lbl], "width": r["output_size"][0],
         "height": r["output_size"][1], "lq_seed": r["lq_seed"], "sheet": r.get("sheet", "")}
        for r in records for lbl in labels
    ]  # fmt: skip
    report.write_csv(report_dir / "results.csv", rows, CSV_COLUMNS)
    report.write_json(
        report_dir / "report.json",
        {
            "format": REPORT_FORMAT,
            "config": _config_json(cfg, scale),
            "models": model_info,
            "versions": _versions(),
            "degradation": _degradation_json(cfg.degradation) if cfg.synthesise_lq else None,
            "niqe": niqe_json,
            "images": list(records),
            "failed": list(failed),
            "summary": report.summaries_as_dicts(summaries),
            "hr_niqe_mean": report.nanmean(hr_niqe) if hr_niqe else None,
        },
    )
    if cfg.sheets:
        metric_labels = [report.METRIC_BY_KEY[s.metric].label for s in summaries]
        page = index_html(title, _summary_html(summaries, labels, context), labels, metric_labels, index_rows)
        report.write_text(report_dir / "index.html", page)
    return report.terminal_table(summaries, labels)


def _versions() -> dict[str, str]:
    return {
        "soccersr": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "opencv": cv2.__version__,
    }


def _config_json(cfg: EvalConfig, scale: int) -> dict[str, Any]:
    data = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)}
    data["models"] = list(cfg.models)
    data["crops"] = [list(c) for c in cfg.crops]
    data["scale"] = scale
    data["crop_border"] = scale
    data["lq_mode"] = "synthesised" if cfg.synthesise_lq else ("given" if cfg.lq_dir else "none")
    data["metrics"] = {
        "psnr_ssim": "Y channel (BT.601, 16-235), 8-bit rounded, crop border = scale; SSIM 11x11 Gaussian sigma 1.5, valid",
        "players": f"classes 1-3 (goalkeeper, player, referee), boxes +{cfg.box_enlarge:.0%}, MSE pooled over box pixels, "
        "SSIM mean over boxes, boxes under 11x11 after the border crop skipped",
        "time": "seconds per image inside Upscaler.upscale after one warm-up call, including host/device copies",
    }
    return data


def _degradation_json(kind: str) -> dict[str, Any]:
    if kind == "web":
        config: dict[str, Any] = {
            "blur": f"Gaussian, sigma uniform in {list(WEB_BLUR_SIGMA)}",
            "resize": "bicubic (OpenCV INTER_CUBIC) x1/scale",
            "jpeg_quality": f"uniform integer in {list(WEB_JPEG_QUALITY)} (OpenCV)",
        }
    else:
        config = second_order_settings(DegradationConfig())
    return {
        "kind": kind,
        "config": config,
        "seed_rule": "per image: sha256('<seed>\\0<file name>'), first 8 bytes big-endian, shifted right by 1 "
        "(as soccersr degrade)",
    }


def _niqe_json(cfg: EvalConfig, model: NiqeModel | None) -> dict[str, Any]:
    if model is None or cfg.niqe_params is None:
        return {"omitted": "no NIQE params given (--niqe-params; fit them with `soccersr eval fit-niqe`)"}
    return {
        "params": str(Path(cfg.niqe_params).resolve()),
        "sha256": file_sha256(Path(cfg.niqe_params)),
        "patch_size": model.patch_size,
        "fit": model.info,
    }


def _context_lines(
    cfg: EvalConfig,
    n_jobs: int,
    n_done: int,
    failed: Sequence[Mapping[str, str]],
    scale: int,
    niqe_json: Mapping[str, Any],
) -> list[str]:
    lines = [f"{n_done} of {n_jobs} images evaluated, x{scale}, soccersr {__version__}"]
    if cfg.hr_dir:
        lines.append(f"HR: `{cfg.hr_dir}` (PSNR/SSIM on Y, crop border {scale})")
    if cfg.synthesise_lq:
        lines.append(
            f"LQ: synthesised from the HR with the {cfg.degradation} degradation, seed {cfg.seed} "
            "(per-image seeds in report.json), cached in `lq/`"
        )
    elif cfg.lq_dir:
        lines.append(f"LQ: `{cfg.lq_dir}`" + ("" if cfg.hr_dir else " (no HR: NIQE and time only)"))
    if cfg.boxes_dir:
        lines.append(f"player boxes: `{cfg.boxes_dir}` (goalkeepers, players, referees, +{cfg.box_enlarge:.0%})")
    if "omitted" in niqe_json:
        lines.append(f"NIQE: omitted, {niqe_json['omitted']}")
    else:
        fit = niqe_json.get("fit", {})
        count, source = fit.get("num_images"), fit.get("source")
        lines.append(
            f"NIQE params: `{niqe_json['params']}` (sha256 {niqe_json['sha256'][:16]}…), {fit.get('method', '')}"
            + (f", {count} images" if count else "") + (f" from `{source}`" if source else "")
            + f", patch {niqe_json['patch_size']}"
        )  # fmt: skip
    if failed:
        names = ", ".join(f["image"] for f in failed)
        lines.append(f"**{len(failed)} image(s) failed** and are not in the scores: {names}")
    return lines


def _models_markdown(model_info: Sequence[Mapping[str, Any]]) -> str:
    lines = [
        "",
        "## Models",
        "",
        "| label | spec | arch | params | scale | source | sha256 | device |",
        "|---" * 8 + "|",
    ]
    for m in model_info:
        lines.append(
            f"| {m['label']} | `{m['spec']}` | {m['arch']} | {m['parameters']:,} | x{m['scale']:g} | {m['source']} | "
            f"{m.get('sha256', '')[:16]} | {m['device']} {m['precision']} |"
        )
    return "\n".join(lines) + "\n"


def _summary_html(summaries: Sequence[report.MetricSummary], labels: Sequence[str], context: Sequence[str]) -> str:
    esc = html.escape
    parts = ["<ul>" + "".join(f"<li>{esc(c.replace('`', ''))}</li>" for c in context) + "</ul>"]
    heads = []
    for s in summaries:
        metric = report.METRIC_BY_KEY[s.metric]
        heads.append(f"<th>{esc(metric.label)} ({'higher' if metric.higher_is_better else 'lower'} is better)</th>")
    head = "".join(heads)
    rows = []
    for lbl in labels:
        cells = []
        for s in summaries:
            value = esc(report.fmt(s.metric, s.means.get(lbl, math.nan), unit=True))
            cells.append(f"<td><b>{value}</b></td>" if s.winner == lbl and len(labels) > 1 else f"<td>{value}</td>")
        rows.append(f"<tr><td>{esc(lbl)}</td>{''.join(cells)}</tr>")
    parts.append(f"<table><tr><th>mean</th>{head}</tr>{''.join(rows)}</table>")
    if len(labels) > 1:
        parts.append("<ul>" + "".join(f"<li>{esc(report.winner_sentence(s))}</li>" for s in summaries) + "</ul>")
    return "\n".join(parts)
