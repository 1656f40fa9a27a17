"""Checking an uploaded file before it is queued: by its bytes, never by its name or content type.

The container is walked without decoding a pixel (``io.container.inspect``), so a non-image, a
truncated file or a small file that claims to be a gigapixel image is refused at once, with a
status and one line naming the file. The worker decodes with ``read_image`` later, which checks
everything again (a corrupt pixel stream is only found there, and fails that file alone).
"""

from __future__ import annotations

from soccersr.io import container
from soccersr.io.container import ContainerError, ContainerInfo


class UploadRejected(Exception):
    """An upload the server will not take: ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def check_image(name: str, data: bytes, *, max_pixels: int | None) -> ContainerInfo:
    """What the container says about ``data``, if it is a complete image within ``max_pixels``.

    Raises:
        UploadRejected: 415 for a non-image, 422 for a truncated or corrupt one, 413 for one
            above the pixel limit.
    """
    if container.sniff_format(data[:32]) is None:
        raise UploadRejected(415, f"{name}: not an image ({container.unsupported_reason(data[:32])})")
    try:
        info = container.inspect(data)
    except ContainerError as error:
        raise UploadRejected(422, f"{name}: {error}") from None
    pixels = info.width * info.height
    if max_pixels is not None and pixels > max_pixels:
        raise UploadRejected(
            413,
            f"{name}: {info.width}x{info.height} is {pixels / 1e6:.1f} megapixels, "
            f"above this server's limit of {max_pixels / 1e6:g}",
        )
    return info
