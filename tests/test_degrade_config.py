"""DegradationConfig / StageConfig: official defaults, validation errors, the flat YAML keys."""

from __future__ import annotations

import dataclasses

import pytest

from soccersr.degrade import BLUR_KERNELS, DegradationConfig, StageConfig

# options/train_realesrgan_x4plus.yml (degradation keys only), as the official file spells them.
OFFICIAL_X4PLUS = {
    "scale": 4,
    "resize_prob": [0.2, 0.7, 0.1],
    "resize_range": [0.15, 1.5],
    "gaussian_noise_prob": 0.5,
    "noise_range": [1, 30],
    "poisson_scale_range": [0.05, 3],
    "gray_noise_prob": 0.4,
    "jpeg_range": [30, 95],
    "second_blur_prob": 0.8,
    "resize_prob2": [0.3, 0.4, 0.3],
    "resize_range2": [0.3, 1.2],
    "gaussian_noise_prob2": 0.5,
    "noise_range2": [1, 25],
    "poisson_scale_range2": [0.05, 2.5],
    "gray_noise_prob2": 0.4,
    "jpeg_range2": [30, 95],
    "blur_kernel_size": 21,
    "kernel_list": ["iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso", "plateau_aniso"],
    "kernel_prob": [0.45, 0.25, 0.12, 0.03, 0.12, 0.03],
    "sinc_prob": 0.1,
    "blur_sigma": [0.2, 3],
    "betag_range": [0.5, 4],
    "betap_range": [1, 2],
    "blur_kernel_size2": 21,
    "kernel_list2": ["iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso", "plateau_aniso"],
    "kernel_prob2": [0.45, 0.25, 0.12, 0.03, 0.12, 0.03],
    "sinc_prob2": 0.1,
    "blur_sigma2": [0.2, 1.5],
    "betag_range2": [0.5, 4],
    "betap_range2": [1, 2],
    "final_sinc_prob": 0.8,
}


def test_defaults_are_the_official_x4plus_values() -> None:
    cfg = DegradationConfig()
    assert cfg.scale == 4 and cfg.final_sinc_prob == 0.8 and cfg.blur_kernel_size == 21
    assert cfg.kernel_sizes == (7, 9, 11, 13, 15, 17, 19, 21)
    assert cfg.first.blur_prob == 1.0 and cfg.second.blur_prob == 0.8
    assert cfg.first.resize_prob == (0.2, 0.7, 0.1) and cfg.second.resize_prob == (0.3, 0.4, 0.3)
    assert cfg.first.resize_range == (0.15, 1.5) and cfg.second.resize_range == (0.3, 1.2)
    assert cfg.first.noise_range == (1, 30) and cfg.second.noise_range == (1, 25)
    assert cfg.first.poisson_scale_range == (0.05, 3) and cfg.second.poisson_scale_range == (0.05, 2.5)
    assert cfg.first.blur_sigma == (0.2, 3) and cfg.second.blur_sigma == (0.2, 1.5)
    for stage in (cfg.first, cfg.second):
        assert stage.kernel_list == BLUR_KERNELS
        assert stage.kernel_prob == (0.45, 0.25, 0.12, 0.03, 0.12, 0.03)
        assert stage.sinc_prob == 0.1 and stage.gray_noise_prob == 0.4 and stage.gaussian_noise_prob == 0.5
        assert stage.jpeg_range == (30, 95) and stage.betag_range == (0.5, 4) and stage.betap_range == (1, 2)


def test_official_flat_keys_give_the_defaults() -> None:
    assert DegradationConfig.from_flat_keys(OFFICIAL_X4PLUS) == DegradationConfig()
    assert DegradationConfig.from_flat_keys({}) == DegradationConfig()


def test_flat_keys_map_the_2_suffix_to_the_second_stage() -> None:
    cfg = DegradationConfig.from_flat_keys(
        {"resize_prob2": [0.5, 0.5, 0.0], "second_blur_prob": 0.3, "noise_range": [2, 5]}
    )
    assert cfg.second.resize_prob == (0.5, 0.5, 0.0)
    assert cfg.second.blur_prob == 0.3
    assert cfg.first.noise_range == (2, 5)
    assert cfg.first.resize_prob == (0.2, 0.7, 0.1)  # untouched


def test_web_prob_is_ours_and_checked_by_name() -> None:
    assert DegradationConfig().web_prob == 0  # the official recipe
    assert DegradationConfig.from_flat_keys({"web_prob": 0.25}).web_prob == 0.25
    with pytest.raises(ValueError, match=r"^web_prob: "):
        DegradationConfig.from_flat_keys({"web_prob": 1.5})


def test_flat_keys_reject_unknown_keys_by_name() -> None:
    with pytest.raises(ValueError, match=r"^queue_size: unknown key"):
        DegradationConfig.from_flat_keys({"queue_size": 180, "resize_prob": [0.2, 0.7, 0.1]})
    with pytest.raises(ValueError, match=r"^blur_prob2: unknown key"):
        DegradationConfig.from_flat_keys({"blur_prob2": 0.5})


def test_flat_key_errors_name_the_official_key() -> None:
    with pytest.raises(ValueError, match=r"^resize_prob2: .*sum to 1"):
        DegradationConfig.from_flat_keys({"resize_prob2": [0.5, 0.4, 0.4]})
    with pytest.raises(ValueError, match=r"^second_blur_prob: "):
        DegradationConfig.from_flat_keys({"second_blur_prob": 1.5})
    with pytest.raises(ValueError, match=r"^jpeg_range\[0\]: input should be greater than or equal to 1, got 0"):
        DegradationConfig.from_flat_keys({"jpeg_range": [0, 95]})
    with pytest.raises(ValueError, match=r"^noise_range2: too few values, got 1"):
        DegradationConfig.from_flat_keys({"noise_range2": [1]})
    with pytest.raises(ValueError, match=r"^blur_kernel_size2: "):
        DegradationConfig.from_flat_keys({"blur_kernel_size2": 15})


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"kernel_prob": (0.5, 0.25, 0.12, 0.03, 0.12, 0.03)}, "kernel_prob"),
        ({"kernel_prob": (0.5, 0.5)}, "kernel_prob"),
        ({"kernel_list": ("iso", "box"), "kernel_prob": (0.5, 0.5)}, "kernel_list"),
        ({"resize_prob": (0.5, 0.5)}, "resize_prob"),
        ({"resize_range": (1.2, 0.3)}, "resize_range"),
        ({"resize_range": (1.1, 1.5)}, "resize_range"),
        ({"jpeg_range": (30, 101)}, "jpeg_range"),
        ({"noise_range": (-1, 30)}, "noise_range"),
        ({"gray_noise_prob": -0.1}, "gray_noise_prob"),
        ({"sinc_prob": 2}, "sinc_prob"),
        ({"blur_sigma": (0.0, 3.0)}, "blur_sigma"),
        ({"betag_range": (1.5, 4.0)}, "betag_range"),
        ({"blur_prob": 1.01}, "blur_prob"),
    ],
)
def test_stage_validation_names_the_field(changes: dict, field: str) -> None:
    with pytest.raises(ValueError, match=rf"^{field}(\[\d\])?: "):  # a bad list item: its index too
        StageConfig(**changes)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"scale": 0}, "scale"),
        ({"final_sinc_prob": 1.5}, "final_sinc_prob"),
        ({"blur_kernel_size": 20}, "blur_kernel_size"),
        ({"kernel_range": (8, 21)}, "kernel_range"),
        ({"kernel_range": (7, 23)}, "kernel_range"),
    ],
)
def test_config_validation_names_the_field(changes: dict, field: str) -> None:
    with pytest.raises(ValueError, match=rf"^{field}: "):
        DegradationConfig(**changes)


def test_configs_are_frozen_and_lists_become_tuples() -> None:
    stage = StageConfig(resize_prob=[0.3, 0.4, 0.3])  # type: ignore[arg-type]
    assert stage.resize_prob == (0.3, 0.4, 0.3)
    hash(stage)
    with pytest.raises(dataclasses.FrozenInstanceError):
        stage.sinc_prob = 0.5  # type: ignore[misc]
