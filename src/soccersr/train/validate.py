"""Validation during training: PSNR / SSIM (Y channel, border = scale) on fixed LQ/HR pairs, sample PNGs.

The metric definitions are the evaluation's (``soccersr.metrics``, below both): 8-bit
quantised images, BT.601 Y, ``crop_border`` = the scale, BasicSR's SSIM window.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset
from tqdm import tqdm

from soccersr.io.images import DecodedImage, write_image
from soccersr.metrics import psnr, ssim

log = logging.getLogger(__name__)


def _upscale(net: Callable[[Tensor], Tensor], lq: Tensor, *, size_multiple: int) -> Tensor:
    """Run ``net`` on (1, 3, h, w), reflect-padding to ``size_multiple`` (x2 / x1 RRDBNet) and cropping back."""
    h, w = lq.shape[-2:]
    pad_h, pad_w = (-h) % size_multiple, (-w) % size_multiple
    if pad_h or pad_w:
        lq = F.pad(lq, (0, pad_w, 0, pad_h), mode="reflect")
    out = net(lq)
    s = out.shape[-2] // lq.shape[-2]
    return out[..., : h * s, : w * s]


@torch.no_grad()
def validate(
    net: torch.nn.Module,
    dataset: Dataset,
    *,
    device: torch.device,
    scale: int,
    iteration: int,
    image_dir: Path | None,
    size_multiple: int = 1,
) -> dict[str, float]:
    """Mean PSNR / SSIM of ``net`` over ``dataset`` items ``{"lq", "gt", "name"}``.

    Runs in float32 (metrics should not move with the training precision). With ``image_dir``,
    each output is saved as ``image_dir/<name>/<name>_<iteration>.png`` (the BasicSR layout).
    """
    was_training = net.training
    net.eval()
    psnrs, ssims = [], []
    # disable=None: a bar on a terminal only; leave=False: the training bar stays the one on screen.
    images = tqdm(
        range(len(dataset)),
        desc="validation",
        unit="image",
        leave=False,
        disable=None,  # type: ignore[arg-type]
        dynamic_ncols=True,
    )
    try:
        for index in images:
            item = dataset[index]
            lq = item["lq"][None].to(device)
            sr = _upscale(net, lq, size_multiple=size_multiple).float().clamp_(0, 1)
            sr_np = sr[0].permute(1, 2, 0).cpu().numpy()
            gt_np = item["gt"].permute(1, 2, 0).numpy()
            if sr_np.shape != gt_np.shape:
                raise ValueError(f"validation image {item['name']}: output {sr_np.shape} but HR {gt_np.shape}")
            psnrs.append(psnr(sr_np, gt_np, crop_border=scale))
            ssims.append(ssim(sr_np, gt_np, crop_border=scale))
            if image_dir is not None:
                _save_png(image_dir / item["name"] / f"{item['name']}_{iteration}.png", sr_np)
    finally:
        images.close()
        net.train(was_training)
    return {"psnr": float(np.mean(psnrs)), "ssim": float(np.mean(ssims))}


def _save_png(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)  # a folder that cannot be made stops the run, as before
    try:
        write_image(path, DecodedImage(rgb))
    except (OSError, ValueError) as e:
        log.warning("%s: could not write the validation image (%s)", path, e)
