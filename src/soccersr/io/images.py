"""Reading and writing photos: OpenCV for the pixels, ``metadata`` for the container around them.

``read_image`` refuses bad files with an ``ImageReadError`` whose one-line message names the
file and the reason, and it checks the size in the header before decoding, so a small file
that claims to be a gigapixel image never allocates. ``write_image`` encodes in memory and
replaces the target atomically: an interrupted write (an error, Ctrl-C) leaves no partial file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from soccersr.io import metadata
from soccersr.io.atomic import atomic_write_bytes
from soccersr.io.listing import SUFFIX_FORMATS
from soccersr.io.metadata import ContainerError
from soccersr.options import DEFAULT_MAX_PIXELS

WRITE_FORMATS = ("png", "jpeg", "webp", "tiff")
EXTENSIONS = {"jpeg": ".jpg", "png": ".png", "webp": ".webp", "tiff": ".tif", "bmp": ".bmp"}
"""Preferred file extension of each format."""
_EIGHT_BIT_ONLY = ("jpeg", "webp")
_MAX_SIDE = {"jpeg": 65_535, "webp": 16_383}
_HEAD_BYTES = 32


class ImageReadError(ValueError):
    """A file could not be read as an image; the message is "<path>: <reason>"."""


class ImageWriteError(OSError):
    """An image could not be written; the message is "<path>: <reason>"."""


@dataclass(frozen=True, eq=False)
class DecodedImage:
    """A photo in memory, as read from a file or produced by the upscaling pipeline."""

    rgb: np.ndarray
    """float32 (H, W, 3) RGB in [0, 1]; the three channels are equal when ``is_gray``."""
    alpha: np.ndarray | None
    """float32 (H, W) opacity in [0, 1], or None."""
    bit_depth: int
    """8 or 16: the sample type of the source file (uint8 or uint16), kept on output."""
    is_gray: bool
    """The source had a single colour channel; it is written back as one."""
    format: str
    """Source container format: 'jpeg', 'png', 'webp', 'tiff' or 'bmp'."""
    exif: bytes | None = None
    """Raw EXIF (TIFF-structured bytes), orientation already applied and reset to 1."""
    icc: bytes | None = None
    """ICC colour profile bytes."""

    @property
    def height(self) -> int:
        return int(self.rgb.shape[0])

    @property
    def width(self) -> int:
        return int(self.rgb.shape[1])

    @property
    def megapixels(self) -> float:
        return self.height * self.width / 1e6


def read_image(path: str | Path, *, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> DecodedImage:
    """Decode an image file (JPEG, PNG, WebP, TIFF or BMP; 8- or 16-bit; gray, RGB or RGBA).

    The EXIF orientation is applied to the pixels. ``max_pixels`` (None: no limit) is checked
    against the size in the file's header, before decoding.

    Raises:
        ImageReadError: the file is missing, unreadable, empty, not an image, truncated or
            corrupt, or larger than ``max_pixels``.
    """
    path = Path(path)
    data = _read_bytes(path, max_pixels)
    try:
        info = metadata.inspect(data)
    except ContainerError as error:
        raise ImageReadError(f"{path}: {error}") from None
    if max_pixels is not None and info.width * info.height > max_pixels:
        raise ImageReadError(
            f"{path}: {info.width}x{info.height} is {info.width * info.height / 1e6:.1f} megapixels, "
            f"above the limit of {max_pixels / 1e6:g} (raise it with --max-pixels)"
        )
    if info.format == "tiff" and info.orientation != 1:
        # OpenCV's TIFF reader applies some orientations itself and fails on the rotated ones:
        # decode as stored (the tag set to 1 in a copy) and orient below like every other format.
        data = metadata.update_exif(data, orientation=1)
    try:
        pixels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error as error:
        raise ImageReadError(f"{path}: corrupt {info.format.upper()} data ({_last_line(str(error))})") from None
    if pixels is None:
        raise ImageReadError(f"{path}: corrupt {info.format.upper()} data (the decoder failed)")
    if pixels.dtype not in (np.uint8, np.uint16):
        raise ImageReadError(f"{path}: {pixels.dtype} samples are not supported (only 8- and 16-bit images)")
    if pixels.shape[:2] != (info.height, info.width):
        raise ImageReadError(f"{path}: corrupt {info.format.upper()} (header size differs from the decoded size)")
    return _to_decoded(pixels, info)


def _read_bytes(path: Path, max_pixels: int | None) -> bytes:
    try:
        with path.open("rb") as file:
            # Look at the signature first: a big non-image file is refused without reading it all.
            head = file.read(_HEAD_BYTES)
            if metadata.sniff_format(head) is None:
                raise ImageReadError(f"{path}: {metadata.unsupported_reason(head)}")
            size = os.fstat(file.fileno()).st_size
            # No image within the pixel limit is bigger than 16-bit RGBA stored raw, plus metadata.
            if max_pixels is not None and size > 8 * max_pixels + 64 * 2**20:
                raise ImageReadError(f"{path}: {size / 2**20:.0f} MiB is too big for an image within the pixel limit")
            return head + file.read()
    except FileNotFoundError:
        raise ImageReadError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ImageReadError(f"{path}: is a folder, not an image file") from None
    except PermissionError:
        raise ImageReadError(f"{path}: cannot read the file (permission denied)") from None
    except OSError as error:
        raise ImageReadError(f"{path}: cannot read the file ({error.strerror or error})") from None


def _last_line(text: str) -> str:
    # OpenCV's error text ends with the reason ("... error: (-215:Assertion failed) ..."); the rest is location.
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "unknown error"


def _orient(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """Pixels as they should be displayed, for an EXIF orientation 1..8 (TIFF tag 274)."""
    transforms = {
        1: lambda a: a,
        2: lambda a: a[:, ::-1],  # mirrored left-right
        3: lambda a: a[::-1, ::-1],  # upside down
        4: lambda a: a[::-1],  # mirrored top-bottom
        5: lambda a: a.swapaxes(0, 1),  # transposed
        6: lambda a: np.rot90(a, -1),  # camera held rotated: turn 90 degrees clockwise
        7: lambda a: a[::-1, ::-1].swapaxes(0, 1),  # transversed
        8: lambda a: np.rot90(a, 1),  # turn 90 degrees counter-clockwise
    }
    return np.ascontiguousarray(transforms[orientation](pixels))


def _to_decoded(pixels: np.ndarray, info: metadata.ContainerInfo) -> DecodedImage:
    bit_depth = 16 if pixels.dtype == np.uint16 else 8
    pixels = _orient(pixels, info.orientation)
    scale = np.float32(1.0 / (65535.0 if bit_depth == 16 else 255.0))
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[:, :, 0]
    alpha = None
    if pixels.ndim == 2:
        rgb = np.repeat(pixels[:, :, None], 3, axis=2)
    else:
        rgb = pixels[:, :, 2::-1]  # OpenCV stores BGR(A)
        if pixels.shape[2] == 4:
            alpha = pixels[:, :, 3].astype(np.float32) * scale
    exif = info.exif
    if exif is not None and info.orientation != 1:
        exif = metadata.update_exif(exif, orientation=1)
    rgb = np.ascontiguousarray(rgb, dtype=np.float32)
    rgb *= scale  # in place: a second full-size float32 array per image is 12 B/px for nothing
    return DecodedImage(
        rgb=rgb,
        alpha=alpha,
        bit_depth=bit_depth,
        is_gray=info.is_gray or pixels.ndim == 2,
        format=info.format,
        exif=exif,
        icc=info.icc,
    )


def format_for_path(path: str | Path) -> str:
    """The image format named by a file's extension ('jpeg', 'png', ...); ValueError if none."""
    suffix = Path(path).suffix.lower()
    try:
        return SUFFIX_FORMATS[suffix]
    except KeyError:
        raise ValueError(f"{path}: unknown image extension {suffix!r}") from None


def to_integer(values: np.ndarray, bit_depth: int) -> np.ndarray:
    """Float samples in [0, 1] -> uint8/uint16, rounded to the nearest level (clipped first)."""
    top = np.float32(65535.0 if bit_depth == 16 else 255.0)
    # One temporary, updated in place: outputs are up to hundreds of megapixels.
    scaled = np.multiply(values, top, dtype=np.float32)
    np.clip(scaled, 0.0, top, out=scaled)
    np.rint(scaled, out=scaled)
    return scaled.astype(np.uint16 if bit_depth == 16 else np.uint8)


def encode_image(image: DecodedImage, fmt: str, *, quality: int = 95) -> bytes:
    """The image encoded as ``fmt`` ('png', 'jpeg', 'webp', 'tiff'), with its EXIF and ICC kept.

    JPEG and WebP are 8-bit formats: 16-bit images are rounded to 8 bits there. Raises
    ValueError for what the format cannot hold (alpha in JPEG, too many pixels for WebP/JPEG).
    """
    if fmt not in WRITE_FORMATS:
        raise ValueError(f"cannot write {fmt!r} images: expected one of {WRITE_FORMATS}")
    if image.alpha is not None and fmt == "jpeg":
        raise ValueError("JPEG cannot store an alpha channel")
    if max(image.width, image.height) > _MAX_SIDE.get(fmt, 2**31):
        raise ValueError(
            f"{fmt.upper()} cannot store {image.width}x{image.height} images (at most {_MAX_SIDE[fmt]} px a side)"
        )
    if not 1 <= quality <= 100:
        raise ValueError(f"quality must be in 1..100, got {quality}")
    bit_depth = 8 if fmt in _EIGHT_BIT_ONLY else image.bit_depth
    if image.is_gray and image.alpha is None:
        pixels = to_integer(image.rgb[:, :, 0], bit_depth)
    elif image.alpha is None:
        pixels = cv2.cvtColor(to_integer(image.rgb, bit_depth), cv2.COLOR_RGB2BGR)
    else:
        # OpenCV cannot write gray+alpha, so such images are written as RGBA with equal channels.
        pixels = cv2.cvtColor(to_integer(image.rgb, bit_depth), cv2.COLOR_RGB2BGRA)
        pixels[:, :, 3] = to_integer(image.alpha, bit_depth)
    params = {
        "jpeg": [cv2.IMWRITE_JPEG_QUALITY, quality],
        "webp": [cv2.IMWRITE_WEBP_QUALITY, quality],
        "png": [],
        "tiff": [],
    }[fmt]
    ok, encoded = cv2.imencode(EXTENSIONS[fmt], pixels, params)
    if not ok:
        raise ValueError(f"OpenCV could not encode a {image.width}x{image.height} {fmt.upper()} image")
    exif = image.exif
    if exif is not None:
        exif = metadata.update_exif(exif, orientation=1, pixel_size=(image.width, image.height))
    icc = image.icc if _icc_fits(image.icc, gray=pixels.ndim == 2) else None
    return metadata.embed_metadata(encoded.tobytes(), fmt, exif=exif, icc=icc)


def _icc_fits(icc: bytes | None, *, gray: bool) -> bool:
    """Whether a profile describes the pixels written: an RGB profile for colour output, a gray
    one for gray output. A CMYK source's profile on our RGB output (or a gray profile on a gray
    image written as RGBA) would mislead every colour-managed viewer, so it is dropped."""
    if icc is None or len(icc) < 20:
        return False
    return icc[16:20] == (b"GRAY" if gray else b"RGB ")


def write_image(path: str | Path, image: DecodedImage, *, quality: int = 95, format: str | None = None) -> None:
    """Encode ``image`` (format from ``format`` or the file extension) and write it atomically.

    The bytes go to a temporary file in the target folder, are flushed to disk, then renamed
    over ``path``; on any exception (KeyboardInterrupt included) the temporary file is removed.

    Raises:
        ImageWriteError: the image cannot be encoded in that format, or the file cannot be written.
    """
    path = Path(path)
    try:
        fmt = format or format_for_path(path)
        data = encode_image(image, fmt, quality=quality)
    except ValueError as error:
        raise ImageWriteError(f"{path}: {error}") from None
    write_atomic(path, data)


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary sibling file and ``os.replace``."""
    try:
        atomic_write_bytes(path, data)
    except OSError as error:
        reason = "permission denied" if isinstance(error, PermissionError) else (error.strerror or str(error))
        raise ImageWriteError(f"{path}: cannot write ({reason})") from None
