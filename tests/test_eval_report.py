"""Winner logic, report files and comparison sheets."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from soccersr.eval import report
from soccersr.eval.boxes import PixelBox
from soccersr.eval.sheets import Column, IndexRow, crops_from_boxes, detail_crops, index_html, make_sheet

PSNR = report.METRIC_BY_KEY["psnr"]
NIQE = report.METRIC_BY_KEY["niqe"]


def test_winner_margin_and_per_image_counts() -> None:
    per_model = {
        "A": {"i1": 30.0, "i2": 28.0, "i3": 25.0, "i4": 20.0},
        "B": {"i1": 31.0, "i2": 28.5, "i3": 24.0, "i4": 20.0},
    }
    s = report.summarize_metric(PSNR, per_model)
    assert s.winner == "B" and s.images == 4
    assert s.means == {"A": pytest.approx(25.75), "B": pytest.approx(25.875)}
    assert s.best_counts == {"A": 1, "B": 2} and s.ties == 1
    (vs,) = s.versus
    assert (vs.model, vs.other, vs.wins, vs.losses, vs.ties) == ("B", "A", 2, 1, 1)
    assert vs.mean_diff == pytest.approx(0.125)
    assert vs.worst == (("i3", -1.0),)


def test_lower_is_better_metrics_pick_the_smallest() -> None:
    s = report.summarize_metric(NIQE, {"A": {"x": 5.0, "y": 4.0}, "B": {"x": 3.0, "y": 4.5}})
    assert s.winner == "B"
    assert s.versus[0].mean_diff == pytest.approx(-0.75)  # B - A: lower NIQE on average
    assert (s.versus[0].wins, s.versus[0].losses) == (1, 1)
    assert s.versus[0].worst == (("y", 0.5),)


def test_images_missing_a_value_are_left_out_and_ties_have_no_winner() -> None:
    s = report.summarize_metric(PSNR, {"A": {"x": 30.0, "y": math.nan}, "B": {"x": 30.0, "y": 40.0}})
    assert s.images == 1 and s.winner is None and s.ties == 1 and s.versus == ()
    assert "the means tie" in report.winner_sentence(s)
    empty = report.summarize_metric(PSNR, {"A": {"y": math.nan}, "B": {"y": 1.0}})
    assert empty.images == 0 and empty.winner is None
    assert "no image where every model has a value" in report.winner_sentence(empty)


def test_three_models_compare_the_winner_with_each_other() -> None:
    s = report.summarize_metric(PSNR, {"A": {"x": 1.0, "y": 2.0}, "B": {"x": 3.0, "y": 1.0}, "C": {"x": 2.0, "y": 5.0}})
    assert s.winner == "C"
    assert [(p.other, p.wins, p.losses) for p in s.versus] == [("A", 2, 0), ("B", 1, 1)]
    assert s.best_counts == {"A": 0, "B": 1, "C": 1}


def test_infinite_psnr_is_handled() -> None:
    s = report.summarize_metric(PSNR, {"A": {"x": math.inf, "y": 30.0}, "B": {"x": math.inf, "y": 31.0}})
    assert s.winner is None  # both means are inf
    assert report.fmt(PSNR, math.inf) == "inf" and report.fmt(PSNR, math.nan) == "n/a"


def test_markdown_table_and_losses() -> None:
    scores = {"psnr": {"A": {"i1": 30.0, "i2": 28.0}, "B": {"i1": 31.0, "i2": 27.5}}}
    summaries = report.summarize(scores)
    md = report.markdown_summary(
        summaries, ["A", "B"], title="t", context_lines=["ctx"], reference_rows={"HR": {"psnr": 99.0}}
    )
    assert "| A | 29.00 dB | " not in md  # the winner's mean is bold, A's is plain
    assert "| A | 29.00 dB |" in md and "| B | **29.25 dB** |" in md
    assert "| PSNR-Y | B | +0.25 dB vs A | A: 1, B: 1 | 0 | 2 |" in md
    assert "B is worse than A on 1 of 2 images; worst: i2 (-0.50 dB)" in md
    assert "| *HR* | 99.00 dB |" in md
    table = report.terminal_table(summaries, ["A", "B"])
    assert "29.25*" in table and "B wins" in table


def test_json_and_csv_writers(tmp_path: Path) -> None:
    report.write_json(tmp_path / "r.json", {"a": math.nan, "b": [math.inf, 1.5], "p": tmp_path})
    data = json.loads((tmp_path / "r.json").read_text())
    assert data == {"a": None, "b": ["inf", 1.5], "p": str(tmp_path)}
    report.write_csv(
        tmp_path / "r.csv", [{"image": "x", "psnr": math.nan, "ssim": 0.5, "extra": 1}], ["image", "psnr", "ssim"]
    )
    assert (tmp_path / "r.csv").read_text().splitlines() == ["image,psnr,ssim", "x,,0.5"]


# ---------------------------------------------------------------------------------------------
# Sheets


def test_detail_crops_find_the_textured_regions() -> None:
    img = np.full((120, 200, 3), 0.5, np.float32)
    rng = np.random.default_rng(0)
    img[10:40, 150:180] = rng.random((30, 30, 3))  # texture top right
    img[80:110, 20:50] = rng.random((30, 30, 3)) * 0.5 + 0.25  # weaker texture bottom left
    crops = detail_crops(img, count=2, side=32)
    assert len(crops) == 2
    (first, second) = crops
    assert first.x0 <= 165 <= first.x1 and first.y0 <= 25 <= first.y1
    assert second.x0 <= 35 <= second.x1 and second.y0 <= 95 <= second.y1
    assert all(c.width == c.height == 32 for c in crops)


def test_crops_from_boxes_largest_first_without_overlap() -> None:
    boxes = [PixelBox(10, 10, 20, 40), PixelBox(12, 12, 22, 44), PixelBox(100, 50, 110, 60)]
    crops = crops_from_boxes(boxes, 160, 100, count=3, min_side=16)
    # The 10x32 box first (square 45 around it), its overlapping neighbour skipped, then the small one.
    assert len(crops) == 2
    assert crops[0].width == crops[0].height == 45 and crops[0].x0 == 0
    assert crops[1] == PixelBox(97, 47, 113, 63)


def test_sheet_layout_zooms_crops_with_nearest_neighbour() -> None:
    h, w = 64, 80
    red = np.zeros((h, w, 3), np.float32)
    red[..., 0] = 1.0
    checker = np.indices((h, w)).sum(axis=0) % 2
    pattern = np.repeat(checker[..., None], 3, axis=2).astype(np.float32)
    columns = [
        Column("LR", red, ("a line",)),
        Column("model", pattern, ("PSNR 30.00 dB",), (True,)),
        Column("HR", pattern),
    ]
    crop = PixelBox(8, 8, 24, 24)
    sheet = make_sheet(columns, [crop], title="test", max_frame_width=40, crop_width=64)
    assert sheet.dtype == np.uint8 and sheet.ndim == 3
    # Crops are zoomed 4x (16 px -> 64 px, plus a 2 px outline) and set the column width.
    col_w = 64 + 4
    assert sheet.shape[1] == 6 + 3 * col_w + 2 * 6 + 6
    # The bottom crop row of the checkerboard column shows 4x4 blocks of equal pixels.
    ys, xs = np.nonzero((sheet[..., 0] == 255) & (sheet[..., 1] == 255) & (sheet[..., 2] == 255))
    assert len(ys) > 0
    y, x = ys[-1], xs[-1]
    block = sheet[y - 3 : y + 1, x - 3 : x + 1]
    assert np.all(block == 255)


def test_sheet_downscales_large_frames() -> None:
    big = np.zeros((400, 1200, 3), np.float32)
    sheet = make_sheet([Column("a", big), Column("b", big)], [], title="t", max_frame_width=300)
    assert sheet.shape[1] < 700


def test_sheet_rejects_mismatched_columns() -> None:
    with pytest.raises(ValueError, match="column 'b'"):
        make_sheet([Column("a", np.zeros((8, 8, 3))), Column("b", np.zeros((8, 9, 3)))], [], title="t")


def test_index_html_is_static_and_relative() -> None:
    row = IndexRow(
        image="a<b>.png",
        sheet="sheets/a.png",
        cells={"A": {"PSNR-Y": "30.00"}, "B": {"PSNR-Y": "31.00"}},
        best={"PSNR-Y": "B"},
    )
    page = index_html("title", "<p>summary</p>", ["A", "B"], ["PSNR-Y"], [row])
    assert '<a href="sheets/a.png">' in page and '<img src="sheets/a.png"' in page
    assert "a&lt;b&gt;.png" in page and "<script" not in page
    assert "<td>30.00</td><td><b>31.00</b></td>" in page


def test_index_links_survive_url_special_characters() -> None:
    row = IndexRow(image="goal #2?.png", sheet="sheets/goal #2?.png", cells={}, best={})
    page = index_html("t", "", ["A"], [], [row])
    assert '<a href="sheets/goal%20%232%3F.png">' in page
