"""Decoded frames to RGB arrays and back, in the clip's own colours, and the encoded size.

Colours: a frame is turned into RGB with the YUV matrix and range its stream is tagged with.
An untagged stream gets what players assume for it (BT.709 from 1280 wide or 577 high up,
BT.601 below), and the output is tagged with the matrix that was used (its primaries and
transfer are copied when the input has them), so a player shows the restored clip in the
colours it showed the input, whatever the new size makes it guess.

Bit depth: frames with more than 8 bits per sample go through 16-bit RGB, so 10-bit input
keeps its precision all the way to a 10-bit encoder.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import av

# FFmpeg's AVColorSpace tags -> swscale's name of that YUV<->RGB matrix.
_MATRIX_OF_TAG = {1: "ITU709", 4: "FCC", 5: "ITU601", 6: "ITU601", 7: "SMPTE240M", 9: "BT2020", 10: "BT2020"}
# ... and back, for the tag written to the output (BT.601 as SMPTE 170M, as ffmpeg writes it).
_TAG_OF_MATRIX = {"ITU709": 1, "FCC": 4, "ITU601": 6, "SMPTE240M": 7, "BT2020": 9}
UNSPECIFIED = 2
"""AVCOL_PRI_UNSPECIFIED / AVCOL_TRC_UNSPECIFIED / AVCOL_SPC_UNSPECIFIED."""


@dataclass(frozen=True)
class Color:
    """How a clip's YUV maps to RGB, and the tags that say so."""

    matrix: str
    """swscale's name of the YUV<->RGB matrix: ITU709, ITU601, BT2020, SMPTE240M or FCC."""
    full_range: bool
    """0-255 luma (JPEG range) instead of 16-235."""
    primaries: int = UNSPECIFIED
    """AVColorPrimaries tag, copied to the output."""
    trc: int = UNSPECIFIED
    """AVColorTransferCharacteristic tag (16 = PQ, 18 = HLG), copied to the output."""

    @property
    def colorspace(self) -> int:
        """The AVColorSpace tag of ``matrix``."""
        return _TAG_OF_MATRIX[self.matrix]

    @property
    def range_name(self) -> str:
        return "JPEG" if self.full_range else "MPEG"


def guessed_matrix(width: int, height: int) -> str:
    """The matrix players assume for an untagged stream of this size."""
    return "ITU709" if width >= 1280 or height > 576 else "ITU601"


def color_of(frame: av.VideoFrame) -> Color:
    """A decoded frame's colour tags (the guess for its size where it has none)."""
    matrix = _MATRIX_OF_TAG.get(int(frame.colorspace)) or guessed_matrix(frame.width, frame.height)
    full = int(frame.color_range) == 2 or frame.format.name.startswith("yuvj")
    return Color(matrix, full, int(frame.color_primaries), int(frame.color_trc))


def to_rgb(frame: av.VideoFrame, color: Color, *, high_bit: bool) -> np.ndarray:
    """(H, W, 3) RGB: uint16 with ``high_bit``, else uint8."""
    return frame.to_ndarray(
        format="rgb48le" if high_bit else "rgb24", src_colorspace=color.matrix, src_color_range=color.range_name
    )


def from_rgb(rgb: np.ndarray, pix_fmt: str, color: Color) -> av.VideoFrame:
    """An (H, W, 3) uint8 or uint16 RGB array as a frame in ``pix_fmt``, converted with ``color``'s
    matrix and range and carrying its tags."""
    import av

    frame = av.VideoFrame.from_ndarray(rgb, format="rgb48le" if rgb.dtype == np.uint16 else "rgb24")
    out = frame.reformat(format=pix_fmt, dst_colorspace=color.matrix, dst_color_range=color.range_name)
    out.colorspace = color.colorspace
    out.color_primaries = color.primaries
    out.color_trc = color.trc
    return out


def subsampling(pix_fmt: str) -> tuple[int, int]:
    """(vertical, horizontal) chroma subsampling factors of ``pix_fmt``: (2, 2) for 4:2:0."""
    import av

    fmt = av.VideoFormat(pix_fmt)
    return (2 if fmt.chroma_height(2) == 1 else 1), (2 if fmt.chroma_width(2) == 1 else 1)


def even_size(height: int, width: int, pix_fmt: str) -> tuple[int, int]:
    """``(height, width)`` rounded down to what ``pix_fmt`` can hold (4:2:0 needs even sides)."""
    sub_h, sub_w = subsampling(pix_fmt)
    return height - height % sub_h, width - width % sub_w
