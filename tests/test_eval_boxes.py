"""Player boxes: parsing, enlargement and clipping, and the metrics restricted to them."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from soccersr.eval.boxes import (
    Box,
    BoxFileError,
    PixelBox,
    person_boxes,
    person_mask,
    read_boxes,
    region_scores,
    to_pixels,
)
from soccersr.metrics import psnr, psnr_plane, ssim, ssim_plane, y_channel


def test_read_boxes_parses_yolo_lines(tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    path.write_text("2 0.5 0.25 0.1 0.2\n\n0 0.1 0.1 0.01 0.01\n")
    assert read_boxes(path) == [Box(2, 0.5, 0.25, 0.1, 0.2), Box(0, 0.1, 0.1, 0.01, 0.01)]


def test_read_boxes_accepts_a_class_written_as_a_float(tmp_path: Path) -> None:
    # Some YOLO exporters write "2.0"; it was reported as "not numbers".
    path = tmp_path / "a.txt"
    path.write_text("2.0 0.5 0.25 0.1 0.2\n0.0 0.1 0.1 0.01 0.01\n3 0.2 0.2 0.1 0.1\n")
    boxes = read_boxes(path)
    assert boxes == [Box(2, 0.5, 0.25, 0.1, 0.2), Box(0, 0.1, 0.1, 0.01, 0.01), Box(3, 0.2, 0.2, 0.1, 0.1)]
    assert all(type(b.cls) is int for b in boxes)


def test_read_boxes_of_the_shared_labels(soccer_data: Path) -> None:
    boxes = read_boxes(soccer_data / "dfl-bundesliga" / "labels" / "4b770a_1_4.txt")
    assert boxes and {b.cls for b in boxes} <= {0, 1, 2, 3}
    assert all(0 <= b.cx <= 1 and 0 <= b.cy <= 1 for b in boxes)


@pytest.mark.parametrize(
    ("text", "match"),
    [("2 0.5 0.5 0.1\n", "a.txt:1: expected 'class cx cy w h'"), ("\nx 0.5 0.5 0.1 0.1\n", "a.txt:2: not numbers"),
     ("2 0.5 0.5 -0.1 0.1\n", "a.txt:1: invalid box"),
     ("2.5 0.5 0.5 0.1 0.1\n", "a.txt:1: class '2.5' is not a whole number"),
     ("-1 0.5 0.5 0.1 0.1\n", "a.txt:1: class '-1' is not a whole number >= 0"),
     ("nan 0.5 0.5 0.1 0.1\n", "a.txt:1: class 'nan' is not a whole number"),
     ("2 0.5 0.5 0.1 abc\n", "a.txt:1: not numbers")],
)  # fmt: skip
def test_read_boxes_names_file_and_line(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "a.txt"
    path.write_text(text)
    with pytest.raises(BoxFileError, match=match):
        read_boxes(path)


def test_to_pixels_enlarges_and_rounds_outwards() -> None:
    # 20x20 px box centred at (100, 50) on 200x100, +10% -> 22x22, i.e. x 89..111, y 39..61.
    assert to_pixels(Box(2, 0.5, 0.5, 0.1, 0.2), 200, 100, enlarge=0.1) == PixelBox(89, 39, 111, 61)
    assert to_pixels(Box(2, 0.5, 0.5, 0.1, 0.2), 200, 100, enlarge=0.0) == PixelBox(90, 40, 110, 60)
    # Odd size: 0.5 * 15 = 7.5 -> floor/ceil keep the whole box.
    assert to_pixels(Box(2, 0.5, 0.5, 0.075, 0.15), 200, 100, enlarge=0.0) == PixelBox(92, 42, 108, 58)


def test_to_pixels_clips_to_the_image() -> None:
    assert to_pixels(Box(1, 0.01, 0.98, 0.1, 0.1), 200, 100) == PixelBox(0, 92, 13, 100)
    assert to_pixels(Box(1, 1.5, 0.5, 0.1, 0.1), 200, 100) is None


def test_person_boxes_leave_out_the_ball() -> None:
    boxes = [
        Box(0, 0.5, 0.5, 0.1, 0.1),
        Box(1, 0.2, 0.5, 0.1, 0.1),
        Box(2, 0.5, 0.5, 0.1, 0.1),
        Box(3, 0.8, 0.5, 0.1, 0.1),
    ]
    assert len(person_boxes(boxes, 100, 100)) == 3


def _pair(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    ref = rng.random((80, 120, 3)).astype(np.float32)
    img = np.clip(ref + rng.normal(0, 0.05, ref.shape), 0, 1).astype(np.float32)
    return img, ref


def test_one_box_equals_the_full_image_metric_on_the_crop() -> None:
    img, ref = _pair()
    box = PixelBox(30, 20, 70, 60)
    scores = region_scores(img, ref, [box], crop_border=4)
    crop = (slice(20, 60), slice(30, 70))
    assert scores.psnr == pytest.approx(psnr(img[crop], ref[crop], crop_border=0), abs=1e-12)
    assert scores.ssim == pytest.approx(ssim(img[crop], ref[crop], crop_border=0), abs=1e-12)
    assert (scores.used, scores.skipped) == (1, 0)


def test_boxes_pool_mse_by_pixels_and_average_ssim() -> None:
    img, ref = _pair(1)
    a, b = PixelBox(10, 10, 30, 25), PixelBox(50, 30, 110, 70)
    ya, yr = y_channel(img, crop_border=0), y_channel(ref, crop_border=0)
    sse = n = 0.0
    ssims = []
    for box in (a, b):
        d = ya[box.y0 : box.y1, box.x0 : box.x1] - yr[box.y0 : box.y1, box.x0 : box.x1]
        sse += float(np.sum(d * d))
        n += d.size
        ssims.append(ssim_plane(ya[box.y0 : box.y1, box.x0 : box.x1], yr[box.y0 : box.y1, box.x0 : box.x1]))
    scores = region_scores(img, ref, [a, b], crop_border=4)
    assert scores.psnr == pytest.approx(10 * math.log10(255**2 / (sse / n)), abs=1e-12)
    assert scores.ssim == pytest.approx(np.mean(ssims), abs=1e-12)
    # Pooled PSNR is not the mean of the two PSNRs.
    per_box = [psnr_plane(ya[x.y0 : x.y1, x.x0 : x.x1], yr[x.y0 : x.y1, x.x0 : x.x1]) for x in (a, b)]
    assert scores.psnr != pytest.approx(np.mean(per_box), abs=1e-6)


def test_border_crop_and_small_boxes_are_skipped_and_counted() -> None:
    img, ref = _pair(2)
    at_edge = PixelBox(0, 0, 14, 30)  # 14 px wide, 10 px once the 4 px border is removed: too small
    tiny = PixelBox(50, 50, 60, 70)  # 10 px wide
    good = PixelBox(0, 40, 40, 80)  # clipped to x 4..40, y 40..76
    scores = region_scores(img, ref, [at_edge, tiny, good], crop_border=4)
    assert (scores.used, scores.skipped) == (1, 2)
    crop = (slice(40, 76), slice(4, 40))
    assert scores.psnr == pytest.approx(psnr(img[crop], ref[crop], crop_border=0), abs=1e-12)
    none = region_scores(img, ref, [tiny], crop_border=4)
    assert math.isnan(none.psnr) and math.isnan(none.ssim) and (none.used, none.skipped) == (0, 1)


def test_person_mask_covers_the_grown_person_boxes_only() -> None:
    boxes = [Box(2, 0.25, 0.5, 0.2, 0.4), Box(0, 0.8, 0.2, 0.1, 0.1), Box(3, 1.0, 1.0, 0.2, 0.2)]
    mask = person_mask(boxes, 40, 20)
    assert mask.shape == (20, 40) and mask.dtype == bool
    expected = np.zeros((20, 40), bool)
    expected[5:15, 5:15] = True  # the player: 8.8 x 8.8 px around (10, 10), rounded outwards
    expected[17:, 35:] = True  # the referee (8.8 x 4.4 px) in the corner, clipped; the ball is no person
    np.testing.assert_array_equal(mask, expected)
