"""One photo through the network: 8/16-bit, gray, alpha and outscale, with exact expectations.

The model is a real SRVGGNetCompact whose convs are all zero, run by the real engine: its output
is then exactly the nearest-neighbour x4 upsampling of its input (the network adds that to its
residual), so every expectation below is an independent numpy ``repeat``.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from soccersr.archs import SRVGGNetCompact
from soccersr.infer.engine import Upscaler
from soccersr.infer.pipeline import output_size, resize, upscale_image
from soccersr.io.images import DecodedImage, read_image, to_integer, write_image
from soccersr.weights import SRModel


def nearest_model() -> SRModel:
    kwargs = {"num_feat": 4, "num_conv": 1, "upscale": 4}
    net = SRVGGNetCompact(**kwargs).eval()
    with torch.no_grad():
        for parameter in net.parameters():
            parameter.zero_()
    return SRModel(net=net, name="nearest", arch="SRVGGNetCompact", arch_kwargs=kwargs, net_scale=4, scale=4)


class NearestX4(Upscaler):
    """The real engine around the zeroed network, recording the batch shapes it is given."""

    def __init__(self, tile: int = 0) -> None:
        super().__init__(nearest_model(), device="cpu", precision="fp32", tile=tile, tile_overlap=2)
        self.calls: list[tuple[int, ...]] = []

    def upscale(self, images: torch.Tensor, *, progress=None) -> torch.Tensor:  # noqa: ANN001
        self.calls.append(tuple(images.shape))
        return super().upscale(images, progress=progress)


@pytest.fixture
def upscaler() -> NearestX4:
    return NearestX4()


def nearest4(array: np.ndarray) -> np.ndarray:
    return np.repeat(np.repeat(array, 4, axis=0), 4, axis=1)


def _rng() -> np.random.Generator:
    return np.random.default_rng(7)


def _round_trip(tmp_path: Path, pixels: np.ndarray, upscaler: NearestX4, **options: object) -> np.ndarray:
    """Write ``pixels`` as PNG, read, upscale, write, and read the output file back raw."""
    cv2.imwrite(str(tmp_path / "in.png"), pixels)
    result = upscale_image(read_image(tmp_path / "in.png"), upscaler, **options)
    write_image(tmp_path / "out.png", result)
    return cv2.imread(str(tmp_path / "out.png"), cv2.IMREAD_UNCHANGED)


def test_8bit_rgb_is_exact(tmp_path: Path, upscaler: NearestX4) -> None:
    bgr = _rng().integers(0, 256, (5, 7, 3), dtype=np.uint8)
    out = _round_trip(tmp_path, bgr, upscaler)
    assert out.dtype == np.uint8 and out.shape == (20, 28, 3)
    np.testing.assert_array_equal(out, nearest4(bgr))


def test_16bit_in_16bit_out_is_exact(tmp_path: Path, upscaler: NearestX4) -> None:
    bgr = _rng().integers(0, 65536, (4, 6, 3)).astype(np.uint16)
    bgr[0, 0] = (0, 1, 65535)
    out = _round_trip(tmp_path, bgr, upscaler)
    assert out.dtype == np.uint16
    np.testing.assert_array_equal(out, nearest4(bgr))


def test_gray_goes_through_as_rgb_and_comes_back_single_channel(tmp_path: Path, upscaler: NearestX4) -> None:
    gray = _rng().integers(0, 256, (6, 3), dtype=np.uint8)
    out = _round_trip(tmp_path, gray, upscaler)
    assert out.shape == (24, 12)
    np.testing.assert_array_equal(out, nearest4(gray))
    assert upscaler.calls == [(1, 3, 6, 3)]


def test_alpha_through_the_model(tmp_path: Path, upscaler: NearestX4) -> None:
    bgra = _rng().integers(0, 256, (5, 4, 4), dtype=np.uint8)
    out = _round_trip(tmp_path, bgra, upscaler, alpha="model")
    np.testing.assert_array_equal(out, nearest4(bgra))
    assert upscaler.calls == [(2, 3, 5, 4)]  # colour and alpha in one batch


def test_alpha_resized_with_lanczos(tmp_path: Path, upscaler: NearestX4) -> None:
    bgra = _rng().integers(0, 256, (5, 4, 4), dtype=np.uint8)
    bgra[:, :, 3] = [[0, 60, 120, 255]] * 5
    out = _round_trip(tmp_path, bgra, upscaler, alpha="resize")
    np.testing.assert_array_equal(out[:, :, :3], nearest4(bgra[:, :, :3]))
    expected = cv2.resize(bgra[:, :, 3].astype(np.float32) / 255, (16, 20), interpolation=cv2.INTER_LANCZOS4)
    np.testing.assert_array_equal(out[:, :, 3], to_integer(expected, 8))
    assert not np.array_equal(out[:, :, 3], nearest4(bgra[:, :, 3]))  # a real resize, not nearest
    assert upscaler.calls == [(1, 3, 5, 4)]


def test_outscale_equal_to_the_model_scale_does_not_resize(upscaler: NearestX4) -> None:
    rgb = _rng().random((3, 5, 3), dtype=np.float32)
    image = DecodedImage(rgb, None, 8, False, "png")
    np.testing.assert_array_equal(upscale_image(image, upscaler, outscale=4).rgb, nearest4(rgb))


def test_outscale_resizes_the_network_output_with_lanczos(upscaler: NearestX4) -> None:
    rgb = _rng().random((5, 7, 3), dtype=np.float32)
    alpha = _rng().random((5, 7), dtype=np.float32)
    result = upscale_image(DecodedImage(rgb, alpha, 16, False, "png", exif=b"x"), upscaler, outscale=2.5)
    # 5 x 2.5 = 12.5 -> 13 and 7 x 2.5 = 17.5 -> 18: rounded half up, not truncated.
    assert result.rgb.shape == (13, 18, 3) and result.alpha.shape == (13, 18)
    expected = np.clip(cv2.resize(nearest4(rgb), (18, 13), interpolation=cv2.INTER_LANCZOS4), 0, 1)
    np.testing.assert_allclose(result.rgb, expected, atol=1e-6)
    assert (result.bit_depth, result.exif) == (16, b"x")


def test_output_size_rounds_half_up() -> None:
    assert output_size(5, 7, 2.5) == (13, 18)
    assert output_size(3, 3, 1 / 3) == (1, 1)
    assert output_size(10, 10, 0.25) == (3, 3)  # 2.5 -> 3


def test_resize_keeps_values_in_range() -> None:
    step = np.zeros((8, 8), np.float32)
    step[:, 4:] = 1.0
    out = resize(step, (32, 32))
    assert out.min() == 0.0 and out.max() == 1.0
    raw = cv2.resize(step, (32, 32), interpolation=cv2.INTER_LANCZOS4)
    assert raw.min() < 0 and raw.max() > 1  # the clip above was needed


def test_tiled_progress_is_reported_and_output_stays_exact() -> None:
    upscaler = NearestX4(tile=4)
    rgb = _rng().random((6, 9, 3), dtype=np.float32)
    seen: list[tuple[int, int]] = []
    result = upscale_image(
        DecodedImage(rgb, None, 8, False, "png"), upscaler, progress=lambda d, t: seen.append((d, t))
    )
    np.testing.assert_array_equal(result.rgb, nearest4(rgb))
    assert seen[0] == (0, 6) and seen[-1] == (6, 6)  # 2 x 3 tiles of at most 4 px


def test_bad_options(upscaler: NearestX4) -> None:
    image = DecodedImage(np.zeros((2, 2, 3), np.float32), None, 8, False, "png")
    with pytest.raises(ValueError, match="alpha must be one of"):
        upscale_image(image, upscaler, alpha="bicubic")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="outscale must be positive"):
        upscale_image(image, upscaler, outscale=0)


def test_real_photo_crop_through_the_pipeline(soccer_crops: Path, upscaler: NearestX4) -> None:
    image = read_image(soccer_crops / "01_players.png")
    result = upscale_image(image, upscaler)
    assert (result.height, result.width) == (768, 768)
    np.testing.assert_array_equal(to_integer(result.rgb, 8), nearest4(to_integer(image.rgb, 8)))
