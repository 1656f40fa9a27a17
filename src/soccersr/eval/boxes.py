"""Player boxes (YOLO text files) and full-reference metrics restricted to them.

In wide soccer shots the players cover a few percent of the frame, so whole-image PSNR is
dominated by grass and stands. These metrics look only where viewers look.

Box files: one per image, same stem, one box per line ``class cx cy w h`` normalised to the
image size (YOLO). Classes: 0 ball, 1 goalkeeper, 2 player, 3 referee.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from soccersr.errors import SoccersrError
from soccersr.metrics import SSIM_WINDOW, psnr_from_mse, squared_error_sum, ssim_plane, y_channel

BALL, GOALKEEPER, PLAYER, REFEREE = 0, 1, 2, 3
PERSON_CLASSES = frozenset({GOALKEEPER, PLAYER, REFEREE})
DEFAULT_ENLARGE = 0.10


class BoxFileError(SoccersrError, ValueError):
    """A box file that cannot be parsed."""


@dataclass(frozen=True)
class Box:
    """A YOLO box, normalised to the image: centre (cx, cy) and size (w, h) in [0, 1]."""

    cls: int
    cx: float
    cy: float
    w: float
    h: float


@dataclass(frozen=True)
class PixelBox:
    """A box in pixels, half-open: columns x0..x1-1, rows y0..y1-1."""

    x0: int
    y0: int
    x1: int
    y1: int

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    @property
    def height(self) -> int:
        return self.y1 - self.y0


def read_boxes(path: Path) -> list[Box]:
    """Parse a YOLO box file; blank lines are ignored, anything else malformed raises BoxFileError."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BoxFileError(f"{path}: cannot read box file ({exc})") from None
    boxes = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 5:
            raise BoxFileError(f"{path}:{lineno}: expected 'class cx cy w h', got {line.strip()!r}")
        try:
            cls_value, cx, cy, w, h = (float(p) for p in parts)
        except ValueError:
            raise BoxFileError(f"{path}:{lineno}: not numbers: {line.strip()!r}") from None
        # Some exporters write the class as a float ("2.0"); a fraction, NaN or a negative is no class.
        if not cls_value.is_integer() or cls_value < 0:
            raise BoxFileError(f"{path}:{lineno}: class {parts[0]!r} is not a whole number >= 0")
        if not all(math.isfinite(v) for v in (cx, cy, w, h)) or w < 0 or h < 0:
            raise BoxFileError(f"{path}:{lineno}: invalid box {line.strip()!r}")
        boxes.append(Box(int(cls_value), cx, cy, w, h))
    return boxes


def to_pixels(box: Box, width: int, height: int, *, enlarge: float = DEFAULT_ENLARGE) -> PixelBox | None:
    """Pixel box of ``box`` on a width x height image, each side grown by ``enlarge`` (0.1 = +10%),
    rounded outwards and clipped to the image. None if nothing of it is inside."""
    bw, bh = box.w * width * (1 + enlarge), box.h * height * (1 + enlarge)
    cx, cy = box.cx * width, box.cy * height
    x0, x1 = max(0, math.floor(cx - bw / 2)), min(width, math.ceil(cx + bw / 2))
    y0, y1 = max(0, math.floor(cy - bh / 2)), min(height, math.ceil(cy + bh / 2))
    if x1 <= x0 or y1 <= y0:
        return None
    return PixelBox(x0, y0, x1, y1)


def clip_box(box: PixelBox, x0: int, y0: int, x1: int, y1: int) -> PixelBox | None:
    """Intersection of ``box`` with the rectangle [x0, x1) x [y0, y1), or None if empty."""
    clipped = PixelBox(max(box.x0, x0), max(box.y0, y0), min(box.x1, x1), min(box.y1, y1))
    return clipped if clipped.width > 0 and clipped.height > 0 else None


def person_boxes(boxes: list[Box], width: int, height: int, *, enlarge: float = DEFAULT_ENLARGE) -> list[PixelBox]:
    """Pixel boxes of the goalkeepers, players and referees (not the ball)."""
    out = []
    for box in boxes:
        if box.cls in PERSON_CLASSES:
            pixel_box = to_pixels(box, width, height, enlarge=enlarge)
            if pixel_box is not None:
                out.append(pixel_box)
    return out


def person_mask(boxes: list[Box], width: int, height: int, *, enlarge: float = DEFAULT_ENLARGE) -> np.ndarray:
    """(height, width) bool: True inside the person boxes (the pixels ``region_scores`` scores)."""
    mask = np.zeros((height, width), dtype=bool)
    for box in person_boxes(boxes, width, height, enlarge=enlarge):
        mask[box.y0 : box.y1, box.x0 : box.x1] = True
    return mask


@dataclass(frozen=True)
class RegionScores:
    """PSNR/SSIM over a set of boxes of one image."""

    psnr: float
    """PSNR of the MSE pooled over all used box pixels (dB); NaN if no box was usable."""
    ssim: float
    """Mean of the per-box SSIMs; NaN if no box was usable."""
    used: int
    skipped: int
    """Boxes smaller than the SSIM window once the border crop is applied (left out of both metrics)."""


def region_scores(img: np.ndarray, ref: np.ndarray, boxes: list[PixelBox], *, crop_border: int) -> RegionScores:
    """PSNR/SSIM on the Y channel of ``img`` vs ``ref`` (float RGB (H, W, 3) in [0, 1]) inside ``boxes``.

    Boxes are in pixels of these images. The same border as the full-image metrics is excluded,
    and a box that then has a side under the 11-pixel SSIM window is skipped for both metrics.
    """
    if img.shape != ref.shape:
        raise ValueError(f"image shapes differ: {img.shape} vs reference {ref.shape}")
    height, width = ref.shape[:2]
    y_img, y_ref = y_channel(img, crop_border=0), y_channel(ref, crop_border=0)
    sse_total, n_total, ssims, skipped = 0.0, 0, [], 0
    for box in boxes:
        inner = clip_box(box, crop_border, crop_border, width - crop_border, height - crop_border)
        if inner is None or inner.width < SSIM_WINDOW or inner.height < SSIM_WINDOW:
            skipped += 1
            continue
        a = y_img[inner.y0 : inner.y1, inner.x0 : inner.x1]
        b = y_ref[inner.y0 : inner.y1, inner.x0 : inner.x1]
        sse, n = squared_error_sum(a, b)
        sse_total += sse
        n_total += n
        ssims.append(ssim_plane(a, b))
    if not ssims:
        return RegionScores(math.nan, math.nan, 0, skipped)
    return RegionScores(psnr_from_mse(sse_total / n_total), float(np.mean(ssims)), len(ssims), skipped)
