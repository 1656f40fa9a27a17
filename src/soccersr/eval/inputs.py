"""What each model is fed: HR / LQ / box files paired by stem, and the seeded synthetic LQ.

Every model sees exactly the same LQ pixels. Without an LQ folder they are synthesised from the
HR with the training degradation or the web one (``degrade/web.py``), seeded per image from the
run's seed and the file name by ``image_seed`` (the rule of ``soccersr degrade`` too, so the same
LQ comes back in every run, on every machine and from either command), and cached in ``<report>/lq``.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from soccersr import __version__
from soccersr.degrade import DegradationConfig
from soccersr.degrade.config import second_order_settings
from soccersr.degrade.web import WEB_BLUR_SIGMA, WEB_JPEG_QUALITY, image_seed, synthesize_lq
from soccersr.errors import UsageError
from soccersr.eval.boxes import PixelBox, clip_box, person_boxes, read_boxes
from soccersr.eval.report import write_text
from soccersr.io.hashing import file_sha256
from soccersr.io.images import DecodedImage, ImageReadError, read_image, write_image
from soccersr.io.listing import IMAGE_SUFFIXES, list_images

log = logging.getLogger(__name__)


class EvalError(UsageError, ValueError):
    """A bad evaluation setup or input (folders, models, sizes); the message names the cause."""


@dataclass(frozen=True)
class ImageJob:
    """One evaluated image: where its HR, LQ and boxes come from."""

    name: str
    """File name of the HR (or of the LQ when there is no HR)."""
    hr: Path | None
    lq: Path | None
    boxes: Path | None


@dataclass(frozen=True)
class ImageInputs:
    """The pixels of one evaluated image, on the model's output grid where it matters."""

    lq: np.ndarray
    """Float RGB (h, w, 3) in [0, 1]: the model input."""
    hr: np.ndarray | None
    """Float RGB (h*scale, w*scale, 3), mod-cropped; None for real photos without ground truth."""
    boxes: list[PixelBox] | None
    """Person boxes in output-grid pixels, None without a box file."""
    lq_seed: int | None
    """Degradation seed when the LQ was synthesised."""
    lq_path: Path | None
    """The LQ file (given, or the cached synthetic one)."""
    scale: int

    @property
    def out_size(self) -> tuple[int, int]:
        """(height, width) of the model outputs (and of the HR)."""
        return self.lq.shape[0] * self.scale, self.lq.shape[1] * self.scale


def _list_images(folder: Path) -> dict[str, Path]:
    files = list_images(folder)
    by_stem: dict[str, Path] = {}
    for path in files:
        if path.stem in by_stem:
            raise EvalError(
                f"{folder}: two images share the stem {path.stem!r} ({by_stem[path.stem].name}, {path.name})"
            )
        by_stem[path.stem] = path
    if not by_stem:
        raise EvalError(f"{folder}: no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return by_stem


def find_jobs(hr_dir: Path | None, lq_dir: Path | None, boxes_dir: Path | None) -> list[ImageJob]:
    """Pair the HR, LQ and box files by stem. Every HR needs its LQ when both folders are given."""
    hr = _list_images(hr_dir) if hr_dir else {}
    lq = _list_images(lq_dir) if lq_dir else {}
    if hr and lq:
        missing = sorted(set(hr) - set(lq))
        if missing:
            raise EvalError(f"{lq_dir}: no LQ image for {len(missing)} HR image(s), e.g. {missing[0]!r}")
    jobs = []
    for stem in sorted(hr or lq):
        box = boxes_dir / f"{stem}.txt" if boxes_dir else None
        if box is not None and not box.is_file():
            log.warning("no box file %s: no player metrics for %s", box, stem)
            box = None
        path = hr.get(stem) or lq[stem]
        jobs.append(ImageJob(name=path.name, hr=hr.get(stem), lq=lq.get(stem), boxes=box))
    return jobs


class LqCache:
    """Synthesised LQ images in a folder, reused when the seed, the HR content, the scale, the
    degradation (kind and settings) and the soccersr version all match."""

    def __init__(self, folder: Path, scale: int, kind: str = "training") -> None:
        self.folder = folder
        self.scale = scale
        self.kind = kind
        self.manifest_path = folder / "manifest.json"
        self.degradation = _degradation_digest(scale, kind)  # depends on the scale and kind only: once, not per image
        self.entries: dict[str, Any] = {}
        if self.manifest_path.is_file():
            try:
                self.entries = json.loads(self.manifest_path.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError):
                log.warning("%s is unreadable: synthesising the LQ again", self.manifest_path)

    def path(self, name: str) -> Path:
        return self.folder / f"{Path(name).stem}.png"

    def get(self, name: str, hr: np.ndarray, hr_sha256: str, seed: int) -> np.ndarray:
        """The LQ of ``hr`` (already mod-cropped) for ``seed``: from the cache, or synthesised and cached."""
        key = {
            "seed": seed,
            "hr_sha256": hr_sha256,
            "scale": self.scale,
            "degradation": self.degradation,
            "soccersr": __version__,
        }
        path = self.path(name)
        if self.entries.get(name) == key and path.is_file():
            try:
                cached = read_image(path).rgb
                if cached.shape[:2] == (hr.shape[0] // self.scale, hr.shape[1] // self.scale):
                    return cached
            except ImageReadError as exc:
                log.warning("cached LQ unusable (%s): synthesising again", exc)
        lq = synthesize_lq(np.ascontiguousarray(hr, dtype=np.float32), kind=self.kind, scale=self.scale, seed=seed)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_image(path, DecodedImage(lq))  # the LQ holds k/255 values, so the 8-bit PNG is exact
        self.entries[name] = key
        write_text(self.manifest_path, json.dumps(self.entries, indent=2, sort_keys=True) + "\n")
        return lq


def _degradation_digest(scale: int, kind: str = "training") -> str:
    """A short hash of the degradation and its default settings (a changed default invalidates the cache)."""
    if kind == "web":
        settings: dict[str, Any] = {
            "kind": kind,
            "scale": scale,
            "blur_sigma": WEB_BLUR_SIGMA,
            "jpeg_quality": WEB_JPEG_QUALITY,
            "resize": "bicubic",
        }
    else:
        settings = second_order_settings(DegradationConfig(scale=scale))  # the training kind keeps its digest
    text = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def load_inputs(
    job: ImageJob,
    *,
    scale: int,
    seed: int,
    lq_cache: LqCache | None,
    box_enlarge: float,
    max_pixels: int | None,
) -> ImageInputs:
    """Read (or synthesise) the LQ, the mod-cropped HR and the person boxes of one image.

    Raises ImageReadError, BoxFileError or EvalError (HR and LQ sizes that do not match).
    """
    if job.hr is None:
        assert job.lq is not None
        lq = read_image(job.lq, max_pixels=max_pixels).rgb
        out_h, out_w = lq.shape[0] * scale, lq.shape[1] * scale
        boxes = _boxes_on_grid(job.boxes, (out_h, out_w), (out_h, out_w), box_enlarge)
        return ImageInputs(lq=lq, hr=None, boxes=boxes, lq_seed=None, lq_path=job.lq, scale=scale)

    hr_full = read_image(job.hr, max_pixels=max_pixels).rgb
    lq = read_image(job.lq, max_pixels=max_pixels).rgb if job.lq is not None else None
    if lq is not None:
        out_h, out_w = lq.shape[0] * scale, lq.shape[1] * scale
        if not (out_h <= hr_full.shape[0] < out_h + scale and out_w <= hr_full.shape[1] < out_w + scale):
            raise EvalError(
                f"{job.hr}: HR is {hr_full.shape[1]}x{hr_full.shape[0]} but its LQ {job.lq} x{scale} is {out_w}x{out_h}"
            )
    else:
        out_h, out_w = hr_full.shape[0] - hr_full.shape[0] % scale, hr_full.shape[1] - hr_full.shape[1] % scale
        if out_h == 0 or out_w == 0:
            raise EvalError(f"{job.hr}: smaller than the scale x{scale}")
    # Mod-crop (bottom and right): the HR that an x-scale model can reproduce.
    hr = np.ascontiguousarray(hr_full[:out_h, :out_w])
    lq_seed = lq_path = None
    if lq is None:
        if lq_cache is None:
            raise EvalError(f"{job.hr}: no LQ given and no LQ cache to synthesise one")
        lq_seed = image_seed(seed, job.name)
        lq = lq_cache.get(job.name, hr, file_sha256(job.hr), lq_seed)
        lq_path = lq_cache.path(job.name)
    else:
        lq_path = job.lq
    # Box files are normalised to the HR as stored (before the mod-crop).
    boxes = _boxes_on_grid(job.boxes, hr_full.shape[:2], (out_h, out_w), box_enlarge)
    return ImageInputs(lq=lq, hr=hr, boxes=boxes, lq_seed=lq_seed, lq_path=lq_path, scale=scale)


def _boxes_on_grid(
    path: Path | None, frame: tuple[int, ...], out_size: tuple[int, int], enlarge: float
) -> list[PixelBox] | None:
    """Person boxes of a box file normalised to an image of ``frame`` = (h, w) output-grid pixels,
    clipped to the output (h, w)."""
    if path is None:
        return None
    pixel = person_boxes(read_boxes(path), frame[1], frame[0], enlarge=enlarge)
    clipped = (clip_box(b, 0, 0, out_size[1], out_size[0]) for b in pixel)
    return [b for b in clipped if b is not None]
