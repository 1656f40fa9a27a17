"""sample_params / degrade / degrade_image: shapes, levels, determinism, replay, op coverage and frequencies."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from soccersr.degrade import (
    BLUR_KERNELS,
    KERNEL_TYPES,
    DegradationConfig,
    DegradationParams,
    ResizeParams,
    degrade,
    degrade_image,
    sample_params,
    usm_sharp,
)

CFG = DegradationConfig()


def _gt(b: int = 3, size: int = 96, seed: int = 0) -> torch.Tensor:
    img = torch.rand(b, 3, size // 8, size // 8, generator=torch.Generator().manual_seed(seed))
    return torch.nn.functional.interpolate(img, size=(size, size), mode="bicubic").clamp(0, 1)


def _params(seed: int, batch: int = 3, cfg: DegradationConfig = CFG) -> DegradationParams:
    return sample_params(cfg, batch, generator=torch.Generator().manual_seed(seed))


def _is_8bit(x: torch.Tensor) -> bool:
    return bool(((x * 255) - (x * 255).round()).abs().max() < 1e-4)


def _tensors(obj: object) -> list[torch.Tensor]:
    out = []
    for f in dataclasses.fields(obj):  # type: ignore[arg-type]
        v = getattr(obj, f.name)
        if isinstance(v, torch.Tensor):
            out.append(v)
        elif dataclasses.is_dataclass(v):
            out += _tensors(v)
    return out


def _same_params(a: DegradationParams, b: DegradationParams) -> bool:
    scalars_equal = a.summary() == b.summary()
    return scalars_equal and all(torch.equal(x, y) for x, y in zip(_tensors(a), _tensors(b), strict=True))


def test_shapes_levels_and_range() -> None:
    gt = _gt(3, 96)
    lq = degrade(usm_sharp(gt), _params(0), CFG)
    assert lq.shape == (3, 3, 24, 24) and lq.dtype == torch.float32
    assert lq.min() >= 0 and lq.max() <= 1 and _is_8bit(lq)


def test_non_square_and_non_multiple_sizes() -> None:
    gt = _gt(2, 96)[..., :90, :70]
    lq = degrade(gt, _params(1, 2), CFG)
    assert lq.shape == (2, 3, 22, 17)


def test_same_seed_same_params_and_lq_different_seed_differs() -> None:
    a, b, c = _params(7), _params(7), _params(8)
    assert _same_params(a, b)
    assert not _same_params(a, c)
    gt = usm_sharp(_gt())
    assert torch.equal(degrade(gt, a, CFG), degrade(gt, b, CFG))
    assert not torch.equal(degrade(gt, a, CFG), degrade(gt, c, CFG))


def test_sampling_does_not_touch_the_global_rng() -> None:
    torch.manual_seed(0)
    np.random.seed(0)
    before_t, before_n = torch.random.get_rng_state(), np.random.get_state()[1].copy()
    _params(3)
    degrade(_gt(), _params(4), CFG)
    assert torch.equal(torch.random.get_rng_state(), before_t)
    assert np.array_equal(np.random.get_state()[1], before_n)


def test_replay_is_bit_identical(device: torch.device) -> None:
    params = _params(11).to(device)
    gt = usm_sharp(_gt().to(device))
    lq = degrade(gt, params, CFG)
    assert lq.device.type == device.type
    assert torch.equal(lq, degrade(gt, params, CFG))
    assert _is_8bit(lq.cpu())


def test_params_to_and_summary() -> None:
    params = _params(2)
    moved = params.to("cpu")
    assert _same_params(params, moved)
    summary = params.summary()
    json.dumps(summary)  # loggable as is
    assert len(summary["first"]["kernel"]) == 3 and summary["final"]["mode"] in ("area", "bilinear", "bicubic")
    assert set(summary["second"]["kernel"]) <= set(KERNEL_TYPES) | {"none"}
    with pytest.raises(dataclasses.FrozenInstanceError):
        params.jpeg_last = True  # type: ignore[misc]


def test_batch_size_mismatch_and_bad_shapes() -> None:
    with pytest.raises(ValueError, match="batch of 3, got 2"):
        degrade(_gt(2), _params(0, 3), CFG)
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        degrade(torch.rand(3, 1, 32, 32), _params(0, 3), CFG)
    if torch.cuda.is_available():
        with pytest.raises(ValueError, match="CPU generator"):
            sample_params(CFG, 2, generator=torch.Generator(device="cuda"))


@pytest.fixture(scope="module")
def many() -> list[DegradationParams]:
    gen = torch.Generator().manual_seed(123)
    return [sample_params(CFG, 12, generator=gen) for _ in range(250)]


def _within(count: int, n: int, p: float, sds: float = 4.0) -> bool:
    return abs(count / n - p) <= sds * math.sqrt(p * (1 - p) / n) + 1e-12


def test_every_op_is_reachable(many: list[DegradationParams]) -> None:
    for stage in ("first", "second"):
        stages = [getattr(p, stage) for p in many]
        kinds = set(torch.cat([s.kernel_type for s in stages]).tolist())
        assert kinds == set(range(len(KERNEL_TYPES))), stage  # all six families and sinc
        assert {s.resize.direction for s in stages} == {"up", "down", "keep"}
        assert {s.resize.mode for s in stages} == {"area", "bilinear", "bicubic"}
        gaussian = torch.cat([s.noise.gaussian for s in stages])
        gray = torch.cat([s.noise.gray for s in stages])
        assert gaussian.any() and (~gaussian).any() and gray.any() and (~gray).any()
    assert not torch.cat([p.second.blurred for p in many]).all()
    assert torch.cat([p.first.blurred for p in many]).all()
    assert {p.jpeg_last for p in many} == {True, False}
    assert {p.final_mode for p in many} == {"area", "bilinear", "bicubic"}
    final = torch.cat([p.final_sinc for p in many])
    assert final.any() and (~final).any()


def test_op_frequencies_match_the_config(many: list[DegradationParams]) -> None:
    n_batches = len(many)
    for stage_name, stage_cfg in (("first", CFG.first), ("second", CFG.second)):
        stages = [getattr(p, stage_name) for p in many]
        for direction, prob in zip(("up", "down", "keep"), stage_cfg.resize_prob, strict=True):
            assert _within(sum(s.resize.direction == direction for s in stages), n_batches, prob), (
                stage_name,
                direction,
            )
        gaussian = torch.cat([s.noise.gaussian for s in stages])
        assert _within(int(gaussian.sum()), gaussian.numel(), stage_cfg.gaussian_noise_prob)
        gray = torch.cat([s.noise.gray for s in stages])
        assert _within(int(gray.sum()), gray.numel(), stage_cfg.gray_noise_prob)
        blurred = torch.cat([s.blurred for s in stages])
        assert _within(int(blurred.sum()), blurred.numel(), stage_cfg.blur_prob)
        kinds = torch.cat([s.kernel_type for s in stages])
        assert _within(int((kinds == KERNEL_TYPES.index("sinc")).sum()), kinds.numel(), stage_cfg.sinc_prob)
        iso = BLUR_KERNELS.index("iso")
        assert _within(int((kinds == iso).sum()), kinds.numel(), stage_cfg.kernel_prob[0] * (1 - stage_cfg.sinc_prob))
        # Ranges: every draw inside, and the draws spread over the whole range.
        for values, (lo, hi) in (
            (torch.cat([s.noise.sigma for s in stages]), stage_cfg.noise_range),
            (torch.cat([s.noise.poisson_scale for s in stages]), stage_cfg.poisson_scale_range),
            (torch.cat([s.jpeg_quality for s in stages]), stage_cfg.jpeg_range),
        ):
            assert values.min() >= lo and values.max() <= hi
            assert values.mean().item() == pytest.approx((lo + hi) / 2, abs=0.03 * (hi - lo))
            assert values.min() < lo + 0.02 * (hi - lo) and values.max() > hi - 0.02 * (hi - lo)
        for s in stages:
            lo, hi = stage_cfg.resize_range
            bounds = {"up": (1, hi), "down": (lo, 1), "keep": (1, 1)}[s.resize.direction]
            assert bounds[0] <= s.resize.scale <= bounds[1]
    assert _within(sum(p.jpeg_last for p in many), n_batches, 0.5)
    final = torch.cat([p.final_sinc for p in many])
    assert _within(int(final.sum()), final.numel(), CFG.final_sinc_prob)


def test_skipped_stage2_blur_is_an_identity_kernel(many: list[DegradationParams]) -> None:
    for p in many[:50]:
        skipped = ~p.second.blurred
        if skipped.any():
            k = p.second.kernel[skipped]
            assert torch.equal(k.sum(dim=(1, 2)), torch.ones(len(k))) and torch.equal(k[:, 10, 10], torch.ones(len(k)))
            return
    pytest.fail("no skipped stage-2 blur in 50 batches")


@pytest.mark.parametrize("jpeg_last", [True, False])
@pytest.mark.parametrize("direction", ["up", "down", "keep"])
def test_forced_branches_run(jpeg_last: bool, direction: str) -> None:
    base = _params(5, 2)
    scale = {"up": 1.4, "down": 0.4, "keep": 1.0}[direction]
    params = dataclasses.replace(
        base,
        jpeg_last=jpeg_last,
        first=dataclasses.replace(base.first, resize=ResizeParams(direction, scale, "bicubic")),  # type: ignore[arg-type]
        second=dataclasses.replace(base.second, resize=ResizeParams(direction, scale, "area")),  # type: ignore[arg-type]
    )
    lq = degrade(_gt(2, 64), params, CFG)
    assert lq.shape == (2, 3, 16, 16) and _is_8bit(lq)
    assert not torch.equal(lq, degrade(_gt(2, 64), dataclasses.replace(params, jpeg_last=not jpeg_last), CFG))


def test_mild_config_keeps_the_image_recognisable() -> None:
    """With every random op switched to its mildest setting the LQ is close to a plain area downscale."""
    from soccersr.degrade import StageConfig

    mild = StageConfig(
        blur_prob=0.0,
        sinc_prob=0.0,
        resize_prob=(0.0, 0.0, 1.0),
        noise_range=(0.0, 0.0),
        poisson_scale_range=(0.0, 0.0),
        jpeg_range=(100.0, 100.0),
    )
    cfg = DegradationConfig(first=mild, second=mild, final_sinc_prob=0.0)
    gt = _gt(2, 64, seed=4)[:, :1].expand(2, 3, 64, 64).contiguous()  # gray: 4:2:0 chroma loses nothing
    base = _params(9, 2, cfg)
    keep = ResizeParams("keep", 1.0, "area")
    params = dataclasses.replace(
        base,
        final_mode="area",
        first=dataclasses.replace(base.first, resize=keep),
        second=dataclasses.replace(base.second, resize=keep),
    )
    lq = degrade(gt, params, cfg)
    reference = torch.nn.functional.avg_pool2d(gt, 4)
    # What is left: q100 JPEG (unit tables) and 8-bit rounding.
    assert (lq - reference).abs().mean() < 1 / 255


def test_degrade_image_crops_and_is_deterministic() -> None:
    hr = np.random.default_rng(0).random((70, 83, 3), dtype=np.float32)
    a = degrade_image(hr, seed=1)
    assert a.shape == (17, 20, 3) and a.dtype == np.float32
    assert np.array_equal(a, degrade_image(hr, seed=1))
    assert not np.array_equal(a, degrade_image(hr, seed=2))
    assert np.abs(a * 255 - np.round(a * 255)).max() < 1e-4
    assert degrade_image(hr, scale=2, seed=1).shape == (35, 41, 3)


def test_degrade_image_on_a_real_crop(soccer_crops: Path) -> None:
    bgr = cv2.imread(str(soccer_crops / "01_players.png"), cv2.IMREAD_COLOR)
    hr = bgr[..., ::-1].astype(np.float32) / 255
    lq = degrade_image(hr, seed=0)
    assert lq.shape == (48, 48, 3)
    area = cv2.resize(hr, (48, 48), interpolation=cv2.INTER_AREA)
    # Degraded, but still the same picture: mean colour close, detail differs.
    assert np.abs(lq.mean(axis=(0, 1)) - area.mean(axis=(0, 1))).max() < 0.1
    assert np.abs(lq - area).mean() > 1 / 255


def test_degrade_image_errors() -> None:
    hr = np.zeros((16, 16, 3), np.float32)
    with pytest.raises(ValueError, match="does not match cfg.scale"):
        degrade_image(hr, scale=2, seed=0, cfg=DegradationConfig(scale=4))
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        degrade_image(hr[..., 0], seed=0)
    with pytest.raises(ValueError, match="smaller than the scale"):
        degrade_image(np.zeros((3, 16, 3), np.float32), seed=0)
    assert degrade_image(np.zeros((4, 4, 3), np.float32), seed=0).shape == (1, 1, 3)
