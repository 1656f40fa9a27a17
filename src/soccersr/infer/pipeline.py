"""One photo through the network: gray, alpha, 16-bit and any output scale around an ``Upscaler``.

The upscaler only knows (B, 3, H, W) float RGB batches at the model's own scale; this module
adapts every other kind of photo to that:

- gray photos go through as RGB and come back as one channel (luma);
- alpha either goes through the network as a gray image (sharp edges, the official default) or
  is resized with Lanczos (cheaper, smooth); both stay in [0, 1];
- the bit depth and metadata of the input are kept (rounding to integers happens on write);
- ``outscale`` other than the model's scale resizes the network output with Lanczos (the
  official behaviour), so ``outscale=2`` with an x4 model gives a sharper x2 than an x2 resize.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Literal, Protocol

import cv2
import numpy as np
import torch

from soccersr.io.images import DecodedImage

AlphaMode = Literal["model", "resize"]
ALPHA_MODES: tuple[AlphaMode, ...] = ("model", "resize")
ProgressFn = Callable[[int, int], None]

# ITU-R BT.601 luma, the weights OpenCV's BGR2GRAY uses.
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


class SupportsUpscale(Protocol):
    """What the pipeline needs from ``soccersr.infer.engine.Upscaler``."""

    @property
    def scale(self) -> float: ...

    def upscale(self, images: torch.Tensor, *, progress: ProgressFn | None = None) -> torch.Tensor: ...


def output_size(height: int, width: int, scale: float) -> tuple[int, int]:
    """(height, width) times ``scale``, rounded half up (so 5 px x 2.5 is 13 px, not 12)."""
    return int(math.floor(height * scale + 0.5)), int(math.floor(width * scale + 0.5))


def resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Lanczos resize of a float (H, W) or (H, W, C) array to ``size`` = (height, width), clipped to [0, 1]."""
    if image.shape[:2] == size:
        return image
    out = cv2.resize(image, (size[1], size[0]), interpolation=cv2.INTER_LANCZOS4)
    # Lanczos rings around hard edges: keep values in range.
    return np.clip(out, 0.0, 1.0, out=out)


def to_gray(rgb: np.ndarray) -> np.ndarray:
    """float (H, W, 3) RGB in [0, 1] -> (H, W) luma in [0, 1]."""
    luma = rgb @ _LUMA
    return np.clip(luma, 0.0, 1.0, out=luma)  # the weights' float sum may exceed 1 by an ulp


def upscale_image(
    image: DecodedImage,
    upscaler: SupportsUpscale,
    *,
    outscale: float | None = None,
    alpha: AlphaMode = "model",
    progress: ProgressFn | None = None,
) -> DecodedImage:
    """Upscale one decoded photo; the result keeps its bit depth, gray-ness, format and metadata.

    Args:
        image: the photo, as ``read_image`` returns it.
        upscaler: runs the network (an ``Upscaler``).
        outscale: output size / input size; None means the model's scale.
        alpha: 'model' to upscale the alpha channel with the network, 'resize' for Lanczos.
        progress: called as ``progress(done_tiles, total_tiles)`` while the network runs.

    Returns:
        The upscaled photo, ``round(H * outscale)`` x ``round(W * outscale)``.
    """
    if alpha not in ALPHA_MODES:
        raise ValueError(f"alpha must be one of {ALPHA_MODES}, got {alpha!r}")
    if outscale is not None and not outscale > 0:
        raise ValueError(f"outscale must be positive, got {outscale}")
    planes = [image.rgb]
    alpha_through_model = image.alpha is not None and alpha == "model"
    if alpha_through_model:
        planes.append(np.repeat(image.alpha[:, :, None], 3, axis=2))
    batch = torch.from_numpy(np.stack(planes).transpose(0, 3, 1, 2).copy())
    # Clamp and go to (B, H, W, 3) in torch: multi-threaded, one copy of the large output.
    out = upscaler.upscale(batch, progress=progress)
    with torch.inference_mode():  # the upscaler may return an inference tensor: in-place ops need this
        out = out.permute(0, 2, 3, 1).contiguous().clamp_(0.0, 1.0).numpy()

    rgb = out[0]
    if image.is_gray:
        rgb = np.repeat(to_gray(rgb)[:, :, None], 3, axis=2)
    new_alpha = None
    if alpha_through_model:
        new_alpha = to_gray(out[1])
    elif image.alpha is not None:
        new_alpha = resize(image.alpha, rgb.shape[:2])

    if outscale is not None and outscale != upscaler.scale:
        size = output_size(image.height, image.width, outscale)
        if min(size) < 1:
            raise ValueError(f"outscale {outscale:g} leaves nothing of a {image.width}x{image.height} image")
        rgb = resize(rgb, size)
        new_alpha = None if new_alpha is None else resize(new_alpha, size)
    return dataclasses.replace(image, rgb=rgb, alpha=new_alpha)
