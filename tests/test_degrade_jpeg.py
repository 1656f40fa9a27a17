"""Batched JPEG: quality mapping, per-sample quality, closeness to a real encoder (OpenCV/libjpeg)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from soccersr.degrade.jpeg import jpeg_compress, quality_to_scale


def _load(path: Path) -> torch.Tensor:
    rgb = cv2.imread(str(path), cv2.IMREAD_COLOR)[..., ::-1].astype(np.float32) / 255
    return torch.from_numpy(rgb.copy()).permute(2, 0, 1)[None]


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / np.mean((a.astype(np.float64) - b) ** 2)))


def test_quality_to_scale_matches_the_official_mapping() -> None:
    q = torch.tensor([10.0, 30.0, 49.5, 50.0, 75.0, 95.0, 100.0])
    expected = torch.tensor([5.0, 5000 / 30 / 100, 5000 / 49.5 / 100, 1.0, 0.5, 0.1, 0.0])
    torch.testing.assert_close(quality_to_scale(q), expected)


def test_close_to_opencv_jpeg_on_real_crops(soccer_crops: Path) -> None:
    """Same quality through libjpeg: PSNR between the two decoded images is high (measured 43.7 dB at q50)."""
    psnrs = []
    for path in sorted(soccer_crops.glob("*.png"))[:3]:
        img = _load(path)
        ours = jpeg_compress(img, torch.tensor([50.0]))[0].permute(1, 2, 0).numpy()
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 50])
        assert ok
        ref = cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1].astype(np.float32) / 255
        psnrs.append(_psnr(ours, ref))
        # Closer to the real codec than the uncompressed input is: it reproduces the artefacts.
        assert psnrs[-1] > _psnr(img[0].permute(1, 2, 0).numpy(), ref) + 2
    assert np.mean(psnrs) > 40


def test_per_sample_quality_and_batch_independence() -> None:
    gen = torch.Generator().manual_seed(0)
    img = torch.rand(1, 3, 48, 64, generator=gen)
    img = torch.nn.functional.avg_pool2d(img, 3, stride=1, padding=1)  # some structure, not pure noise
    batch = img.expand(3, 3, 48, 64).contiguous()
    out = jpeg_compress(batch, torch.tensor([30.0, 60.0, 95.0]))
    alone = jpeg_compress(img, torch.tensor([30.0]))
    torch.testing.assert_close(out[:1], alone, atol=1e-5, rtol=0)
    errors = [(out[i] - img[0]).abs().mean().item() for i in range(3)]
    assert errors[0] > errors[1] > errors[2]


def test_shape_range_and_non_multiple_of_16() -> None:
    img = torch.rand(2, 3, 37, 50)
    out = jpeg_compress(img, torch.tensor([40.0, 90.0]))
    assert out.shape == img.shape and out.dtype == torch.float32
    assert out.min() >= 0 and out.max() <= 1


def test_flat_gray_survives_exactly() -> None:
    img = torch.full((1, 3, 32, 32), 128 / 255)
    torch.testing.assert_close(jpeg_compress(img, torch.tensor([30.0])), img, atol=1e-5, rtol=0)


def test_quantisation_table_orientation() -> None:
    """A gray block holding only DCT coefficient (row 0, column 1) = 17 is quantised with the standard
    table's entry [0][1] = 11 at q50 (round(17/11)*11 = 22), not the transposed entry 12 (-> 12)."""
    n = torch.arange(8, dtype=torch.float64)
    d = torch.cos((2 * n[None, :] + 1) * n[:, None] * torch.pi / 16) / 2
    d[0] /= 2**0.5  # orthonormal DCT-II rows
    basis = torch.outer(d[0], d[1])  # constant down the rows, one cosine across: horizontal frequency 1
    block = 128 + 17.0 * basis
    img = (block / 255).repeat(2, 2).expand(1, 3, 16, 16).float().contiguous()
    out = jpeg_compress(img, torch.tensor([50.0]))[0, 0].double() * 255
    coefficient = ((out[:8, :8] - 128) * basis).sum().item()
    assert coefficient == pytest.approx(22.0, abs=0.05)


def test_differentiable_mode_has_gradients() -> None:
    img = torch.rand(1, 3, 16, 16, requires_grad=True)
    out = jpeg_compress(img, torch.tensor([50.0]), differentiable=True)
    out.sum().backward()
    assert img.grad is not None and img.grad.abs().sum() > 0
    hard = jpeg_compress(img.detach(), torch.tensor([50.0]))
    # The cubic term moves each coefficient by under 1/8 of a step: far less than the compression error.
    assert (out.detach() - hard).abs().mean() < 0.3 * (hard - img.detach()).abs().mean()


def test_errors() -> None:
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        jpeg_compress(torch.rand(3, 16, 16), torch.tensor([50.0]))
    with pytest.raises(ValueError, match="2 qualities for a batch of 1"):
        jpeg_compress(torch.rand(1, 3, 16, 16), torch.tensor([50.0, 60.0]))


def test_device_matches_cpu(device: torch.device) -> None:
    img = torch.rand(2, 3, 40, 56, generator=torch.Generator().manual_seed(3))
    q = torch.tensor([35.0, 80.0])
    cpu = jpeg_compress(img, q)
    dev = jpeg_compress(img.to(device), q.to(device)).cpu()
    # Rounding ties may fall differently; nearly all pixels agree.
    assert (dev - cpu).abs().mean() < 1e-3
