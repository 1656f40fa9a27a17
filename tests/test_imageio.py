"""Reading and writing photos: bit depths, gray/alpha, EXIF orientation, EXIF/ICC kept, bad files, atomic writes.

The files are made by hand or by OpenCV, and the metadata is checked with Pillow's own EXIF parser,
so the reader and writer under test (Pillow for 8-bit, OpenCV for 16-bit) are not their own judge.
"""

from __future__ import annotations

import io
import os
import struct
import warnings
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from soccersr.io import container
from soccersr.io import images as imageio
from soccersr.io.images import DecodedImage, ImageReadError, ImageWriteError, read_image, to_integer, write_image

RNG_SEED = 1234


def _rng() -> np.random.Generator:
    return np.random.default_rng(RNG_SEED)


# --- hand-made containers (independent of soccersr.io) -------------------------------------


def make_exif(orientation: int, *, big_endian: bool = False, pixel_size: tuple[int, int] | None = None) -> bytes:
    """A minimal EXIF block: IFD0 with Orientation (and an Exif IFD with the pixel size)."""
    o = ">" if big_endian else "<"
    head = (b"MM\x00*" if big_endian else b"II*\x00") + struct.pack(o + "I", 8)
    n0 = 2 if pixel_size else 1
    ifd0_size = 2 + 12 * n0 + 4
    entries = struct.pack(o + "HHI", 0x0112, 3, 1) + struct.pack(o + "HH", orientation, 0)
    sub = b""
    if pixel_size:
        entries += struct.pack(o + "HHII", 0x8769, 4, 1, 8 + ifd0_size)
        sub = struct.pack(o + "H", 2)
        sub += struct.pack(o + "HHII", 0xA002, 4, 1, pixel_size[0]) + struct.pack(
            o + "HHII", 0xA003, 4, 1, pixel_size[1]
        )
        sub += struct.pack(o + "I", 0)
    return head + struct.pack(o + "H", n0) + entries + struct.pack(o + "I", 0) + sub


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def encode(pixels: np.ndarray, ext: str, params: list[int] | None = None) -> bytes:
    ok, data = cv2.imencode(ext, pixels, params or [])
    assert ok
    return data.tobytes()


def jpeg_with_exif(pixels: np.ndarray, exif: bytes) -> bytes:
    data = encode(pixels, ".jpg", [cv2.IMWRITE_JPEG_QUALITY, 95])
    payload = b"Exif\x00\x00" + exif
    return data[:2] + b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload + data[2:]


def png_with_chunk(pixels: np.ndarray, kind: bytes, payload: bytes) -> bytes:
    data = encode(pixels, ".png")
    ihdr_end = 8 + 8 + 13 + 4
    return data[:ihdr_end] + png_chunk(kind, payload) + data[ihdr_end:]


def fake_icc(size: int = 3000, space: bytes = b"RGB ") -> bytes:
    """A structurally valid ICC blob (header size field, 'acsp' signature, no tags)."""
    body = bytearray(size)
    body[0:4] = struct.pack(">I", size)
    body[12:16] = b"mntr"
    body[16:20] = space
    body[20:24] = b"XYZ "
    body[36:40] = b"acsp"
    body[128:132] = struct.pack(">I", 0)
    body[132:] = bytes((i * 7) % 251 for i in range(size - 132))
    return bytes(body)


def exif_orientation(exif: bytes | None) -> int:
    """The EXIF orientation as an independent parser (Pillow's) reads it; 1 when absent."""
    if not exif:
        return 1
    tags = Image.Exif()
    tags.load(exif)
    return tags.get(0x0112, 1)


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


# --- decoding: bit depth, channels ----------------------------------------------------------


def test_8bit_rgb_png_is_exact_and_in_rgb_order(tmp_path: Path) -> None:
    bgr = _rng().integers(0, 256, (5, 7, 3), dtype=np.uint8)
    image = read_image(write(tmp_path, "a.png", encode(bgr, ".png")))
    assert (image.bit_depth, image.is_gray, image.format, image.alpha) == (8, False, "png", None)
    assert image.rgb.dtype == np.float32 and image.rgb.shape == (5, 7, 3)
    np.testing.assert_array_equal(to_integer(image.rgb, 8), bgr[:, :, ::-1])
    assert image.rgb[0, 0, 0] == np.float32(bgr[0, 0, 2]) / np.float32(255)


def test_16bit_is_decided_by_dtype_not_by_the_values(tmp_path: Path) -> None:
    # Every value <= 255: the official max-value heuristic would call this 8-bit.
    bgr = _rng().integers(0, 256, (4, 6, 3)).astype(np.uint16)
    image = read_image(write(tmp_path, "low16.png", encode(bgr, ".png")))
    assert image.bit_depth == 16
    np.testing.assert_array_equal(to_integer(image.rgb, 16), bgr[:, :, ::-1])
    assert image.rgb.max() <= 255 / 65535 + 1e-9


def test_gray_and_gray_alpha_png(tmp_path: Path) -> None:
    gray = _rng().integers(0, 256, (3, 4), dtype=np.uint8)
    image = read_image(write(tmp_path, "g.png", encode(gray, ".png")))
    assert image.is_gray and image.alpha is None and image.rgb.shape == (3, 4, 3)
    for c in range(3):
        np.testing.assert_array_equal(to_integer(image.rgb[:, :, c], 8), gray)

    # Gray + alpha (colour type 4), built by hand: OpenCV cannot write it.
    values = np.array([[10, 200, 30, 40], [50, 60, 70, 255]], dtype=np.uint8)
    opacity = np.array([[0, 128, 255, 1], [2, 3, 4, 5]], dtype=np.uint8)
    raw = b"".join(b"\x00" + np.stack([values[y], opacity[y]], axis=1).tobytes() for y in range(2))
    data = b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", 4, 2, 8, 4, 0, 0, 0))
    data += png_chunk(b"IDAT", zlib.compress(raw)) + png_chunk(b"IEND", b"")
    image = read_image(write(tmp_path, "ga.png", data))
    assert image.is_gray and image.alpha is not None
    np.testing.assert_array_equal(to_integer(image.rgb[:, :, 1], 8), values)
    np.testing.assert_array_equal(to_integer(image.alpha, 8), opacity)


def test_rgba_png_alpha(tmp_path: Path) -> None:
    bgra = _rng().integers(0, 256, (6, 5, 4), dtype=np.uint8)
    image = read_image(write(tmp_path, "a.png", encode(bgra, ".png")))
    np.testing.assert_array_equal(to_integer(image.alpha, 8), bgra[:, :, 3])
    np.testing.assert_array_equal(to_integer(image.rgb, 8), bgra[:, :, 2::-1])


def test_to_integer_rounds_and_clips() -> None:
    values = np.array([-0.1, 0.0, 0.49 / 255, 0.51 / 255, 254.5 / 255 - 1e-6, 254.5 / 255 + 1e-6, 1.0, 1.3], np.float32)
    np.testing.assert_array_equal(to_integer(values, 8), [0, 0, 0, 1, 254, 255, 255, 255])
    np.testing.assert_array_equal(to_integer(np.float32([0.6 / 65535, 1.0]), 16), [1, 65535])
    assert to_integer(values, 16).dtype == np.uint16


# --- round trips through write_image ---------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "bit_depth", "channels"),
    [("a.png", 8, 3), ("a.png", 16, 3), ("a.tif", 16, 4), ("a.png", 16, 4), ("a.png", 8, 1)],
)
def test_lossless_round_trip(tmp_path: Path, name: str, bit_depth: int, channels: int) -> None:
    top = 65535 if bit_depth == 16 else 255
    dtype = np.uint16 if bit_depth == 16 else np.uint8
    pixels = _rng().integers(0, top + 1, (9, 11, channels)).astype(dtype)
    source = write(
        tmp_path, "src" + Path(name).suffix, encode(pixels[:, :, 0] if channels == 1 else pixels, Path(name).suffix)
    )
    image = read_image(source)
    write_image(tmp_path / name, image)
    back = cv2.imread(str(tmp_path / name), cv2.IMREAD_UNCHANGED)
    assert back.dtype == dtype
    np.testing.assert_array_equal(back.reshape(pixels.shape), pixels)


def test_16bit_to_jpeg_and_webp_is_rounded_to_8bit(tmp_path: Path) -> None:
    rgb = np.full((8, 8, 3), 0.5, np.float32)
    image = DecodedImage(rgb, None, 16, False, "png")
    for name in ("a.jpg", "a.webp"):
        write_image(tmp_path / name, image, quality=100)
        back = cv2.imread(str(tmp_path / name), cv2.IMREAD_UNCHANGED)
        assert back.dtype == np.uint8 and abs(int(back[4, 4, 0]) - 128) <= 1


def test_webp_keeps_alpha(tmp_path: Path) -> None:
    alpha = np.tile(np.linspace(0, 1, 16, dtype=np.float32), (8, 1))
    image = DecodedImage(np.full((8, 16, 3), 0.25, np.float32), alpha, 8, False, "png")
    write_image(tmp_path / "a.webp", image, quality=90)
    back = read_image(tmp_path / "a.webp")
    assert back.alpha is not None and back.format == "webp"
    assert np.abs(back.alpha - alpha).max() <= 2 / 255


# --- EXIF orientation ------------------------------------------------------------------------


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_matches_opencv_for_jpeg(tmp_path: Path, orientation: int) -> None:
    bgr = cv2.resize(_rng().integers(0, 256, (3, 5, 3), dtype=np.uint8), (40, 24), interpolation=cv2.INTER_NEAREST)
    data = jpeg_with_exif(bgr, make_exif(orientation, big_endian=orientation % 2 == 0))
    image = read_image(write(tmp_path, "o.jpg", data))
    # OpenCV's IMREAD_COLOR applies the EXIF orientation of JPEGs itself: an independent reference.
    reference = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    np.testing.assert_array_equal(to_integer(image.rgb, 8), reference[:, :, ::-1])
    assert (image.height, image.width) == ((24, 40) if orientation <= 4 else (40, 24))
    assert exif_orientation(image.exif) == 1


def test_exif_orientation_6_on_png_by_hand(tmp_path: Path) -> None:
    # Stored 2x3, displayed turned 90 degrees clockwise: 3x2.
    gray = np.array([[1, 2, 3], [4, 5, 6]], dtype=np.uint8)
    image = read_image(write(tmp_path, "o.png", png_with_chunk(gray, b"eXIf", make_exif(6))))
    np.testing.assert_array_equal(to_integer(image.rgb[:, :, 0], 8), [[4, 1], [5, 2], [6, 3]])
    assert exif_orientation(image.exif) == 1
    image8 = read_image(write(tmp_path, "o8.png", png_with_chunk(gray, b"eXIf", make_exif(8))))
    np.testing.assert_array_equal(to_integer(image8.rgb[:, :, 0], 8), [[3, 6], [2, 5], [1, 4]])


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])  # Pillow decodes the 8-bit TIFF, OpenCV the 16-bit one
def test_tiff_orientation_tag_is_applied_like_exif(tmp_path: Path, orientation: int, dtype: type) -> None:
    gray = np.array([[1, 2, 3], [4, 5, 6]], dtype=dtype) * 40
    Image.fromarray(gray).save(tmp_path / "o.tif", tiffinfo={274: orientation})  # OpenCV cannot write the tag
    tiff = read_image(tmp_path / "o.tif")
    png = read_image(write(tmp_path, "o.png", png_with_chunk(gray, b"eXIf", make_exif(orientation))))
    assert tiff.bit_depth == png.bit_depth == (16 if dtype == np.uint16 else 8)
    np.testing.assert_array_equal(tiff.rgb, png.rgb)


# --- EXIF and ICC kept ----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["out.jpg", "out.png", "out.webp", "out.webp-lossy-alpha"])
def test_exif_and_icc_are_kept(tmp_path: Path, name: str) -> None:
    icc = fake_icc(70_000 if name.endswith(".jpg") else 3000)  # JPEG: the profile spans two APP2 segments
    exif = make_exif(1, pixel_size=(5, 7))
    alpha = None if name.endswith(".jpg") or name == "out.webp" else np.full((12, 10), 0.5, np.float32)
    image = DecodedImage(np.full((12, 10, 3), 0.3, np.float32), alpha, 8, False, "png", exif=exif, icc=icc)
    path = tmp_path / name.replace("-lossy-alpha", "")
    write_image(path, image, quality=80)
    back = read_image(path)
    assert back.icc == icc
    assert exif_orientation(back.exif) == 1
    # The pixel-size tags now describe the written image.
    assert struct.pack("<HHII", 0xA002, 4, 1, 10) in back.exif and struct.pack("<HHII", 0xA003, 4, 1, 12) in back.exif
    assert (back.alpha is None) == (alpha is None)
    # An independent reader sees the same metadata.
    PIL = pytest.importorskip("PIL.Image")
    with PIL.open(io.BytesIO(path.read_bytes())) as other:
        other.load()
        assert other.size == (10, 12)
        assert other.info.get("icc_profile") == icc
        assert other.getexif().get(0x0112) == 1


def test_icc_and_exif_are_read_from_jpeg_png_webp(tmp_path: Path) -> None:
    icc = fake_icc(500)
    exif = make_exif(1)
    pixels = np.zeros((4, 4, 3), np.uint8)
    jpeg = encode(pixels, ".jpg")
    icc_segment = b"ICC_PROFILE\x00\x01\x01" + icc
    jpeg = jpeg[:2] + b"\xff\xe2" + struct.pack(">H", len(icc_segment) + 2) + icc_segment + jpeg[2:]
    assert read_image(write(tmp_path, "a.jpg", jpeg)).icc == icc
    png = png_with_chunk(pixels, b"iCCP", b"any name\x00\x00" + zlib.compress(icc))
    assert read_image(write(tmp_path, "a.png", png)).icc == icc
    webp = encode(pixels, ".webp", [cv2.IMWRITE_WEBP_QUALITY, 101])
    exif_chunk = b"EXIF" + struct.pack("<I", len(exif) + 6) + b"Exif\x00\x00" + exif
    vp8x = b"VP8X" + struct.pack("<I", 10) + bytes([0x08, 0, 0, 0]) + (3).to_bytes(3, "little") * 2
    body = b"WEBP" + vp8x + webp[12:] + exif_chunk
    image = read_image(write(tmp_path, "a.webp", b"RIFF" + struct.pack("<I", len(body)) + body))
    assert image.exif == exif  # the "Exif\0\0" prefix some writers add is dropped


def test_16bit_png_keeps_its_metadata_both_ways(tmp_path: Path) -> None:
    """OpenCV decodes and encodes 16-bit PNG; the metadata still comes in (read by Pillow from the
    header) and goes out (written by ``container``, as Pillow cannot write 16-bit colour)."""
    bgr = _rng().integers(0, 65536, (2, 3, 3)).astype(np.uint16)
    icc = fake_icc(700)
    data = png_with_chunk(bgr, b"eXIf", make_exif(6, pixel_size=(3, 2)))
    data = data[:33] + png_chunk(b"iCCP", b"p\x00\x00" + zlib.compress(icc)) + data[33:]
    image = read_image(write(tmp_path, "in.png", data))
    assert (image.bit_depth, image.height, image.width, image.icc) == (16, 3, 2, icc)
    np.testing.assert_array_equal(to_integer(image.rgb, 16), np.rot90(bgr[:, :, ::-1], -1))
    assert exif_orientation(image.exif) == 1
    write_image(tmp_path / "out.png", image)
    back = read_image(tmp_path / "out.png")
    assert (back.bit_depth, back.icc, exif_orientation(back.exif)) == (16, icc, 1)
    assert struct.pack("<HHII", 0xA002, 4, 1, 2) in back.exif  # the pixel size of the written image
    np.testing.assert_array_equal(back.rgb, image.rgb)
    with Image.open(tmp_path / "out.png") as other:  # an independent reader agrees
        assert other.info["icc_profile"] == icc and other.getexif()[0x0112] == 1


@pytest.mark.parametrize(
    ("shape", "dtype", "gray", "alpha"),
    [
        ((4, 5), np.uint8, True, False),
        ((4, 5, 2), np.uint16, True, True),
        ((4, 5, 3), np.uint8, False, False),
        ((4, 5, 4), np.uint16, False, True),
    ],
)
def test_from_pixels_and_to_pixels_round_trip(shape: tuple[int, ...], dtype: type, gray: bool, alpha: bool) -> None:
    top = np.iinfo(dtype).max
    pixels = _rng().integers(0, top + 1, shape).astype(dtype)
    pixels.flat[0] = top
    image = DecodedImage.from_pixels(pixels)
    assert (image.is_gray, image.alpha is not None, image.bit_depth) == (gray, alpha, 16 if top > 255 else 8)
    assert image.rgb.dtype == np.float32 and image.rgb.flat[0] == 1.0  # a true division: the top is exactly 1
    expected = np.dstack([np.repeat(pixels[:, :, :1], 3, axis=2), pixels[:, :, 1:]]) if shape == (4, 5, 2) else pixels
    np.testing.assert_array_equal(image.to_pixels(), expected)  # gray + alpha comes back as RGBA
    with pytest.raises(ValueError, match="float32 samples are not supported"):
        DecodedImage.from_pixels(pixels.astype(np.float32))


def test_from_pixels_takes_one_channel_planes() -> None:
    # (H, W, 1), as a mask or an OpenCV gray image with a channel axis, is gray; it used to fail to broadcast.
    plane = _rng().integers(0, 256, (4, 5)).astype(np.uint8)
    image = DecodedImage.from_pixels(plane[:, :, None])
    assert image.is_gray and image.alpha is None
    np.testing.assert_array_equal(image.to_pixels(), plane)


def test_palette_cmyk_and_bilevel_images(tmp_path: Path) -> None:
    palette = Image.new("P", (4, 3))
    palette.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    palette.putpixel((1, 1), 1)
    palette.save(tmp_path / "p.png", transparency=0)
    image = read_image(tmp_path / "p.png")
    assert not image.is_gray and to_integer(image.alpha, 8).tolist()[1] == [0, 255, 0, 0]
    assert to_integer(image.rgb[1, 1], 8).tolist() == [0, 0, 255]
    Image.new("CMYK", (4, 3), (0, 255, 255, 0)).save(tmp_path / "c.jpg", quality=100)
    cmyk = read_image(tmp_path / "c.jpg")
    assert not cmyk.is_gray and np.abs(to_integer(cmyk.rgb, 8).astype(int) - [255, 0, 0]).max() <= 2
    Image.new("1", (5, 2), 1).save(tmp_path / "b.png")
    bilevel = read_image(tmp_path / "b.png")
    assert bilevel.is_gray and (bilevel.rgb == 1.0).all()


def test_errors_are_soccersr_errors(tmp_path: Path) -> None:
    from soccersr.errors import SoccersrError

    with pytest.raises(SoccersrError):
        read_image(tmp_path / "nope.png")
    with pytest.raises(ValueError):  # what callers caught before
        read_image(tmp_path / "nope.png")
    assert issubclass(ImageWriteError, SoccersrError) and issubclass(ImageWriteError, OSError)


def test_tiff_output_drops_metadata_quietly(tmp_path: Path) -> None:
    image = DecodedImage(np.zeros((4, 4, 3), np.float32), None, 8, False, "jpeg", exif=make_exif(1), icc=fake_icc(300))
    write_image(tmp_path / "a.tif", image)
    assert read_image(tmp_path / "a.tif").exif is None


# --- bad inputs -------------------------------------------------------------------------------


def _good_jpeg() -> bytes:
    return encode(cv2.resize(_rng().integers(0, 256, (8, 8, 3), dtype=np.uint8), (64, 64)), ".jpg")


def _good_webp() -> bytes:
    return encode(_rng().integers(0, 256, (32, 32, 3), dtype=np.uint8), ".webp")


def _good_png() -> bytes:
    return encode(_rng().integers(0, 256, (32, 32, 3), dtype=np.uint8), ".png")


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("empty.jpg", b"", "empty file (0 bytes)"),
        ("half.jpg", _good_jpeg()[: len(_good_jpeg()) * 3 // 4], "truncated JPEG (no end-of-image marker)"),
        ("no_eoi.jpg", _good_jpeg()[:-2], "truncated JPEG (no end-of-image marker)"),
        ("header.jpg", _good_jpeg()[:40], "truncated JPEG"),
        ("half.png", _good_png()[:200], "truncated PNG"),
        ("no_iend.png", _good_png()[:-12], "truncated PNG (no IEND chunk)"),
        (
            "crc.png",
            _good_png()[:60] + bytes([_good_png()[60] ^ 0xFF]) + _good_png()[61:],
            "corrupt PNG (bad checksum in the IDAT chunk)",
        ),
        ("half.webp", _good_webp()[: len(_good_webp()) // 2], "truncated WebP (the file has"),
        ("notes.jpg", b"these are my notes, not a photo\n", "not an image file (unknown signature)"),
        ("anim.gif", b"GIF89a" + bytes(20), "a GIF; supported: JPEG, PNG, WebP, TIFF, BMP"),
    ],
)
def test_bad_inputs_raise_one_line_naming_the_file(tmp_path: Path, name: str, data: bytes, reason: str) -> None:
    path = write(tmp_path, name, data)
    with pytest.raises(ImageReadError) as caught:
        read_image(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ") and reason in message and "\n" not in message


def _photo_jpeg(progressive: bool = False) -> bytes:
    """A 96x64 photo-like JPEG: smooth colour ramps with noise, several MCU rows of scan data."""
    y, x = np.mgrid[0:64, 0:96]
    bgr = np.stack([x * 2, y * 3, (x + y) * 1.5], axis=2) + _rng().normal(0, 8, (64, 96, 3))
    params = [cv2.IMWRITE_JPEG_QUALITY, 90, cv2.IMWRITE_JPEG_PROGRESSIVE, int(progressive)]
    return encode(np.clip(bgr, 0, 255).astype(np.uint8), ".jpg", params)


@pytest.mark.parametrize(
    ("cut", "progressive", "reason"),
    [
        (0.5, False, "truncated JPEG (the image data stops early"),
        (0.97, False, "truncated JPEG (the image data stops early"),
        (0.99, False, "truncated JPEG (the image data stops early"),  # the last ~20 bytes
        (0.2, True, "corrupt JPEG data"),
    ],
)
def test_jpeg_cut_mid_scan_with_its_end_marker_added_back_fails(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], cut: float, progressive: bool, reason: str
) -> None:
    """Issue 13.10: libjpeg only warns ("Corrupt JPEG data: premature end of data segment", on
    stderr, without a file name) and fills the rest with flat colour; that was taken as a photo."""
    data = _photo_jpeg(progressive)
    sos = data.find(b"\xff\xda")
    path = write(tmp_path, "cut.jpg", data[: sos + int((len(data) - sos) * cut)] + b"\xff\xd9")
    with pytest.raises(ImageReadError) as caught:
        read_image(path)
    assert str(caught.value).startswith(f"{path}: {reason}")
    assert "Corrupt JPEG" not in capfd.readouterr().err


def test_complete_jpegs_are_read(tmp_path: Path) -> None:
    """The check must not refuse complete files: flat grey ones (the colour a cut baseline file
    usually ends in), progressive ones, and ones with bytes after the end marker."""
    bgr = np.full((32, 48, 3), 128, np.uint8)
    bgr[:8, :8] = (0, 40, 250)
    for name, progressive in (("grey.jpg", 0), ("grey_progressive.jpg", 1)):
        data = encode(bgr, ".jpg", [cv2.IMWRITE_JPEG_QUALITY, 95, cv2.IMWRITE_JPEG_PROGRESSIVE, progressive])
        image = read_image(write(tmp_path, name, data))
        assert (to_integer(image.rgb[-4:, -4:], 8) == 128).all()
    assert read_image(write(tmp_path, "photo.jpg", _photo_jpeg())).width == 96
    assert read_image(write(tmp_path, "trailer.jpg", _photo_jpeg() + b"camera trailer \xff\xd9")).width == 96


def test_missing_file_and_folder(tmp_path: Path) -> None:
    with pytest.raises(ImageReadError, match="nope.png: no such file$"):
        read_image(tmp_path / "nope.png")
    with pytest.raises(ImageReadError, match="is a folder, not an image file$"):
        read_image(tmp_path)


def test_unreadable_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, "locked.png", _good_png())
    if os.geteuid() != 0:  # root reads anything: simulate the error there
        path.chmod(0)
    else:

        def denied(self: Path, *args: object, **kwargs: object) -> None:
            raise PermissionError(13, "Permission denied", str(self))

        monkeypatch.setattr(Path, "open", denied)
    with pytest.raises(ImageReadError, match=r"locked.png: cannot read the file \(permission denied\)$"):
        read_image(path)


@pytest.mark.parametrize("fmt", ["png", "jpeg"])
def test_pixel_limit_is_checked_before_decoding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str) -> None:
    if fmt == "png":  # a 100000 x 100000 "bomb": the header claims it, the data is tiny
        data = b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0))
        data += png_chunk(b"IDAT", zlib.compress(b"\x00" * 1000)) + png_chunk(b"IEND", b"")
    else:  # a real JPEG whose frame header is patched to claim 60000 x 50000
        data = bytearray(_good_jpeg())
        sof = data.find(b"\xff\xc0")
        struct.pack_into(">HH", data, sof + 5, 50_000, 60_000)
        data = bytes(data)

    def no_decode(*args: object) -> None:
        raise AssertionError("decoded an image above the pixel limit")

    monkeypatch.setattr(imageio.cv2, "imdecode", no_decode)
    monkeypatch.setattr(imageio.Image, "open", no_decode)
    with pytest.raises(
        ImageReadError, match=r"above the limit of 40 megapixels \(raise it with --max-pixels\)$"
    ) as caught:
        read_image(write(tmp_path, f"bomb.{fmt}", data), max_pixels=40_000_000)
    assert "megapixels" in str(caught.value)


def test_pixel_limit_is_configurable(tmp_path: Path) -> None:
    path = write(tmp_path, "a.png", _good_png())  # 32 x 32 = 1024 pixels
    assert read_image(path, max_pixels=1024).width == 32
    # Issue 13: "96x54 is 0.0 megapixels, above the limit of 0.005" said nothing.
    with pytest.raises(ImageReadError, match="32x32 is 1,024 pixels, above the limit of 1,000 pixels"):
        read_image(path, max_pixels=1000)
    assert read_image(path, max_pixels=None).width == 32


# --- atomic writes ----------------------------------------------------------------------------


def _image() -> DecodedImage:
    return DecodedImage(np.full((6, 6, 3), 0.5, np.float32), None, 8, False, "png")


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


@pytest.mark.parametrize("error", [OSError(28, "No space left on device"), KeyboardInterrupt()])
def test_failed_write_leaves_no_partial_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: BaseException
) -> None:
    target = tmp_path / "out.png"
    target.write_bytes(b"previous result")

    def fail(fd: int) -> None:
        raise error

    monkeypatch.setattr(imageio.os, "fsync", fail)
    expected = KeyboardInterrupt if isinstance(error, KeyboardInterrupt) else ImageWriteError
    with pytest.raises(expected) as caught:
        write_image(target, _image())
    if expected is ImageWriteError:
        assert str(caught.value) == f"{target}: cannot write (No space left on device)"
    assert target.read_bytes() == b"previous result"
    assert _leftovers(tmp_path) == []


def test_write_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(ImageWriteError, match=r"missing/out.png: cannot write \(No such file or directory\)$"):
        write_image(tmp_path / "missing" / "out.png", _image())
    alpha_image = DecodedImage(np.zeros((4, 4, 3), np.float32), np.ones((4, 4), np.float32), 8, False, "png")
    with pytest.raises(ImageWriteError, match="out.jpg: JPEG cannot store an alpha channel"):
        write_image(tmp_path / "out.jpg", alpha_image)
    with pytest.raises(ImageWriteError, match="unknown image extension '.gif'"):
        write_image(tmp_path / "out.gif", _image())
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_written_file_has_normal_permissions(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        write_image(tmp_path / "a.png", _image())
    finally:
        os.umask(old)
    assert (tmp_path / "a.png").stat().st_mode & 0o777 == 0o644


# --- container details --------------------------------------------------------------------------


def test_update_exif_rewrites_in_place_both_byte_orders() -> None:
    """In place, unlike Pillow's Exif.tobytes(), which turns these LONG tags into SHORT ones and
    moves the data after them (breaking maker notes that point into the block)."""
    for big in (False, True):
        exif = make_exif(6, big_endian=big, pixel_size=(5, 7))
        out = container.update_exif(exif, orientation=1, pixel_size=(20, 28))
        assert len(out) == len(exif) and exif_orientation(out) == 1
        o = ">" if big else "<"
        assert struct.pack(o + "HHII", 0xA002, 4, 1, 20) in out and struct.pack(o + "HHII", 0xA003, 4, 1, 28) in out
    assert container.update_exif(b"garbage", orientation=1) == b"garbage"
    past_the_end = b"II*\x00\xff\xff\xff\x00"  # IFD offset past the end
    assert container.update_exif(past_the_end, orientation=1) == past_the_end


def test_unreadable_exif_is_kept_and_ignored_quietly(tmp_path: Path) -> None:
    garbage = b"II*\x00\xff\xff\xff\x00"
    path = write(tmp_path, "g.jpg", jpeg_with_exif(np.zeros((8, 8, 3), np.uint8), garbage))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        image = read_image(path)
    assert [str(w.message) for w in caught] == []  # Pillow's "Corrupt EXIF data" names no file
    assert image.exif == garbage and (image.width, image.height) == (8, 8)


@pytest.mark.parametrize("alpha", [False, True])
def test_webp_with_metadata_is_a_valid_extended_file(tmp_path: Path, alpha: bool) -> None:
    rgb = _rng().random((9, 13, 3), dtype=np.float32)
    opacity = _rng().random((9, 13), dtype=np.float32) if alpha else None
    plain, tagged = DecodedImage(rgb, opacity), DecodedImage(rgb, opacity, exif=make_exif(1), icc=fake_icc(301))
    write_image(tmp_path / "plain.webp", plain, quality=80)
    write_image(tmp_path / "tagged.webp", tagged, quality=80)  # 301 bytes of ICC: a padded chunk
    out = (tmp_path / "tagged.webp").read_bytes()
    assert out[12:16] == b"VP8X" and out[20] & 0x28 == 0x28  # ICC and EXIF flags
    assert struct.unpack("<I", out[4:8])[0] == len(out) - 8
    back = read_image(tmp_path / "tagged.webp")
    assert (back.width, back.height, back.icc, back.exif) == (13, 9, fake_icc(301), make_exif(1))
    np.testing.assert_array_equal(
        cv2.imdecode(np.frombuffer(out, np.uint8), cv2.IMREAD_UNCHANGED),
        cv2.imread(str(tmp_path / "plain.webp"), cv2.IMREAD_UNCHANGED),
    )


def test_sniff_and_header_sizes_without_decoding() -> None:
    bmp = encode(np.zeros((5, 9, 3), np.uint8), ".bmp")
    tif = encode(np.zeros((5, 9), np.uint16), ".tif")
    rgb16 = encode(np.zeros((5, 9, 3), np.uint16), ".png")
    for data, fmt, gray, depth in [
        (bmp, "bmp", False, 8),
        (tif, "tiff", True, 16),
        (_good_png(), "png", False, 8),
        (rgb16, "png", False, 16),
        (_good_jpeg(), "jpeg", False, 8),
    ]:
        info = container.inspect(data)
        assert (info.format, info.is_gray, info.bit_depth) == (fmt, gray, depth)
    assert (container.inspect(bmp).width, container.inspect(bmp).height) == (9, 5)
    assert (container.inspect(tif).width, container.inspect(tif).height) == (9, 5)


@pytest.mark.parametrize(
    ("space", "gray", "alpha", "kept"),
    [
        (b"RGB ", False, False, True),
        (b"GRAY", True, False, True),
        (b"CMYK", False, False, False),  # a CMYK source's profile on our RGB output
        (b"GRAY", True, True, False),  # gray + alpha is written as RGBA
        (b"RGB ", True, False, False),
    ],
)
def test_icc_profile_kept_only_when_it_describes_the_output(
    tmp_path: Path, space: bytes, gray: bool, alpha: bool, kept: bool
) -> None:
    rgb = np.full((6, 5, 3), 0.4, np.float32)
    image = DecodedImage(rgb, np.ones((6, 5), np.float32) if alpha else None, 8, gray, "png", icc=fake_icc(400, space))
    write_image(tmp_path / "a.png", image)
    assert read_image(tmp_path / "a.png").icc == (fake_icc(400, space) if kept else None)


@pytest.mark.parametrize("big_endian", [False, True])
def test_orientation_stored_as_long_is_applied_and_reset_too(tmp_path: Path, big_endian: bool) -> None:
    """Out of spec but seen in the wild: a LONG orientation tag. It is read as valid, so the
    reset must rewrite it as well, or viewers would rotate the already-rotated pixels again."""
    o = ">" if big_endian else "<"
    exif = (b"MM\x00*" if big_endian else b"II*\x00") + struct.pack(o + "IH", 8, 1)
    exif += struct.pack(o + "HHII", 0x0112, 4, 1, 6) + struct.pack(o + "I", 0)
    assert exif_orientation(exif) == 6
    gray = np.array([[1, 2, 3], [4, 5, 6]], dtype=np.uint8)
    image = read_image(write(tmp_path, "long.png", png_with_chunk(gray, b"eXIf", exif)))
    np.testing.assert_array_equal(to_integer(image.rgb[:, :, 0], 8), [[4, 1], [5, 2], [6, 3]])
    assert exif_orientation(image.exif) == 1 and len(image.exif) == len(exif)  # rewritten in place, still LONG
