"""Tile geometry: cores partition the image, windows share one size and keep their margins."""

from __future__ import annotations

import numpy as np
import pytest

from soccersr.infer.tiling import Region, Size, Tile, even_tile_length, plan_tiles


def _coverage(image: Size, tiles: list[Tile]) -> np.ndarray:
    count = np.zeros((image.h, image.w), dtype=np.int32)
    for t in tiles:
        count[t.core.slices()] += 1
    return count


def _check_plan(image: Size, tiles: list[Tile], overlap: int, multiple: int = 1) -> None:
    # Every pixel in exactly one core: no gaps, no double pasting.
    assert (_coverage(image, tiles) == 1).all()
    frame = Region(0, 0, image.h, image.w)
    windows = {t.window.size for t in tiles}
    assert len(windows) == 1, "all windows of an image must share one size (one batch shape)"
    for t in tiles:
        assert frame.contains(t.window) and t.window.contains(t.core)
        # Margin on each side: the overlap, or everything up to the border.
        assert t.core.y - t.window.y >= min(overlap, t.core.y)
        assert t.core.x - t.window.x >= min(overlap, t.core.x)
        assert (t.window.y + t.window.h) - (t.core.y + t.core.h) >= min(overlap, image.h - t.core.y - t.core.h)
        assert (t.window.x + t.window.w) - (t.core.x + t.core.w) >= min(overlap, image.w - t.core.x - t.core.w)
        for value in (t.core.y, t.core.x, t.core.h, t.core.w, t.window.y, t.window.x, t.window.h, t.window.w):
            assert value % multiple == 0


def test_even_tile_length_pins_values() -> None:
    assert even_tile_length(1000, 400) == 334  # 3 tiles of 334, 334, 332, not 400, 400, 200
    assert even_tile_length(800, 400) == 400
    assert even_tile_length(801, 400) == 267
    assert even_tile_length(100, 0) == 100  # 0: no tiling
    assert even_tile_length(100, 500) == 100
    assert even_tile_length(1000, 400, multiple=4) == 336  # rounded up onto the pixel-unshuffle grid
    assert even_tile_length(10, 3, multiple=4) == 4


def test_non_square_plan_pins_tiles() -> None:
    tiles = plan_tiles(Size(100, 250), tile=100, overlap=10)
    # Rows: one tile (100 <= 100); columns: 3 cores of 84, 84, 82.
    assert [t.core for t in tiles] == [Region(0, 0, 100, 84), Region(0, 84, 100, 84), Region(0, 168, 100, 82)]
    # Windows are 104 wide everywhere; at the borders they slide inwards rather than shrink.
    assert [t.window for t in tiles] == [Region(0, 0, 100, 104), Region(0, 74, 100, 104), Region(0, 146, 100, 104)]
    _check_plan(Size(100, 250), tiles, overlap=10)


@pytest.mark.parametrize(
    ("h", "w", "tile", "overlap", "multiple"),
    [
        (37, 53, 16, 5, 1),
        (53, 37, 16, 5, 1),
        (40, 200, 64, 8, 1),  # tiles smaller than the image along x only
        (200, 40, 64, 8, 1),  # ... along y only
        (120, 160, 0, 16, 1),  # no tiling
        (64, 96, 20, 6, 2),  # RRDBNet x2 grid
        (64, 96, 20, 6, 4),  # RRDBNet x1 grid
        (7, 300, 7, 300, 1),  # overlap larger than the image
        (1, 1, 32, 16, 1),
    ],
)
def test_plan_properties(h: int, w: int, tile: int, overlap: int, multiple: int) -> None:
    image = Size(h, w)
    _check_plan(image, plan_tiles(image, tile, overlap, multiple), overlap, multiple)


def test_plan_is_row_major_and_counts() -> None:
    tiles = plan_tiles(Size(90, 130), tile=40, overlap=4)
    assert len(tiles) == 3 * 4
    starts = [(t.core.y, t.core.x) for t in tiles]
    assert starts == sorted(starts)


def test_region_helpers() -> None:
    core, window = Region(10, 20, 5, 6), Region(4, 12, 20, 20)
    assert core.relative_to(window) == Region(6, 8, 5, 6)
    assert core.scaled(4) == Region(40, 80, 20, 24)
    assert core.slices() == (slice(10, 15), slice(20, 26))


def test_plan_rejects_bad_sizes() -> None:
    with pytest.raises(ValueError, match="multiple of 4"):
        plan_tiles(Size(10, 12), 8, 2, multiple=4)
    with pytest.raises(ValueError, match="positive"):
        plan_tiles(Size(0, 12), 8, 2)
