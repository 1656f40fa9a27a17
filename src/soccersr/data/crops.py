"""Sliding-window sub-images for training, with the optional multiscale copies of Real-ESRGAN.

The window geometry is that of Real-ESRGAN's ``scripts/extract_subimages.py``: windows start at
``0, step, 2*step, ...`` as long as they fit, and one more window flush with the far border is added
when the uncovered remainder is larger than ``thresh_size``. Crops are numbered row by row
(``<stem>_s001.png``, ``_s002`` ...). The multiscale copies are those of
``scripts/generate_multiscale_DF2K.py``: PIL LANCZOS downscales by 0.75, 0.5 and 1/3 and a copy whose
shortest edge is 400 px, named ``<stem>T0`` .. ``<stem>T3``.

Two deliberate differences from the official scripts:

- A side shorter than ``crop_size`` gets a single window covering the whole side (the official script
  crashes on such images); the dataset pads such crops at training time.
- The shortest-edge-400 copy is skipped when it would *enlarge* the image: an upscaled copy is a
  blurry ground truth.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from soccersr.io.images import DecodedImage, read_image, write_image
from soccersr.io.listing import list_images

log = logging.getLogger(__name__)

MULTISCALE_FACTORS = (0.75, 0.5, 1 / 3)
MULTISCALE_SHORTEST_EDGE = 400


@dataclass(frozen=True)
class CropConfig:
    """How ``soccersr crops`` cuts sub-images."""

    crop_size: int = 480
    """Side of the square windows, in pixels."""
    step: int = 240
    """Distance between window starts (overlap = crop_size - step)."""
    thresh_size: int = 0
    """A last window flush with the border is added only when more than this many pixels are left over."""
    compression_level: int = 3
    """PNG compression 0-9 (lossless either way; 3 is OpenCV's default and the official value)."""
    multiscale: bool = False
    """Also crop LANCZOS-downscaled copies (0.75, 0.5, 1/3, shortest edge 400)."""

    def __post_init__(self) -> None:
        if self.crop_size < 1:
            raise ValueError(f"crop_size must be >= 1, got {self.crop_size}")
        if self.step < 1:
            raise ValueError(f"step must be >= 1, got {self.step}")
        if self.thresh_size < 0:
            raise ValueError(f"thresh_size must be >= 0, got {self.thresh_size}")
        if not 0 <= self.compression_level <= 9:
            raise ValueError(f"compression_level must be in 0..9, got {self.compression_level}")


def window_starts(length: int, crop_size: int, step: int, thresh_size: int = 0) -> list[int]:
    """Start offsets of the windows along one side of ``length`` pixels.

    >>> window_starts(1080, 480, 240)
    [0, 240, 480, 600]
    >>> window_starts(1920, 480, 240)
    [0, 240, 480, 720, 960, 1200, 1440]
    """
    if length < 1:
        raise ValueError(f"length must be >= 1, got {length}")
    if length <= crop_size:
        return [0]
    starts = list(range(0, length - crop_size + 1, step))
    if length - (starts[-1] + crop_size) > thresh_size:
        starts.append(length - crop_size)
    return starts


def crop_boxes(height: int, width: int, cfg: CropConfig) -> list[tuple[int, int, int, int]]:
    """The crop boxes ``(top, left, bottom, right)`` of an image, in output order (row by row)."""
    tops = window_starts(height, cfg.crop_size, cfg.step, cfg.thresh_size)
    lefts = window_starts(width, cfg.crop_size, cfg.step, cfg.thresh_size)
    size_h, size_w = min(cfg.crop_size, height), min(cfg.crop_size, width)
    return [(top, left, top + size_h, left + size_w) for top in tops for left in lefts]


def crop_name(stem: str, number: int) -> str:
    """File name of the ``number``-th (1-based) crop of ``stem``, as the official script names it."""
    return f"{stem}_s{number:03d}.png"


def multiscale_sizes(width: int, height: int) -> list[tuple[int, int]]:
    """``(width, height)`` of the copies T0..T3 (T3 omitted when it would enlarge the image)."""
    sizes = [(int(width * f), int(height * f)) for f in MULTISCALE_FACTORS]
    edge = MULTISCALE_SHORTEST_EDGE
    if min(width, height) > edge:
        if width < height:
            sizes.append((edge, int(edge * (height / width))))
        else:
            sizes.append((int(edge * (width / height)), edge))
    return sizes


def lanczos_resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """PIL LANCZOS resize (antialiased when shrinking, unlike ``cv2.INTER_LANCZOS4``) of integer pixels
    as ``DecodedImage.to_pixels`` gives them (PIL filters each channel on its own)."""
    if image.dtype == np.uint8 and (image.ndim == 2 or image.shape[2] in (3, 4)):
        return np.asarray(Image.fromarray(image).resize((width, height), resample=Image.LANCZOS))
    # 16-bit (or 2-channel) images: PIL has no multi-channel 16-bit mode, so resize each channel as float.
    channels = image[..., None] if image.ndim == 2 else image
    info = np.iinfo(image.dtype) if image.dtype.kind in "ui" else None
    out = []
    for c in range(channels.shape[2]):
        plane = Image.fromarray(channels[..., c].astype(np.float32), mode="F")
        resized = np.asarray(plane.resize((width, height), resample=Image.LANCZOS))
        if info is not None:
            resized = np.clip(np.rint(resized), info.min, info.max)
        out.append(resized.astype(image.dtype))
    stacked = np.stack(out, axis=2)
    return stacked[..., 0] if image.ndim == 2 else stacked


def _write_png(path: Path, pixels: np.ndarray, compression_level: int) -> None:
    write_image(path, DecodedImage.from_pixels(pixels), png_compression=compression_level)


@dataclass(frozen=True)
class ImageCropResult:
    """What happened to one input image."""

    source: Path
    written: tuple[str, ...] = ()
    """File names written into the crop folder (the multiscale copies are not counted here)."""
    error: str | None = None
    """One-line reason when the image failed (crops written before the failure stay, complete)."""


def crop_image(source: Path, out_dir: Path, cfg: CropConfig, multiscale_dir: Path | None = None) -> ImageCropResult:
    """Cut one image (and, with ``cfg.multiscale``, its downscaled copies) into ``out_dir``.

    A top-level function taking only picklable arguments, so spawned worker processes can run it.
    Errors are returned, not raised, so one bad file does not stop the others.
    """
    try:
        image = read_image(source, max_pixels=None).to_pixels()
        if image.ndim not in (2, 3):
            return ImageCropResult(source, error=f"{source}: unsupported image with {image.ndim} dimensions")
        versions = [(source.stem, image)]
        if cfg.multiscale:
            if multiscale_dir is None:
                raise ValueError("multiscale_dir is required with multiscale=True")
            height, width = image.shape[:2]
            for t, (w, h) in enumerate(multiscale_sizes(width, height)):
                if w < 1 or h < 1:
                    continue
                small = lanczos_resize(image, w, h)
                stem = f"{source.stem}T{t}"
                _write_png(multiscale_dir / f"{stem}.png", small, cfg.compression_level)
                versions.append((stem, small))
        written: list[str] = []
        for stem, img in versions:
            height, width = img.shape[:2]
            for number, (top, left, bottom, right) in enumerate(crop_boxes(height, width, cfg), start=1):
                name = crop_name(stem, number)
                _write_png(out_dir / name, img[top:bottom, left:right], cfg.compression_level)
                written.append(name)
        return ImageCropResult(source, written=tuple(written))
    except Exception as exc:  # noqa: BLE001 - reported by name, the run goes on
        message = str(exc)
        if str(source) not in message:
            message = f"{source}: {message}"
        return ImageCropResult(source, error=message)


@dataclass(frozen=True)
class CropReport:
    """Summary of a ``crop_folder`` run."""

    images: int
    crops: int
    failed: tuple[str, ...] = ()
    """One line per failed image, naming it and the reason."""
    stale: tuple[str, ...] = ()
    """Images already in the output folder that this run did not write (left over from other settings?)."""


def crop_folder(
    in_dir: Path,
    out_dir: Path,
    cfg: CropConfig,
    *,
    workers: int = 1,
    multiscale_dir: Path | None = None,
    progress: Callable[[ImageCropResult], None] | None = None,
) -> CropReport:
    """Crop every image of ``in_dir`` into ``out_dir`` using ``workers`` processes.

    The output (file names and bytes) does not depend on ``workers``: each image is handled on its own
    and every crop name is a function of the image name and the window position. Existing files with
    the same names are replaced. ``progress`` is called once per finished image.

    Raises:
        NotADirectoryError: ``in_dir`` is not a folder.
        ValueError: two images share a stem (their crops would collide).
    """
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    sources = list_images(in_dir)
    stems: dict[str, str] = {}
    for source in sources:
        if source.stem in stems:
            # Crops are named after the stem: a.jpg and a.png would overwrite each other's crops.
            raise ValueError(f"{in_dir}: {stems[source.stem]} and {source.name} have the same stem")
        stems[source.stem] = source.name
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if cfg.multiscale:
        multiscale_dir = Path(multiscale_dir) if multiscale_dir is not None else out_dir / "multiscale"
        multiscale_dir.mkdir(parents=True, exist_ok=True)

    written: set[str] = set()
    failed: list[str] = []
    crops = 0
    for result in _run(sources, out_dir, cfg, multiscale_dir, workers):
        if result.error is not None:
            failed.append(result.error)
        written.update(result.written)
        crops += len(result.written)
        if progress is not None:
            progress(result)
    stale = tuple(p.name for p in list_images(out_dir) if p.name not in written)
    return CropReport(images=len(sources), crops=crops, failed=tuple(failed), stale=stale)


def _run(
    sources: Sequence[Path], out_dir: Path, cfg: CropConfig, multiscale_dir: Path | None, workers: int
) -> Iterator[ImageCropResult]:
    if workers == 1 or len(sources) <= 1:
        for source in sources:
            yield crop_image(source, out_dir, cfg, multiscale_dir)
        return
    # spawn, not fork: the parent may hold threads (OpenCV, torch) that a forked child would inherit locked.
    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(max_workers=min(workers, len(sources)), mp_context=context)
    try:
        n = len(sources)
        yield from pool.map(crop_image, sources, [out_dir] * n, [cfg] * n, [multiscale_dir] * n)
    finally:
        # On Ctrl-C (or any error) drop the images not started yet instead of waiting for all of them.
        pool.shutdown(wait=True, cancel_futures=True)


def default_workers() -> int:
    """A sensible default worker count: the CPUs this process may use, at most 8."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(8, cpus))
