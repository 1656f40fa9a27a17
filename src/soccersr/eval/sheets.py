"""Comparison sheets: one PNG per image to judge artifacts by eye, and an HTML index of them.

A sheet has one column per picture (LR enlarged with nearest neighbour | model A | model B | ...
| HR), a header strip with each column's name and scores, the full frames (downscaled when
large), then one row per zoomed crop: the same region in every column, enlarged with nearest
neighbour so that pixels stay pixels. The crop regions are outlined on the full frames.
"""

from __future__ import annotations

import html
import math
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from soccersr.eval.boxes import PixelBox

_BG = (32, 32, 32)
_FG = (235, 235, 235)
_DIM = (170, 170, 170)
_GOOD = (120, 220, 120)
_GAP = 6
_FONT = cv2.FONT_HERSHEY_SIMPLEX
# Distinct outline colours for the crops (RGB), reused in the crop rows.
_CROP_COLOURS = ((255, 80, 80), (80, 200, 255), (255, 210, 60), (200, 120, 255), (120, 255, 140), (255, 140, 200))


@dataclass(frozen=True)
class Column:
    """One picture of a sheet, already on the output grid (same size for every column)."""

    label: str
    image: np.ndarray
    """Float RGB (H, W, 3) in [0, 1]."""
    lines: tuple[str, ...] = ()
    """Score lines under the label."""
    best: tuple[bool, ...] = ()
    """Per line, whether to highlight it (the best value of the row)."""


def nearest_enlarge(img: np.ndarray, height: int, width: int) -> np.ndarray:
    """Nearest-neighbour resize to (height, width): the LR as the model saw it, pixel for pixel."""
    return cv2.resize(img, (width, height), interpolation=cv2.INTER_NEAREST)


# ---------------------------------------------------------------------------------------------
# Choosing crops


def _square_around(cx: float, cy: float, side: int, width: int, height: int) -> PixelBox:
    side = min(side, width, height)
    x0 = int(round(cx - side / 2))
    y0 = int(round(cy - side / 2))
    x0 = min(max(0, x0), width - side)
    y0 = min(max(0, y0), height - side)
    return PixelBox(x0, y0, x0 + side, y0 + side)


def _overlaps(a: PixelBox, b: PixelBox) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def crops_from_boxes(
    boxes: Sequence[PixelBox], width: int, height: int, *, count: int = 3, min_side: int = 64
) -> list[PixelBox]:
    """Square windows around the largest boxes (players), non-overlapping, at most ``count``."""
    chosen: list[PixelBox] = []
    for box in sorted(boxes, key=lambda b: b.width * b.height, reverse=True):
        side = max(min_side, int(math.ceil(1.4 * max(box.width, box.height))))
        window = _square_around((box.x0 + box.x1) / 2, (box.y0 + box.y1) / 2, side, width, height)
        if not any(_overlaps(window, c) for c in chosen):
            chosen.append(window)
        if len(chosen) == count:
            break
    return chosen


def detail_crops(rgb: np.ndarray, *, count: int = 3, side: int = 96) -> list[PixelBox]:
    """The ``count`` non-overlapping side x side windows with the highest Laplacian variance."""
    height, width = rgb.shape[:2]
    side = min(side, width, height)
    gray = cv2.cvtColor(rgb.astype(np.float32), cv2.COLOR_RGB2GRAY)
    lap = cv2.Laplacian(gray, cv2.CV_32F, ksize=3)
    # Local variance of the Laplacian over each window: E[L^2] - E[L]^2 via box filters.
    mean = cv2.boxFilter(lap, -1, (side, side), normalize=True, borderType=cv2.BORDER_REFLECT)
    mean_sq = cv2.boxFilter(lap * lap, -1, (side, side), normalize=True, borderType=cv2.BORDER_REFLECT)
    var = mean_sq - mean * mean
    stride = max(1, side // 4)
    half = side // 2
    candidates = []
    for cy in range(half, height - (side - half) + 1, stride):
        for cx in range(half, width - (side - half) + 1, stride):
            candidates.append((float(var[cy, cx]), cx, cy))
    candidates.sort(key=lambda t: (-t[0], t[2], t[1]))
    chosen: list[PixelBox] = []
    for _, cx, cy in candidates:
        window = _square_around(cx, cy, side, width, height)
        if not any(_overlaps(window, c) for c in chosen):
            chosen.append(window)
            if len(chosen) == count:
                break
    return chosen


# ---------------------------------------------------------------------------------------------
# Drawing


def _to_u8(img: np.ndarray) -> np.ndarray:
    return np.round(np.clip(img, 0.0, 1.0) * 255.0).astype(np.uint8)


def _text_block(width: int, lines: Sequence[tuple[str, float, int, tuple[int, int, int]]]) -> np.ndarray:
    """A strip of text lines (text, font scale, thickness, colour), left-aligned, clipped to width."""
    heights = []
    for text, scale, thick, _ in lines:
        (_, h), base = cv2.getTextSize(text, _FONT, scale, thick)
        heights.append(h + base + 8)
    strip = np.full((sum(heights) + 6, width, 3), _BG, np.uint8)
    y = 4
    for (text, scale, thick, colour), h in zip(lines, heights, strict=True):
        # Shorten text that does not fit rather than letting it run into the next column.
        # (Hershey fonts are ASCII only, hence '~' for the ellipsis.)
        while len(text) > 2 and cv2.getTextSize(text, _FONT, scale, thick)[0][0] > width - 8:
            text = text[:-2] + "~"
        cv2.putText(strip, text, (4, y + h - 10), _FONT, scale, colour, thick, cv2.LINE_AA)
        y += h
    return strip


def _pad_to(img: np.ndarray, height: int, width: int, *, top: bool = False) -> np.ndarray:
    """Centre ``img`` on a background of height x width (at the top edge when ``top``)."""
    out = np.full((height, width, 3), _BG, np.uint8)
    y, x = (0 if top else (height - img.shape[0]) // 2), (width - img.shape[1]) // 2
    out[y : y + img.shape[0], x : x + img.shape[1]] = img
    return out


def _hstack(tiles: Sequence[np.ndarray]) -> np.ndarray:
    gap = np.full((tiles[0].shape[0], _GAP, 3), _BG, np.uint8)
    parts: list[np.ndarray] = []
    for i, tile in enumerate(tiles):
        if i:
            parts.append(gap)
        parts.append(tile)
    return np.concatenate(parts, axis=1)


def _vstack(rows: Sequence[np.ndarray]) -> np.ndarray:
    width = max(r.shape[1] for r in rows)
    gap = np.full((_GAP, width, 3), _BG, np.uint8)
    parts: list[np.ndarray] = []
    for i, row in enumerate(rows):
        if i:
            parts.append(gap)
        parts.append(_pad_to(row, row.shape[0], width) if row.shape[1] != width else row)
    return np.concatenate(parts, axis=0)


def make_sheet(
    columns: Sequence[Column],
    crops: Sequence[PixelBox],
    *,
    title: str,
    max_frame_width: int = 640,
    crop_width: int = 640,
) -> np.ndarray:
    """Render a comparison sheet as uint8 RGB.

    Args:
        columns: the pictures, all the same size (H, W, 3).
        crops: regions (pixels of that grid) to show zoomed in every column.
        title: one line above everything (image name, settings).
        max_frame_width: full frames wider than this are downscaled (area filter) to it.
        crop_width: crops are enlarged by the largest integer nearest-neighbour factor that keeps
            them within this width (never below 1x, so crops stay at full resolution or more).
    """
    if not columns:
        raise ValueError("a sheet needs at least one column")
    height, width = columns[0].image.shape[:2]
    for col in columns:
        if col.image.shape[:2] != (height, width):
            raise ValueError(f"column {col.label!r} is {col.image.shape[:2]}, expected {(height, width)}")
    frame_scale = min(1.0, max_frame_width / width)
    frame_w, frame_h = max(1, round(width * frame_scale)), max(1, round(height * frame_scale))
    zooms = [max(1, crop_width // max(c.width, c.height)) for c in crops]
    col_w = max([frame_w] + [c.width * z + 4 for c, z in zip(crops, zooms, strict=True)])  # +4: the coloured outline

    headers, frames = [], []
    for col in columns:
        lines = [(col.label, 0.6, 2, _FG)]
        best = col.best or (False,) * len(col.lines)
        lines += [(text, 0.5, 1, _GOOD if is_best else _DIM) for text, is_best in zip(col.lines, best, strict=True)]
        headers.append(_text_block(col_w, lines))
        frame = _to_u8(col.image)
        if frame_scale < 1:
            frame = cv2.resize(frame, (frame_w, frame_h), interpolation=cv2.INTER_AREA)
        frame = np.ascontiguousarray(frame)
        for i, c in enumerate(crops):
            colour = _CROP_COLOURS[i % len(_CROP_COLOURS)]
            p0 = (int(c.x0 * frame_scale), int(c.y0 * frame_scale))
            p1 = (max(p0[0] + 2, int(c.x1 * frame_scale) - 1), max(p0[1] + 2, int(c.y1 * frame_scale) - 1))
            cv2.rectangle(frame, p0, p1, colour, 2)
            cv2.putText(frame, str(i + 1), (p0[0] + 3, max(12, p0[1] - 4)), _FONT, 0.45, colour, 1, cv2.LINE_AA)
        frames.append(_pad_to(frame, frame_h, col_w))
    max_header = max(h.shape[0] for h in headers)
    headers = [_pad_to(h, max_header, col_w, top=True) for h in headers]
    rows = [_hstack(headers), _hstack(frames)]
    for i, (c, z) in enumerate(zip(crops, zooms, strict=True)):
        colour = _CROP_COLOURS[i % len(_CROP_COLOURS)]
        tiles = []
        for col in columns:
            patch = _to_u8(col.image[c.y0 : c.y1, c.x0 : c.x1])
            patch = cv2.resize(patch, (c.width * z, c.height * z), interpolation=cv2.INTER_NEAREST)
            patch = cv2.copyMakeBorder(patch, 2, 2, 2, 2, cv2.BORDER_CONSTANT, value=colour)
            tile = _pad_to(patch, c.height * z + 4, col_w)
            cv2.putText(tile, f"{i + 1}", (4, 16), _FONT, 0.5, colour, 1, cv2.LINE_AA)
            tiles.append(tile)
        rows.append(_hstack(tiles))
    caption = f"{title}   crops: " + (
        ", ".join(
            f"{i + 1}: x{c.x0} y{c.y0} {c.width}x{c.height} (x{z})"
            for i, (c, z) in enumerate(zip(crops, zooms, strict=True))
        )
        or "none"
    )
    body = _vstack(rows)
    top = _text_block(body.shape[1], [(caption, 0.5, 1, _FG)])
    return cv2.copyMakeBorder(_vstack([top, body]), _GAP, _GAP, _GAP, _GAP, cv2.BORDER_CONSTANT, value=_BG)


# ---------------------------------------------------------------------------------------------
# HTML index


@dataclass(frozen=True)
class IndexRow:
    image: str
    sheet: str
    """Path of the sheet relative to the index page."""
    cells: dict[str, dict[str, str]]
    """model -> metric label -> formatted value."""
    best: dict[str, str]
    """metric label -> model with the best value on this image (bold)."""


def index_html(
    title: str, summary_html: str, models: Sequence[str], metric_labels: Sequence[str], rows: Sequence[IndexRow]
) -> str:
    """A static page (no scripts): the summary, then one table row per image with its sheet."""
    esc = html.escape
    head = "".join(f"<th>{esc(m)}<br><small>{esc(label)}</small></th>" for label in metric_labels for m in models)
    body = []
    for row in rows:
        cells = []
        for label in metric_labels:
            for m in models:
                value = esc(row.cells.get(m, {}).get(label, ""))
                cells.append(f"<td><b>{value}</b></td>" if row.best.get(label) == m else f"<td>{value}</td>")
        # A relative URL: '#', '?' or '%' in an image name must not end or break it.
        link = esc(urllib.parse.quote(row.sheet), quote=True)
        thumb = f'<a href="{link}"><img src="{link}" alt="{esc(row.image, quote=True)}" width="360"></a>'
        body.append(f'<tr><td><a href="{link}">{esc(row.image)}</a><br>{thumb}</td>' + "".join(cells) + "</tr>")
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
        f"<title>{esc(title)}</title><style>"
        "body{font-family:sans-serif;margin:1.5em;background:#fafafa}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right;vertical-align:top}"
        "td:first-child{text-align:left}img{image-rendering:pixelated;display:block;margin-top:4px}"
        "</style></head><body>\n"
        f"<h1>{esc(title)}</h1>\n{summary_html}\n"
        "<h2>Images</h2><p>Bold: best on that image. Click a sheet to see it at full size.</p>\n"
        f"<table><tr><th>image / sheet</th>{head}</tr>\n" + "\n".join(body) + "\n</table>\n</body></html>\n"
    )
