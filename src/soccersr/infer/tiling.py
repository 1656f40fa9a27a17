"""Tile geometry for tiled inference: pure integer arithmetic on (y, x) / (h, w), no torch.

An image is cut into a grid of tiles. Each tile has a *core*, the pixels it is responsible
for (the cores partition the image, no gaps, no overlap), and a *window*, the core grown by
``overlap`` pixels on every side: the pixels the network sees. The engine runs the network on
each window and pastes only the core of the result, so a core pixel sees the same
neighbourhood as in untiled inference as long as ``overlap`` covers the network's receptive
field (beyond that, the error falls off quickly; see bench/README.md).

Two choices keep batching simple:

- Cores are evenly sized: an axis of length L with a maximum tile T gets ``n = ceil(L / T)``
  cores of ``ceil(L / n)`` pixels (the last one may be shorter), never one big and one sliver.
- All windows of an image have the same size. At the image border a window is not cut
  short; it slides inwards (seeing more context on its inner side instead), so every tile of
  an image fits in one batch of equal-size tensors.

Everything is written once on the 2-D types below and applied per axis by one helper, so the
y and x axes cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Size:
    """A height and width in pixels."""

    h: int
    w: int


@dataclass(frozen=True)
class Region:
    """A rectangle: top-left corner (y, x) and size (h, w), in pixels."""

    y: int
    x: int
    h: int
    w: int

    @property
    def size(self) -> Size:
        return Size(self.h, self.w)

    def scaled(self, factor: int) -> Region:
        """The same rectangle on an image ``factor`` times larger."""
        return Region(self.y * factor, self.x * factor, self.h * factor, self.w * factor)

    def relative_to(self, outer: Region) -> Region:
        """This rectangle in the coordinates of ``outer`` (which must contain it)."""
        return Region(self.y - outer.y, self.x - outer.x, self.h, self.w)

    def contains(self, other: Region) -> bool:
        return (
            self.y <= other.y
            and self.x <= other.x
            and other.y + other.h <= self.y + self.h
            and other.x + other.w <= self.x + self.w
        )

    def slices(self) -> tuple[slice, slice]:
        """(rows, columns) slices for indexing the last two axes of an array."""
        return slice(self.y, self.y + self.h), slice(self.x, self.x + self.w)


@dataclass(frozen=True)
class Tile:
    """One tile: the core it is responsible for and the window the network sees."""

    core: Region
    window: Region


@dataclass(frozen=True)
class _Span:
    """One tile along one axis."""

    core_start: int
    core_len: int
    window_start: int
    window_len: int


def round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def even_tile_length(length: int, max_tile: int, multiple: int = 1) -> int:
    """Core length when an axis of ``length`` pixels is cut into tiles of at most ``max_tile``.

    ``ceil(length / ceil(length / max_tile))``, rounded up to ``multiple`` (networks that
    pixel-unshuffle need cores on their grid). ``max_tile <= 0`` or ``>= length``: one tile.
    """
    if length <= 0:
        raise ValueError(f"length must be positive, got {length}")
    if max_tile <= 0 or max_tile >= length:
        return length
    max_tile = max(max_tile, multiple)
    count = -(-length // max_tile)
    return min(round_up(-(-length // count), multiple), length)


def _axis_spans(length: int, max_tile: int, overlap: int, multiple: int) -> list[_Span]:
    core = even_tile_length(length, max_tile, multiple)
    count = -(-length // core)
    margin = round_up(max(overlap, 0), multiple)
    window = min(core + 2 * margin, length)
    spans = []
    for i in range(count):
        start = i * core
        # Slide inwards at the borders instead of shrinking: every window keeps the same length.
        window_start = min(max(start - margin, 0), length - window)
        spans.append(_Span(start, min(core, length - start), window_start, window))
    return spans


def plan_tiles(image: Size, tile: int, overlap: int, multiple: int = 1) -> list[Tile]:
    """Cut an image into tiles, row by row.

    Args:
        image: the image size; both sides must be multiples of ``multiple``.
        tile: maximum core side in pixels; 0 (or anything >= the image) means one tile.
        overlap: context margin in pixels on each side of a core (rounded up to ``multiple``);
            at the border the window slides inwards, so the margin there is at least
            ``min(overlap, distance to the border)``.
        multiple: cores and windows start on, and have sizes that are, multiples of this.

    Returns:
        Tiles whose cores partition the image and whose windows all share one size.
    """
    if image.h <= 0 or image.w <= 0:
        raise ValueError(f"image size must be positive, got {image.h}x{image.w}")
    if multiple < 1 or image.h % multiple or image.w % multiple:
        raise ValueError(f"image size {image.h}x{image.w} is not a multiple of {multiple}")
    rows = _axis_spans(image.h, tile, overlap, multiple)
    cols = _axis_spans(image.w, tile, overlap, multiple)
    return [
        Tile(
            core=Region(r.core_start, c.core_start, r.core_len, c.core_len),
            window=Region(r.window_start, c.window_start, r.window_len, c.window_len),
        )
        for r in rows
        for c in cols
    ]
