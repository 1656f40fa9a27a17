"""Image containers at the byte level: what is inside a file before decoding it, and putting EXIF/ICC back.

OpenCV decodes pixels but neither reports nor writes EXIF and ICC data, and it only warns on
some truncated files. So before decoding we walk the container ourselves (JPEG segments, PNG
chunks, RIFF chunks of WebP, the first TIFF directory, the BMP header) to learn the size from
the header (a decompression bomb is refused before any pixel is allocated), to check that the
file is complete, and to pull out the EXIF and ICC blocks. After encoding, ``embed_metadata``
puts them back into the encoded bytes.

EXIF is handled as raw TIFF-structured bytes (starting with ``II*\\0`` or ``MM\\0*``), without
the ``Exif\\0\\0`` prefix JPEG uses. Everything here works on ``bytes`` and raises
``ContainerError`` (a ValueError) with a short reason; the caller adds the file name.
"""

from __future__ import annotations

import logging
import struct
import zlib
from dataclasses import dataclass

from soccersr.errors import SoccersrError

logger = logging.getLogger(__name__)

FORMATS = ("jpeg", "png", "webp", "tiff", "bmp")

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_EXIF_PREFIX = b"Exif\x00\x00"
_ICC_PREFIX = b"ICC_PROFILE\x00"
_MAX_ICC_BYTES = 16 * 1024 * 1024  # a bigger "profile" is a zip bomb, not a colour profile
_TAG_ORIENTATION = 0x0112
_TAG_EXIF_IFD = 0x8769
_TAG_PIXEL_X = 0xA002
_TAG_PIXEL_Y = 0xA003
_TIFF_TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8}


class ContainerError(SoccersrError, ValueError):
    """The bytes are not a complete, supported image container (message: the reason only)."""


@dataclass(frozen=True)
class ContainerInfo:
    """What the container says about an image, read without decoding any pixel."""

    format: str
    """One of FORMATS."""
    width: int
    height: int
    is_gray: bool
    """The stored image has one colour channel (plus alpha, maybe)."""
    orientation: int = 1
    """EXIF/TIFF orientation, 1..8 (1 = as stored)."""
    exif: bytes | None = None
    icc: bytes | None = None


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
    """Format, size, completeness, orientation, EXIF and ICC of an encoded image.

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
        if pos >= len(data):
            raise ContainerError("truncated JPEG (ends inside the header)")
        if data[pos] != 0xFF:
            raise ContainerError(f"corrupt JPEG (no marker at byte {pos})")
        while pos < len(data) and data[pos] == 0xFF:  # fill bytes
            pos += 1
        if pos >= len(data):
            raise ContainerError("truncated JPEG (ends inside the header)")
        marker = data[pos]
        pos += 1
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


def _inspect_jpeg(data: bytes) -> ContainerInfo:
    segments, sos = _jpeg_segments(data)
    size = None
    exif = None
    icc_parts: dict[int, bytes] = {}
    for marker, start, end in segments:
        payload = data[start:end]
        if marker in _JPEG_SOF and size is None:
            height, width, components = struct.unpack(">HHB", payload[1:6])
            size = (width, height, components)
        elif marker == 0xE1 and exif is None and payload.startswith(_EXIF_PREFIX):
            exif = payload[len(_EXIF_PREFIX) :]
        elif marker == 0xE2 and payload.startswith(_ICC_PREFIX) and len(payload) >= 14:
            icc_parts[payload[12]] = payload[14:]
    if size is None:
        raise ContainerError("corrupt JPEG (no frame header before the image data)")
    # Entropy-coded data never contains FF D9 (a data FF is always followed by 00 or a restart
    # marker), so an end marker after the first scan means the file is complete.
    if data.rfind(b"\xff\xd9") < sos:
        raise ContainerError("truncated JPEG (no end-of-image marker)")
    width, height, components = size
    icc = b"".join(icc_parts[k] for k in sorted(icc_parts)) or None
    return ContainerInfo("jpeg", width, height, components == 1, exif_orientation(exif), exif, icc)


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
    if chunks[0][0] != b"IHDR":
        raise ContainerError("corrupt PNG (first chunk is not IHDR)")
    kind, start, end = chunks[0]
    width, height, _depth, colour_type = struct.unpack(">IIBB", data[start : start + 10])
    exif = icc = None
    for kind, start, end in chunks:
        if kind == b"eXIf" and exif is None:
            exif = data[start:end]
        elif kind == b"iCCP" and icc is None:
            icc = _png_icc(data[start:end])
        elif kind == b"acTL":
            raise ContainerError("animated PNG is not supported")
    return ContainerInfo("png", width, height, colour_type in (0, 4), exif_orientation(exif), exif, icc)


def _png_icc(payload: bytes) -> bytes | None:
    name_end = payload.find(b"\x00")
    if name_end < 0 or name_end + 2 > len(payload):
        logger.warning("ignoring a malformed iCCP chunk")
        return None
    inflater = zlib.decompressobj()
    try:
        profile = inflater.decompress(payload[name_end + 2 :], _MAX_ICC_BYTES)
    except zlib.error:
        logger.warning("ignoring an iCCP chunk that does not decompress")
        return None
    if inflater.unconsumed_tail:
        logger.warning("ignoring an iCCP chunk larger than %d bytes", _MAX_ICC_BYTES)
        return None
    return profile


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


def _webp_bitstream_info(kind: bytes, payload: bytes) -> tuple[int, int, bool]:
    """(width, height, has_alpha) from a VP8 or VP8L bitstream header."""
    if kind == b"VP8 ":
        if payload[3:6] != b"\x9d\x01\x2a":
            raise ContainerError("corrupt WebP (bad VP8 start code)")
        width, height = struct.unpack("<HH", payload[6:10])
        return width & 0x3FFF, height & 0x3FFF, False
    if payload[0] != 0x2F:
        raise ContainerError("corrupt WebP (bad VP8L signature)")
    (bits,) = struct.unpack("<I", payload[1:5])
    return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1, bool((bits >> 28) & 1)


def _inspect_webp(data: bytes) -> ContainerInfo:
    chunks = _riff_chunks(data)
    size = None
    exif = icc = None
    for kind, start, end in chunks:
        payload = data[start:end]
        if kind == b"VP8X":
            w1, h1 = int.from_bytes(payload[4:7], "little"), int.from_bytes(payload[7:10], "little")
            size = (w1 + 1, h1 + 1)
        elif kind in (b"VP8 ", b"VP8L") and size is None:
            size = _webp_bitstream_info(kind, payload)[:2]
        elif kind == b"ANIM":
            raise ContainerError("animated WebP is not supported")
        elif kind == b"ICCP":
            icc = payload
        elif kind == b"EXIF":
            # Some writers keep JPEG's "Exif\0\0" prefix inside the chunk.
            exif = payload[len(_EXIF_PREFIX) :] if payload.startswith(_EXIF_PREFIX) else payload
    if size is None:
        raise ContainerError("corrupt WebP (no image data chunk)")
    return ContainerInfo("webp", size[0], size[1], False, exif_orientation(exif), exif, icc)


# --- TIFF and BMP -------------------------------------------------------------------------


def _inspect_tiff(data: bytes) -> ContainerInfo:
    if data[2:4] in (b"+\x00", b"\x00+"):
        raise ContainerError("BigTIFF is not supported")
    order = "<" if data[:2] == b"II" else ">"
    (ifd,) = struct.unpack(order + "I", data[4:8])
    tags = {}
    icc = None
    for tag, kind, count, field in _ifd_entries(data, order, ifd):
        tags[tag] = _tiff_value(data, order, kind, field)
        if tag == 34675 and count > 4:  # InterColorProfile: bytes stored at an offset
            (offset,) = struct.unpack(order + "I", data[field : field + 4])
            icc = data[offset : offset + count]
    width, height = tags.get(256), tags.get(257)
    if width is None or height is None:
        raise ContainerError("corrupt TIFF (no image size in the first directory)")
    is_gray = tags.get(262, 2) in (0, 1)  # photometric: white-is-zero or black-is-zero
    return ContainerInfo("tiff", width, height, is_gray, _valid_orientation(tags.get(274)), None, icc)


def _inspect_bmp(data: bytes) -> ContainerInfo:
    (header_size,) = struct.unpack("<I", data[14:18])
    if header_size == 12:  # OS/2 BITMAPCOREHEADER: 16-bit sizes
        width, height = struct.unpack("<HH", data[18:22])
    else:
        width, height = struct.unpack("<ii", data[18:26])
    return ContainerInfo("bmp", width, abs(height), False)


# --- EXIF (TIFF-structured bytes) ---------------------------------------------------------


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


def _tiff_value(buf: bytes, order: str, kind: int, field: int) -> int | None:
    """The first value of a SHORT or LONG entry (None for other types)."""
    if kind == 3:
        return struct.unpack(order + "H", buf[field : field + 2])[0]
    if kind == 4:
        return struct.unpack(order + "I", buf[field : field + 4])[0]
    return None


def _exif_order(exif: bytes) -> str | None:
    if exif[:4] == b"II*\x00":
        return "<"
    if exif[:4] == b"MM\x00*":
        return ">"
    return None


def _valid_orientation(value: int | None) -> int:
    return value if value is not None and 1 <= value <= 8 else 1


def exif_orientation(exif: bytes | None) -> int:
    """The orientation tag (1..8) of EXIF bytes; 1 when absent or unreadable."""
    if not exif or (order := _exif_order(exif)) is None:
        return 1
    try:
        (ifd0,) = struct.unpack(order + "I", exif[4:8])
        for tag, kind, _count, field in _ifd_entries(exif, order, ifd0):
            if tag == _TAG_ORIENTATION:
                return _valid_orientation(_tiff_value(exif, order, kind, field))
    except (struct.error, IndexError):
        logger.debug("unreadable EXIF block; orientation taken as 1")
    return 1


def update_exif(exif: bytes, *, orientation: int | None = None, pixel_size: tuple[int, int] | None = None) -> bytes:
    """EXIF with the orientation tag and/or the (width, height) pixel-size tags rewritten in place.

    Tags that are absent, or a size that does not fit the stored type, are left alone: the
    rewrite never moves bytes, so every offset in the block stays valid.
    """
    order = _exif_order(exif)
    if order is None:
        return exif
    out = bytearray(exif)
    try:
        (ifd0,) = struct.unpack(order + "I", exif[4:8])
        sub_ifd = None
        for tag, kind, _count, field in _ifd_entries(exif, order, ifd0):
            if tag == _TAG_ORIENTATION and orientation is not None and kind == 3:
                struct.pack_into(order + "H", out, field, orientation)
            elif tag == _TAG_ORIENTATION and orientation is not None and kind == 4:
                # Out of spec (SHORT is the standard type), but read as valid: reset it as well.
                struct.pack_into(order + "I", out, field, orientation)
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
        logger.debug("unreadable EXIF block; left as it was")
        return exif
    return bytes(out)


# --- Writing metadata into encoded bytes --------------------------------------------------


def embed_metadata(data: bytes, fmt: str, *, exif: bytes | None, icc: bytes | None) -> bytes:
    """``data`` (an image OpenCV just encoded, without metadata) with EXIF and ICC added.

    JPEG: APP1 Exif + APP2 ICC_PROFILE segments; PNG: eXIf + iCCP chunks; WebP: EXIF + ICCP
    chunks under a VP8X header. TIFF output keeps no metadata (OpenCV writes the file itself).
    """
    if not exif and not icc:
        return data
    if fmt == "jpeg":
        return _embed_jpeg(data, exif, icc)
    if fmt == "png":
        return _embed_png(data, exif, icc)
    if fmt == "webp":
        return _embed_webp(data, exif, icc)
    logger.debug("%s output keeps no EXIF/ICC metadata", fmt)
    return data


def _jpeg_segment(marker: int, payload: bytes) -> bytes:
    return struct.pack(">BBH", 0xFF, marker, len(payload) + 2) + payload


def _embed_jpeg(data: bytes, exif: bytes | None, icc: bytes | None) -> bytes:
    segments, _sos = _jpeg_segments(data)
    # After SOI, and after a JFIF APP0 if there is one (JFIF readers expect it first).
    insert_at = 2
    if segments and segments[0][0] == 0xE0:
        insert_at = segments[0][2]
    extra = b""
    if exif:
        if len(exif) + len(_EXIF_PREFIX) + 2 > 0xFFFF:
            logger.warning("EXIF block of %d bytes does not fit in one JPEG segment; dropped", len(exif))
        else:
            extra += _jpeg_segment(0xE1, _EXIF_PREFIX + exif)
    if icc:
        step = 0xFFFF - 2 - len(_ICC_PREFIX) - 2
        parts = [icc[i : i + step] for i in range(0, len(icc), step)]
        if len(parts) > 255:
            logger.warning("ICC profile of %d bytes is too big for JPEG; dropped", len(icc))
        else:
            for i, part in enumerate(parts):
                extra += _jpeg_segment(0xE2, _ICC_PREFIX + bytes([i + 1, len(parts)]) + part)
    return data[:insert_at] + extra + data[insert_at:]


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def _embed_png(data: bytes, exif: bytes | None, icc: bytes | None) -> bytes:
    chunks = _png_chunks(data)
    out = [data[: len(_PNG_SIGNATURE)]]
    for kind, start, end in chunks:
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


def _riff_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack("<4sI", kind, len(payload)) + payload + (b"\x00" if len(payload) & 1 else b"")


def _embed_webp(data: bytes, exif: bytes | None, icc: bytes | None) -> bytes:
    chunks = _riff_chunks(data)
    flags = 0
    width = height = 0
    body = []
    for kind, start, end in chunks:
        payload = data[start:end]
        if kind == b"VP8X":
            flags = payload[0]
            width = int.from_bytes(payload[4:7], "little") + 1
            height = int.from_bytes(payload[7:10], "little") + 1
        elif kind in (b"ICCP", b"EXIF"):
            continue
        else:
            if kind in (b"VP8 ", b"VP8L") and not width:
                width, height, alpha = _webp_bitstream_info(kind, payload)
                flags |= 0x10 if alpha else 0
            body.append(_riff_chunk(kind, payload))
    flags = (flags & ~0x28) | (0x20 if icc else 0) | (0x08 if exif else 0)
    vp8x = bytes([flags, 0, 0, 0]) + (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    # Chunk order required by the WebP container spec: VP8X, ICCP, image data, EXIF.
    parts = [_riff_chunk(b"VP8X", vp8x)]
    if icc:
        parts.append(_riff_chunk(b"ICCP", icc))
    parts += body
    if exif:
        parts.append(_riff_chunk(b"EXIF", exif))
    payload = b"WEBP" + b"".join(parts)
    return b"RIFF" + struct.pack("<I", len(payload)) + payload
