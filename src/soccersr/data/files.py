"""Small file helpers shared by the data commands: listing images, atomic PNG writes, decoding.

Every writer here goes through a temporary file in the destination folder and ``os.replace``, so an
interrupted run never leaves a half-written image under its final name (the temporary names start
with a dot and are ignored by :func:`list_images`).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from soccersr.io.atomic import atomic_write_bytes
from soccersr.io.listing import list_images  # noqa: F401 - re-exported until the callers move


class ImageDecodeError(ValueError):
    """An image file that cannot be read or decoded; the message names the file and the reason."""


def write_rgb_png(path: Path, rgb: np.ndarray) -> None:
    """Float RGB (H, W, 3) in [0, 1] as an 8-bit PNG, atomically; the folder is created."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_png(path, np.ascontiguousarray(np.round(np.clip(rgb, 0.0, 1.0) * 255.0).astype(np.uint8)[:, :, ::-1]))


def encode_png(image: np.ndarray, compression_level: int = 3) -> bytes:
    """PNG bytes of an OpenCV-layout image (HxW, HxWx3 BGR or HxWx4 BGRA; uint8 or uint16)."""
    ok, buf = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, int(compression_level)])
    if not ok:
        raise ValueError(f"PNG encoding failed for an image of shape {image.shape} and dtype {image.dtype}")
    return buf.tobytes()


def write_png(path: Path, image: np.ndarray, compression_level: int = 3) -> None:
    """Atomically write an OpenCV-layout image as PNG (lossless; level 0-9 trades size for speed)."""
    atomic_write_bytes(path, encode_png(image, compression_level))


def decode_image(path: Path, flags: int = cv2.IMREAD_UNCHANGED) -> np.ndarray:
    """Decode an image file with OpenCV (``np.fromfile`` + ``imdecode``, so any path works).

    Raises:
        ImageDecodeError: the file cannot be read, or OpenCV cannot decode it (corrupt, truncated, not an image).
    """
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        raise ImageDecodeError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    if data.size == 0:
        raise ImageDecodeError(f"{path}: empty file")
    image = cv2.imdecode(data, flags)
    if image is None:
        raise ImageDecodeError(f"{path}: not a decodable image (corrupt or truncated?)")
    return image


def read_rgb_float(path: Path) -> np.ndarray:
    """Read an image as HxWx3 float32 RGB in [0, 1] (gray is expanded, alpha dropped, 16-bit kept exact).

    Raises:
        ImageDecodeError: as :func:`decode_image`, or an unsupported sample type.
    """
    image = decode_image(path, cv2.IMREAD_COLOR | cv2.IMREAD_ANYDEPTH)
    if image.dtype not in (np.uint8, np.uint16):
        raise ImageDecodeError(f"{path}: unsupported sample type {image.dtype}")
    rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    # A true division (not a multiply by 1/255), so 255 maps to exactly 1.0, as in the official code.
    return rgb.astype(np.float32) / np.float32(np.iinfo(image.dtype).max)
