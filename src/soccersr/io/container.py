"""Image containers at the byte level: what a file holds before any pixel is decoded.

Before decoding, ``inspect`` walks the container (JPEG segments, PNG chunks, the RIFF chunks of
WebP, the first TIFF directory, the BMP header) to learn the format, size and sample depth from
the header (a decompression bomb is refused before any pixel is allocated) and to check that the
file is complete: the decoders accept some truncated files with at most a warning.

Pillow reads EXIF and ICC, and writes them into the JPEG and WebP files it encodes. Two jobs
stay here, written by hand: ``update_exif`` edits EXIF tags in place, because Pillow
re-serialises the whole block (a LONG tag comes back SHORT, and data moves, which breaks maker
notes that point into it); ``embed_png_metadata`` adds EXIF and ICC to the PNGs that OpenCV
encodes, because Pillow cannot write 16-bit colour and takes twice as long on 8-bit PNG.

EXIF is handled as raw TIFF-structured bytes (starting with ``II*\\0`` or ``MM\\0*``), without
the ``Exif\\0\\0`` prefix JPEG uses. Everything here works on ``bytes`` and raises
``ContainerError`` (a ValueError) with a short reason; the caller adds the file name.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

from soccersr.errors import SoccersrError

FORMATS = ("jpeg", "png", "webp", "tiff", "bmp")

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_TAG_ORIENTATION = 0x0112
_TAG_EXIF_IFD = 0x8769
_TAG_PIXEL_X = 0xA002
_TAG_PIXEL_Y = 0xA003
_TAG_BITS_PER_SAMPLE = 258
_TIFF_TYPE_SIZES = {1: 1, 3: 2, 4: 4}  # BYTE, SHORT, LONG: the integer types read here


class ContainerError(SoccersrError, ValueError):
    """The bytes are not a complete, supported image container (message: the reason only)."""


@dataclass(frozen=True)
class ContainerInfo:
    """What the container says about an image, read without decoding any pixel."""

    format: str
    """One of FORMATS."""
    width: int
    height: int
    bit_depth: int = 8
    """Bits per sample as stored: 16 for 16-bit PNG and TIFF (decoded by OpenCV), else 8 or less."""
    is_gray: bool = False
    """The stored image has one colour channel (plus alpha, maybe)."""


def sniff_format(data: bytes) -> str | None:
    """The container format from the file's first bytes, or None."""
    if data[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if data[:8] == _PNG_SIGNATURE:
        return "png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "tiff"
    if data[:2] == b"BM" and len(data) >= 26:
        return "bmp"
    return None


def unsupported_reason(data: bytes) -> str:
    """Why bytes with no supported signature are refused, naming common other formats."""
    if not data:
        return "empty file (0 bytes)"
    for magic, name in ((b"GIF8", "GIF"), (b"%PDF", "PDF"), (b"PK\x03\x04", "ZIP archive"), (b"\x1f\x8b", "gzip file")):
        if data.startswith(magic):
            return f"a {name}; supported: JPEG, PNG, WebP, TIFF, BMP"
    if data[4:8] == b"ftyp":
        return "a HEIF/AVIF/MP4 (ISO media) file; supported: JPEG, PNG, WebP, TIFF, BMP"
    return "not an image file (unknown signature); supported: JPEG, PNG, WebP, TIFF, BMP"


def inspect(data: bytes) -> ContainerInfo:
    """Format, size, sample depth and completeness of an encoded image.

    Raises ContainerError when the bytes are not a supported image or are truncated/corrupt.
    """
    fmt = sniff_format(data)
    if fmt is None:
        raise ContainerError(unsupported_reason(data))
    try:
        info = {
            "jpeg": _inspect_jpeg,
            "png": _inspect_png,
            "webp": _inspect_webp,
            "tiff": _inspect_tiff,
            "bmp": _inspect_bmp,
        }[fmt](data)
    except (struct.error, IndexError):
        # A header field pointed past the end of the data.
        raise ContainerError(f"truncated or corrupt {fmt.upper()} header") from None
    if info.width <= 0 or info.height <= 0:
        raise ContainerError(f"corrupt {fmt.upper()} header (size {info.width}x{info.height})")
    return info


# --- JPEG ---------------------------------------------------------------------------------

_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _jpeg_segments(data: bytes) -> tuple[list[tuple[int, int, int]], int]:
    """(marker, payload start, payload end) of each header segment, and the offset of the first SOS."""
    segments = []
    pos = 2
    while True:
        marker, pos = _jpeg_marker(data, pos)
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # markers without a length
            continue
        if marker == 0xD9:
            raise ContainerError("corrupt JPEG (end marker before any image data)")
        if pos + 2 > len(data):
            raise ContainerError("truncated JPEG (ends inside the header)")
        (length,) = struct.unpack(">H", data[pos : pos + 2])
        end = pos + length
        if length < 2 or end > len(data):
            raise ContainerError("truncated JPEG (a header segment runs past the end of the file)")
        if marker == 0xDA:
            return segments, pos - 2
        segments.append((marker, pos + 2, end))
        pos = end


def _jpeg_marker(data: bytes, pos: int) -> tuple[int, int]:
    """The marker code at ``pos`` (after its FF and any FF fill bytes), and the offset just past it."""
    if pos >= len(data):
        raise ContainerError("truncated JPEG (ends inside the header)")
    if data[pos] != 0xFF:
        raise ContainerError(f"corrupt JPEG (no marker at byte {pos})")
    while pos < len(data) and data[pos] == 0xFF:  # fill bytes
        pos += 1
    if pos >= len(data):
        raise ContainerError("truncated JPEG (ends inside the header)")
    return data[pos], pos + 1


def _inspect_jpeg(data: bytes) -> ContainerInfo:
    segments, sos = _jpeg_segments(data)
    frame = next((data[start:end] for marker, start, end in segments if marker in _JPEG_SOF), None)
    if frame is None:
        raise ContainerError("corrupt JPEG (no frame header before the image data)")
    # Entropy-coded data never contains FF D9 (a data FF is always followed by 00 or a restart
    # marker), so an end marker after the first scan means the file was not cut before its end
    # (a file cut mid-scan with the end marker added back is caught after decoding).
    if data.rfind(b"\xff\xd9") < sos:
        raise ContainerError("truncated JPEG (no end-of-image marker)")
    precision, height, width, components = struct.unpack(">BHHB", frame[:6])
    return ContainerInfo("jpeg", width, height, precision, components == 1)


# --- PNG ----------------------------------------------------------------------------------


def _png_chunks(data: bytes) -> list[tuple[bytes, int, int]]:
    """(type, payload start, payload end) of every chunk up to and including IEND, CRCs checked."""
    chunks = []
    pos = len(_PNG_SIGNATURE)
    while True:
        if pos + 8 > len(data):
            raise ContainerError("truncated PNG (no IEND chunk)")
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        start, end = pos + 8, pos + 8 + length
        if end + 4 > len(data):
            raise ContainerError(f"truncated PNG (the {kind.decode('latin-1')} chunk runs past the end of the file)")
        (crc,) = struct.unpack(">I", data[end : end + 4])
        if zlib.crc32(data[pos + 4 : end]) != crc:
            raise ContainerError(f"corrupt PNG (bad checksum in the {kind.decode('latin-1')} chunk)")
        chunks.append((kind, start, end))
        if kind == b"IEND":
            return chunks
        pos = end + 4


def _inspect_png(data: bytes) -> ContainerInfo:
    chunks = _png_chunks(data)
    kind, start, _end = chunks[0]
    if kind != b"IHDR":
        raise ContainerError("corrupt PNG (first chunk is not IHDR)")
    if any(kind == b"acTL" for kind, _, _ in chunks):
        raise ContainerError("animated PNG is not supported")
    width, height, depth, colour_type = struct.unpack(">IIBB", data[start : start + 10])
    return ContainerInfo("png", width, height, depth, colour_type in (0, 4))


# --- WebP ---------------------------------------------------------------------------------


def _riff_chunks(data: bytes) -> list[tuple[bytes, int, int]]:
    (riff_size,) = struct.unpack("<I", data[4:8])
    if riff_size + 8 > len(data):
        raise ContainerError(f"truncated WebP (the file has {len(data)} of {riff_size + 8} bytes)")
    chunks = []
    pos, stop = 12, riff_size + 8
    while pos + 8 <= stop:
        kind, size = struct.unpack("<4sI", data[pos : pos + 8])
        start, end = pos + 8, pos + 8 + size
        if end > stop:
            raise ContainerError(f"corrupt WebP (the {kind.decode('latin-1')} chunk runs past the end)")
        chunks.append((kind, start, end))
        pos = end + (size & 1)  # chunks are padded to an even size
    return chunks


def _inspect_webp(data: bytes) -> ContainerInfo:
    size = None
    for kind, start, end in _riff_chunks(data):
        payload = data[start:end]
        if kind == b"ANIM":
            raise ContainerError("animated WebP is not supported")
        if size is not None:
            continue
        if kind == b"VP8X":
            size = int.from_bytes(payload[4:7], "little") + 1, int.from_bytes(payload[7:10], "little") + 1
        elif kind == b"VP8 ":
            if payload[3:6] != b"\x9d\x01\x2a":
                raise ContainerError("corrupt WebP (bad VP8 start code)")
            width, height = struct.unpack("<HH", payload[6:10])
            size = width & 0x3FFF, height & 0x3FFF
        elif kind == b"VP8L":
            if payload[0] != 0x2F:
                raise ContainerError("corrupt WebP (bad VP8L signature)")
            (bits,) = struct.unpack("<I", payload[1:5])
            size = (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if size is None:
        raise ContainerError("corrupt WebP (no image data chunk)")
    return ContainerInfo("webp", size[0], size[1])


# --- TIFF and BMP -------------------------------------------------------------------------


def _inspect_tiff(data: bytes) -> ContainerInfo:
    if data[2:4] in (b"+\x00", b"\x00+"):
        raise ContainerError("BigTIFF is not supported")
    order = "<" if data[:2] == b"II" else ">"
    (ifd,) = struct.unpack(order + "I", data[4:8])
    tags = {
        tag: _tiff_first_value(data, order, kind, count, field)
        for tag, kind, count, field in _ifd_entries(data, order, ifd)
    }
    width, height = tags.get(256), tags.get(257)
    if width is None or height is None:
        raise ContainerError("corrupt TIFF (no image size in the first directory)")
    is_gray = tags.get(262, 2) in (0, 1)  # photometric: white-is-zero or black-is-zero
    return ContainerInfo("tiff", width, height, tags.get(_TAG_BITS_PER_SAMPLE) or 1, is_gray)


def _inspect_bmp(data: bytes) -> ContainerInfo:
    (header_size,) = struct.unpack("<I", data[14:18])
    if header_size == 12:  # OS/2 BITMAPCOREHEADER: 16-bit sizes
        width, height = struct.unpack("<HH", data[18:22])
    else:
        width, height = struct.unpack("<ii", data[18:26])
    return ContainerInfo("bmp", width, abs(height))


def _ifd_entries(buf: bytes, order: str, offset: int) -> list[tuple[int, int, int, int]]:
    """(tag, type, count, offset of the 4-byte value field) for each entry of the IFD at ``offset``."""
    (count,) = struct.unpack(order + "H", buf[offset : offset + 2])
    entries = []
    for i in range(count):
        pos = offset + 2 + 12 * i
        if pos + 12 > len(buf):
            raise IndexError("IFD entry past the end")
        tag, kind, n = struct.unpack(order + "HHI", buf[pos : pos + 8])
        entries.append((tag, kind, n, pos + 8))
    return entries


def _tiff_first_value(buf: bytes, order: str, kind: int, count: int, field: int) -> int | None:
    """The first value of a BYTE, SHORT or LONG entry (None for other types)."""
    size = _TIFF_TYPE_SIZES.get(kind)
    if size is None or count < 1:
        return None
    if size * count > 4:  # the values do not fit in the field, which holds their offset instead
        (field,) = struct.unpack(order + "I", buf[field : field + 4])
    return struct.unpack(order + {1: "B", 2: "H", 4: "I"}[size], buf[field : field + size])[0]


# --- EXIF edited in place -----------------------------------------------------------------


def update_exif(exif: bytes, *, orientation: int | None = None, pixel_size: tuple[int, int] | None = None) -> bytes:
    """EXIF (or a whole TIFF file) with the orientation tag and/or the (width, height) pixel-size
    tags rewritten in place.

    Tags that are absent, or a size that does not fit the stored type, are left alone: the
    rewrite never moves bytes, so every offset in the block stays valid. Unreadable EXIF comes
    back unchanged.
    """
    order = {b"II*\x00": "<", b"MM\x00*": ">"}.get(exif[:4])
    if order is None:
        return exif
    out = bytearray(exif)
    try:
        (ifd0,) = struct.unpack(order + "I", exif[4:8])
        sub_ifd = None
        for tag, kind, _count, field in _ifd_entries(exif, order, ifd0):
            if tag == _TAG_ORIENTATION and orientation is not None and kind in (3, 4):
                # SHORT is the standard type; a LONG is out of spec, but readers take it as valid.
                struct.pack_into(order + ("H" if kind == 3 else "I"), out, field, orientation)
            elif tag == _TAG_EXIF_IFD and kind in (4, 13):
                (sub_ifd,) = struct.unpack(order + "I", exif[field : field + 4])
        if pixel_size is not None and sub_ifd is not None:
            values = {_TAG_PIXEL_X: pixel_size[0], _TAG_PIXEL_Y: pixel_size[1]}
            for tag, kind, _count, field in _ifd_entries(exif, order, sub_ifd):
                if tag in values and kind == 4:
                    struct.pack_into(order + "I", out, field, values[tag])
                elif tag in values and kind == 3 and values[tag] <= 0xFFFF:
                    struct.pack_into(order + "H", out, field, values[tag])
    except (struct.error, IndexError):
        return exif
    return bytes(out)


# --- EXIF and ICC into the PNGs OpenCV encodes -------------------------------------------


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def embed_png_metadata(data: bytes, *, exif: bytes | None, icc: bytes | None) -> bytes:
    """A PNG (as OpenCV encodes it, without metadata) with eXIf and iCCP chunks after IHDR."""
    if not exif and not icc:
        return data
    out = [data[: len(_PNG_SIGNATURE)]]
    for kind, start, end in _png_chunks(data):
        # An sRGB chunk would contradict the embedded profile; drop any old copies too.
        if (icc and kind == b"sRGB") or kind in (b"iCCP", b"eXIf"):
            continue
        out.append(data[start - 8 : end + 4])
        if kind == b"IHDR":
            if icc:
                out.append(_png_chunk(b"iCCP", b"ICC profile\x00\x00" + zlib.compress(icc)))
            if exif:
                out.append(_png_chunk(b"eXIf", exif))
    return b"".join(out)
