"""Real-ESRGAN high-order degradation: synthesise low-quality training inputs from HR images.

Typical training use (all on the training device)::

    params = sample_params(cfg, gt.shape[0], generator=gen)      # CPU, cheap
    lq = degrade(usm_sharp(gt), params, cfg)                      # (B,3,H/4,W/4), k/255 levels
    (gt,), lq = paired_random_crop((gt,), lq, 256, cfg.scale, generator=gen)
    lq, gt = pool.exchange(lq, gt)
    gt_usm = usm_sharp(gt)

and ``degrade_image(hr, scale=4, seed=s)`` for one numpy image (the ``soccersr degrade`` command).
"""

from soccersr.degrade.config import BLUR_KERNELS, KERNEL_TYPES, DegradationConfig, StageConfig
from soccersr.degrade.crop import paired_random_crop
from soccersr.degrade.jpeg import jpeg_compress
from soccersr.degrade.pipeline import (
    DegradationParams,
    NoiseParams,
    ResizeParams,
    StageParams,
    degrade,
    degrade_image,
    sample_params,
)
from soccersr.degrade.pool import TrainingPairPool
from soccersr.degrade.usm import usm_sharp

__all__ = [
    "BLUR_KERNELS",
    "KERNEL_TYPES",
    "DegradationConfig",
    "DegradationParams",
    "NoiseParams",
    "ResizeParams",
    "StageConfig",
    "StageParams",
    "TrainingPairPool",
    "degrade",
    "degrade_image",
    "jpeg_compress",
    "paired_random_crop",
    "sample_params",
    "usm_sharp",
]
