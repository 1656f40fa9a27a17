"""Reading and writing photos: the one image reader and the one image writer of soccersr.

- 8-bit images are read by Pillow: it decodes them, turns them upright by their EXIF
  orientation (``exif_transpose``), and reads their EXIF and ICC. JPEG and WebP are written
  by Pillow, with their EXIF and ICC.
- 16-bit PNG and TIFF are read by OpenCV, because Pillow has no 16-bit colour; Pillow still
  reads their metadata from the header, without decoding. PNG (both depths) and TIFF are
  written by OpenCV, twice as fast as Pillow for PNG.
- ``container`` checks every file before decoding and does what Pillow cannot (see there).

``read_image`` refuses bad files with an ``ImageReadError``: one line that names the file and
the reason. It checks the size in the header before decoding, so a small file that claims to be
a gigapixel image never allocates. ``write_image`` encodes in memory and writes through
``atomic``, so an interrupted write (an error, Ctrl-C) leaves no partial file.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import struct
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps

from soccersr.errors import SoccersrError
from soccersr.io import container
from soccersr.io.atomic import atomic_write_bytes
from soccersr.io.container import ContainerError
from soccersr.io.listing import SUFFIX_FORMATS
from soccersr.options import DEFAULT_MAX_PIXELS

logger = logging.getLogger(__name__)

WRITE_FORMATS = ("png", "jpeg", "webp", "tiff")
EXTENSIONS = {"jpeg": ".jpg", "png": ".png", "webp": ".webp", "tiff": ".tif", "bmp": ".bmp"}
"""Preferred file extension of each format."""
_PILLOW_NAMES = {"jpeg": "JPEG", "png": "PNG", "webp": "WEBP", "tiff": "TIFF", "bmp": "BMP"}
_EIGHT_BIT_ONLY = ("jpeg", "webp")
_MAX_SIDE = {"jpeg": 65_535, "webp": 16_383}
_HEAD_BYTES = 32
_EXIF_PREFIX = b"Exif\x00\x00"
_MAX_JPEG_EXIF = 0xFFFF - 2 - len(_EXIF_PREFIX)  # one APP1 segment
_PILLOW_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, Image.DecompressionBombError)
"""What Pillow raises for files it cannot decode (a bad header is a SyntaxError there)."""


class ImageReadError(SoccersrError, ValueError):
    """A file could not be read as an image; the message is "<path>: <reason>"."""


class ImageWriteError(SoccersrError, OSError):
    """An image could not be written; the message is "<path>: <reason>"."""


class OutputExistsError(ImageWriteError):
    """``write_image(replace=False)`` found the file there: it was left as it was."""


@dataclass(frozen=True, eq=False)
class DecodedImage:
    """A photo in memory, as read from a file or produced by the upscaling pipeline."""

    rgb: np.ndarray
    """float32 (H, W, 3) RGB in [0, 1]; the three channels are equal when ``is_gray``."""
    alpha: np.ndarray | None = None
    """float32 (H, W) opacity in [0, 1], or None."""
    bit_depth: int = 8
    """8 or 16: the sample type of the source file (uint8 or uint16), kept on output."""
    is_gray: bool = False
    """The source had a single colour channel; it is written back as one."""
    format: str = "png"
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

    @classmethod
    def from_pixels(
        cls,
        pixels: np.ndarray,
        *,
        is_gray: bool | None = None,
        format: str = "png",
        exif: bytes | None = None,
        icc: bytes | None = None,
    ) -> DecodedImage:
        """An image from integer samples (uint8 or uint16) in RGB order: (H, W) gray,
        (H, W, 2) gray + alpha, (H, W, 3) RGB or (H, W, 4) RGBA."""
        if pixels.dtype not in (np.uint8, np.uint16):
            raise ValueError(f"{pixels.dtype} samples are not supported (only 8- and 16-bit images)")
        channels = 1 if pixels.ndim == 2 else pixels.shape[2] if pixels.ndim == 3 else 0
        if channels not in (1, 2, 3, 4):
            raise ValueError(f"expected (H, W) or (H, W, 1..4) pixels, got shape {pixels.shape}")
        top = np.float32(65535.0 if pixels.dtype == np.uint16 else 255.0)
        rgb = np.empty((*pixels.shape[:2], 3), np.float32)
        # A true division, so the top level maps to exactly 1.0 (as BasicSR reads training data).
        if channels <= 2:
            luma = pixels if pixels.ndim == 2 else pixels[:, :, 0]  # (H, W), (H, W, 1) or gray + alpha
            rgb[:] = np.divide(luma, top, dtype=np.float32)[:, :, None]
        else:
            np.divide(pixels[:, :, :3], top, out=rgb, dtype=np.float32)
        alpha = np.divide(pixels[:, :, -1], top, dtype=np.float32) if channels in (2, 4) else None
        bit_depth = 16 if pixels.dtype == np.uint16 else 8
        gray = channels <= 2 if is_gray is None else is_gray
        return cls(rgb, alpha, bit_depth, gray, format, exif, icc)

    def to_pixels(self, bit_depth: int | None = None) -> np.ndarray:
        """Integer samples in RGB order, rounded to the nearest level: (H, W) for gray, else
        (H, W, 3) RGB or (H, W, 4) RGBA (gray + alpha comes as RGBA: few formats store it)."""
        depth = bit_depth or self.bit_depth
        if self.alpha is None:
            return to_integer(self.rgb[:, :, 0] if self.is_gray else self.rgb, depth)
        return np.dstack([to_integer(self.rgb, depth), to_integer(self.alpha, depth)])


# --- reading ------------------------------------------------------------------------------------


def read_image(path: str | os.PathLike[str], *, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> DecodedImage:
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
        info = container.inspect(data)
    except ContainerError as error:
        raise ImageReadError(f"{path}: {error}") from None
    pixel_count = info.width * info.height
    if max_pixels is not None and pixel_count > max_pixels:
        size, limit = _count(pixel_count), _count(max_pixels)
        if size == limit:  # 40.02 against 40 megapixels: say exactly how many
            size, limit = f"{pixel_count:,} pixels", f"{max_pixels:,} pixels"
        raise ImageReadError(
            f"{path}: {info.width}x{info.height} is {size}, above the limit of {limit} (raise it with --max-pixels)"
        )
    if info.format in ("png", "tiff") and info.bit_depth > 8:
        return _decode_with_opencv(path, data, info)
    return _decode_with_pillow(path, data, info)


def _count(pixels: int) -> str:
    """'5,184 pixels' below a megapixel ("0.0 megapixels" said nothing), '40 megapixels', '41.5 megapixels'."""
    return f"{pixels / 1e6:,.1f}".removesuffix(".0") + " megapixels" if pixels >= 10**6 else f"{pixels:,} pixels"


def _read_bytes(path: Path, max_pixels: int | None) -> bytes:
    try:
        with path.open("rb") as file:
            # Look at the signature first: a big non-image file is refused without reading it all.
            head = file.read(_HEAD_BYTES)
            if container.sniff_format(head) is None:
                raise ImageReadError(f"{path}: {container.unsupported_reason(head)}")
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


def _decode_with_pillow(path: Path, data: bytes, info: container.ContainerInfo) -> DecodedImage:
    try:
        with _quiet_pillow():
            image = _pillow_open(data, info.format)
            image.load()
            cut_short = info.format == "jpeg" and _jpeg_ends_early(data)
            exif = image.info.get("exif") or None
            orientation = image.getexif().get(0x0112, 1)
            stored_size = image.size
            ImageOps.exif_transpose(image, in_place=True)
    except Image.DecompressionBombError:
        raise ImageReadError(f"{path}: {info.width}x{info.height} is above Pillow's limit for 8-bit images") from None
    except _PILLOW_ERRORS as error:
        raise ImageReadError(f"{path}: corrupt {info.format.upper()} data ({_last_line(str(error))})") from None
    if cut_short:
        raise ImageReadError(f"{path}: truncated JPEG (the image data stops early; an end marker was added after it)")
    if stored_size not in ((info.width, info.height), (info.height, info.width)):  # Pillow turns TIFFs itself
        raise ImageReadError(f"{path}: corrupt {info.format.upper()} (header size differs from the decoded size)")
    if exif is not None:
        exif = exif.removeprefix(_EXIF_PREFIX)  # JPEG's framing; a WebP chunk may have it too
        if orientation != 1:
            # In place, not Pillow's rewrite of the block (see ``container.update_exif``).
            exif = container.update_exif(exif, orientation=1)
    pixels, is_gray = _pillow_pixels(path, image)
    return DecodedImage.from_pixels(
        pixels, is_gray=is_gray, format=info.format, exif=exif, icc=image.info.get("icc_profile") or None
    )


def _pillow_open(data: bytes, fmt: str) -> Image.Image:
    # Only the plugin of the format the signature named: no guessing among Pillow's 40 formats.
    return Image.open(io.BytesIO(data), formats=[_PILLOW_NAMES[fmt]])


@contextlib.contextmanager
def _quiet_pillow() -> Iterator[None]:
    """Pillow warns, without naming the file, about corrupt EXIF it then ignores, and about
    images above its own size limit, which ``max_pixels`` has already been checked against."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        yield


def _pillow_pixels(path: Path, image: Image.Image) -> tuple[np.ndarray, bool]:
    """uint8 samples as ``DecodedImage.from_pixels`` takes them, and whether the image is gray."""
    mode = image.mode
    if mode in ("L", "LA", "RGB", "RGBA"):
        pass
    elif mode in ("1", "La"):
        image = image.convert("LA" if mode == "La" else "L")
    elif mode in ("P", "PA"):
        image = image.convert("RGBA" if mode == "PA" or "transparency" in image.info else "RGB")
    elif mode in ("RGBa", "RGBX", "CMYK", "YCbCr", "LAB", "HSV"):
        image = image.convert("RGBA" if mode == "RGBa" else "RGB")
    else:
        raise ImageReadError(f"{path}: {mode} samples are not supported (only 8- and 16-bit images)")
    return np.asarray(image), image.mode in ("L", "LA")


def _jpeg_ends_early(data: bytes) -> bool:
    """Whether the scan data stops before the last block: a file cut short that got its end
    marker back. libjpeg only warns about it (on stderr, without a file name) and decodes the
    missing blocks as flat colour.

    Decoding again with junk before the end marker tells: a complete scan never reads the junk,
    a cut one decodes it into other pixels. Both decodes are at 1/8 scale (the DC coefficients
    only), a quarter of the cost of a full one each; so a cut inside the last block's fine detail
    (a few bytes from the end), which damages that one block only, goes unseen.
    """
    end = data.rfind(b"\xff\xd9")
    probe = data[:end] + bytes(range(1, 255)) * 4 + data[end:]  # no 0xFF: nothing read as a marker
    try:
        reference = _dc_thumbnail(data)
    except _PILLOW_ERRORS:
        return False  # decodes in full but not scaled: no way to tell here
    try:
        return not np.array_equal(reference, _dc_thumbnail(probe))
    except _PILLOW_ERRORS:
        return True


def _dc_thumbnail(data: bytes) -> np.ndarray:
    image = _pillow_open(data, "jpeg")
    image.draft(image.mode, (max(1, image.width // 8), max(1, image.height // 8)))
    image.load()
    return np.asarray(image)


def _decode_with_opencv(path: Path, data: bytes, info: container.ContainerInfo) -> DecodedImage:
    exif, icc, orientation = _header_metadata(data, info.format)
    if info.format == "tiff" and orientation != 1:
        # OpenCV 4 applies some TIFF orientations itself and fails on the rotated ones, OpenCV 5
        # applies all: decode as stored (the tag reset in a copy) and orient here, the same on both.
        data = container.update_exif(data, orientation=1)
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
    pixels = _orient(pixels, orientation)
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[:, :, 0]
    if pixels.ndim == 3:
        pixels = cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB if pixels.shape[2] == 3 else cv2.COLOR_BGRA2RGBA)
    if exif is not None and orientation != 1:
        exif = container.update_exif(exif, orientation=1)
    return DecodedImage.from_pixels(
        pixels, is_gray=info.is_gray or pixels.ndim == 2, format=info.format, exif=exif, icc=icc
    )


def _header_metadata(data: bytes, fmt: str) -> tuple[bytes | None, bytes | None, int]:
    """(EXIF, ICC, orientation) of a 16-bit PNG or TIFF, read by Pillow from the header only.

    A PNG's eXIf chunk after the image data is not seen: Pillow would decode the whole image
    (to 8 bits) to reach it. Writers put it before the image data.
    """
    try:
        with _quiet_pillow(), _pillow_open(data, fmt) as image:
            exif = image.info.get("exif") or None
            icc = image.info.get("icc_profile") or None
            has_tags = fmt == "tiff" or exif is not None  # else getexif() would decode the image
            orientation = image.getexif().get(0x0112, 1) if has_tags else 1
    except (*_PILLOW_ERRORS, AttributeError, KeyError, TypeError):
        logger.debug("unreadable metadata in a 16-bit %s; taken as none", fmt.upper())
        return None, None, 1
    if exif is not None:
        exif = exif.removeprefix(_EXIF_PREFIX)
    return exif, icc, orientation if orientation in range(1, 9) else 1


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


# --- writing ------------------------------------------------------------------------------------


def format_for_path(path: str | os.PathLike[str]) -> str:
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


def encode_image(image: DecodedImage, fmt: str, *, quality: int = 95, png_compression: int | None = None) -> bytes:
    """The image encoded as ``fmt`` ('png', 'jpeg', 'webp', 'tiff'), with its EXIF and ICC kept.

    JPEG and WebP are 8-bit formats: 16-bit images are rounded to 8 bits there. TIFF output
    keeps no metadata. ``png_compression`` is a zlib level 0..9; None is OpenCV's fast default
    for big outputs. Raises ValueError for what the format cannot hold (alpha in JPEG, too many pixels
    for WebP/JPEG).
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
    if png_compression is not None and not 0 <= png_compression <= 9:
        raise ValueError(f"PNG compression must be in 0..9, got {png_compression}")
    bit_depth = 8 if fmt in _EIGHT_BIT_ONLY else image.bit_depth
    pixels = image.to_pixels(bit_depth)
    exif = image.exif
    if exif is not None:
        exif = container.update_exif(exif, orientation=1, pixel_size=(image.width, image.height))
    icc = image.icc if _icc_fits(image.icc, gray=pixels.ndim == 2) else None
    if fmt in _EIGHT_BIT_ONLY:
        return _encode_with_pillow(pixels, fmt, quality=quality, exif=exif, icc=icc)
    # PNG of any depth: OpenCV encodes it in half Pillow's time (one row filter, where Pillow
    # tries five per row), so the metadata goes in by hand. TIFF output keeps none.
    encoded = _encode_with_opencv(pixels, fmt, png_compression)
    return container.embed_png_metadata(encoded, exif=exif, icc=icc) if fmt == "png" else encoded


def _encode_with_pillow(pixels: np.ndarray, fmt: str, *, quality: int, exif: bytes | None, icc: bytes | None) -> bytes:
    # Pillow's other JPEG defaults (4:2:0, baseline) are OpenCV's: the bytes are the same as before.
    options: dict[str, object] = {"quality": quality}
    if exif and fmt == "jpeg" and len(exif) > _MAX_JPEG_EXIF:
        logger.warning("EXIF block of %d bytes does not fit in one JPEG segment; dropped", len(exif))
        exif = None
    if exif:
        options["exif"] = _EXIF_PREFIX + exif
    if icc:
        options["icc_profile"] = icc
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=_PILLOW_NAMES[fmt], **options)
    return buffer.getvalue()


def _encode_with_opencv(pixels: np.ndarray, fmt: str, png_compression: int | None) -> bytes:
    if pixels.ndim == 3:  # OpenCV wants BGR(A)
        pixels = cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR if pixels.shape[2] == 3 else cv2.COLOR_RGBA2BGRA)
    params = [cv2.IMWRITE_PNG_COMPRESSION, png_compression] if fmt == "png" and png_compression is not None else []
    ok, encoded = cv2.imencode(EXTENSIONS[fmt], pixels, params)
    if not ok:
        raise ValueError(f"OpenCV could not encode a {pixels.shape[1]}x{pixels.shape[0]} {fmt.upper()} image")
    return encoded.tobytes()


def _icc_fits(icc: bytes | None, *, gray: bool) -> bool:
    """Whether a profile describes the pixels written: an RGB profile for colour output, a gray
    one for gray output. A CMYK source's profile on our RGB output (or a gray profile on a gray
    image written as RGBA) would mislead every colour-managed viewer, so it is dropped."""
    if icc is None or len(icc) < 20:
        return False
    return icc[16:20] == (b"GRAY" if gray else b"RGB ")


def write_image(
    path: str | os.PathLike[str],
    image: DecodedImage,
    *,
    quality: int = 95,
    format: str | None = None,
    png_compression: int | None = None,
    replace: bool = True,
) -> None:
    """Encode ``image`` (format from ``format`` or the file extension) and write it atomically.

    The bytes go to a temporary file in the target folder, are flushed to disk, then renamed
    to ``path``; on any exception (KeyboardInterrupt included) the temporary file is removed.
    With ``replace=False`` an existing file is never replaced, not even one that appears while
    this one is written.

    Raises:
        ImageWriteError: the image cannot be encoded in that format, or the file cannot be written.
        OutputExistsError: ``replace`` is False and ``path`` exists.
    """
    path = Path(path)
    try:
        fmt = format or format_for_path(path)
        data = encode_image(image, fmt, quality=quality, png_compression=png_compression)
    except ValueError as error:
        raise ImageWriteError(f"{path}: {error}") from None
    try:
        atomic_write_bytes(path, data, replace=replace)
    except FileExistsError:
        raise OutputExistsError(f"{path}: already exists (not replaced)") from None
    except OSError as error:
        reason = "permission denied" if isinstance(error, PermissionError) else (error.strerror or str(error))
        raise ImageWriteError(f"{path}: cannot write ({reason})") from None
