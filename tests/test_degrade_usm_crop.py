"""USM sharpening (against an OpenCV reference) and the paired random crop."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from soccersr.degrade import paired_random_crop, usm_sharp
from soccersr.degrade.usm import gaussian_kernel_1d


def _usm_reference(img: np.ndarray, weight: float = 0.5, radius: int = 51, threshold: float = 10) -> np.ndarray:
    """The USM recipe written with OpenCV's Gaussian blur (BORDER_DEFAULT = reflect 101), HxWxC."""
    blur = cv2.GaussianBlur(img, (radius, radius), 0)
    residual = img - blur
    mask = (np.abs(residual) * 255 > threshold).astype(np.float32)
    soft = cv2.GaussianBlur(mask, (radius, radius), 0)
    sharp = np.clip(img + weight * residual, 0, 1)
    return soft * sharp + (1 - soft) * img


def test_gaussian_kernel_matches_opencv() -> None:
    for size in (51, 21):
        np.testing.assert_allclose(gaussian_kernel_1d(size).numpy(), cv2.getGaussianKernel(size, 0)[:, 0], atol=1e-9)
    assert gaussian_kernel_1d(51).numel() == 51


def test_usm_matches_the_opencv_reference(soccer_crops: Path) -> None:
    bgr = cv2.imread(str(soccer_crops / "04_lines.png"), cv2.IMREAD_COLOR)[:96, :80]
    rgb = np.ascontiguousarray(bgr[..., ::-1]).astype(np.float32) / 255
    ours = usm_sharp(torch.from_numpy(rgb).permute(2, 0, 1)[None])[0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(ours, _usm_reference(rgb), atol=2e-5)
    assert np.abs(ours - rgb).max() > 0.02  # it did sharpen


def test_usm_leaves_flat_and_low_contrast_images_alone() -> None:
    flat = torch.full((1, 3, 40, 40), 0.3)
    assert torch.equal(usm_sharp(flat), flat)
    # A ramp of 3/255 over the image: |img - blur| * 255 stays under the threshold of 10.
    ramp = (0.5 + torch.linspace(0, 3 / 255, 64)).expand(1, 3, 64, 64).contiguous()
    assert torch.equal(usm_sharp(ramp), ramp)


def test_usm_overshoots_at_an_edge_and_stays_in_range() -> None:
    img = torch.zeros(1, 3, 64, 64)
    img[..., 32:] = 0.8
    img[..., :32] = 0.2
    out = usm_sharp(img)
    assert out[0, 0, 10, 31] < 0.2 and out[0, 0, 10, 32] > 0.8  # darker and brighter next to the edge
    assert out.min() >= 0 and out.max() <= 1
    # weight 0 changes nothing
    assert torch.allclose(usm_sharp(img, weight=0.0), img, atol=1e-6)


def test_usm_works_on_tiny_images() -> None:
    img = torch.rand(2, 3, 9, 13)
    assert usm_sharp(img).shape == img.shape


def _coded(b: int, h: int, w: int) -> torch.Tensor:
    """Pixel value = its own (row, column) code, so crops can be checked for alignment."""
    rows = torch.arange(h).view(h, 1).float()
    cols = torch.arange(w).view(1, w).float()
    return (rows * 1000 + cols).expand(b, 3, h, w).contiguous()


def test_paired_crop_is_aligned_and_deterministic() -> None:
    gt = _coded(2, 64, 80)
    lq = gt[..., ::4, ::4]
    gen = torch.Generator().manual_seed(0)
    seen_tops = set()
    for _ in range(50):
        (gt_p, gt_p2), lq_p = paired_random_crop((gt, gt + 1), lq, 32, 4, generator=gen)
        assert gt_p.shape == (2, 3, 32, 32) and lq_p.shape == (2, 3, 8, 8)
        assert torch.equal(lq_p, gt_p[..., ::4, ::4])
        assert torch.equal(gt_p2, gt_p + 1)
        seen_tops.add(int(lq_p[0, 0, 0, 0]) // 1000 // 4)
    assert seen_tops == set(range(16 - 8 + 1))  # every valid LQ row reachable
    a = paired_random_crop((gt,), lq, 32, 4, generator=torch.Generator().manual_seed(5))
    b = paired_random_crop((gt,), lq, 32, 4, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a[1], b[1])


def test_paired_crop_errors() -> None:
    gt, gen = _coded(1, 64, 64), torch.Generator()
    with pytest.raises(ValueError, match="not 4x the LQ"):
        paired_random_crop((gt,), gt[..., ::2, ::2], 32, 4, generator=gen)
    with pytest.raises(ValueError, match="smaller than the patch"):
        paired_random_crop((gt,), gt[..., ::4, ::4], 128, 4, generator=gen)
    with pytest.raises(ValueError, match="not a multiple of scale"):
        paired_random_crop((gt,), gt[..., ::4, ::4], 30, 4, generator=gen)
