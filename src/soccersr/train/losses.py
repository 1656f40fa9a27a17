"""The Real-ESRGAN losses: L1 pixel loss, VGG perceptual loss (VGG19 or VGG16), vanilla GAN loss.

Semantics follow BasicSR's ``L1Loss``, ``PerceptualLoss`` and ``GANLoss``: mean reductions, the
perceptual loss is ``perceptual_weight * sum_k w_k * L1(vgg_k(sr), vgg_k(gt))`` on pre-ReLU
features, and the GAN weight applies to the generator only (the discriminator's loss has weight 1).
Losses are computed in float32 even under bf16 autocast.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from soccersr.train.vgg import VGGFeatures


def l1_loss(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Mean absolute error, in float32; with ``weight`` (B, 1, H, W), the weighted mean.

    The weighted mean divides by the mean weight, so a loss that weighs players 4x stays on the
    scale of the plain L1 and the perceptual weight calibrated against it still holds.
    """
    if weight is None:
        return F.l1_loss(pred.float(), target.float())
    weight = weight.float()
    return ((pred.float() - target.float()).abs() * weight).mean() / weight.mean()


class PerceptualLoss(nn.Module):
    """Weighted L1 distance between VGG features of the output and of the target.

    Args:
        vgg: the frozen feature extractor (its ``layers`` are the keys of ``layer_weights``).
        layer_weights: weight per layer name.
        perceptual_weight: overall weight.
    """

    def __init__(self, vgg: VGGFeatures, layer_weights: Mapping[str, float], perceptual_weight: float) -> None:
        super().__init__()
        if set(vgg.layers) != set(layer_weights):
            raise ValueError(f"VGG layers {sorted(vgg.layers)} differ from the loss layers {sorted(layer_weights)}")
        self.vgg = vgg
        self.layer_weights = dict(layer_weights)
        self.perceptual_weight = perceptual_weight

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        out_feats = self.vgg(output)
        with torch.no_grad():  # the target is a constant: no graph for its features
            target_feats = self.vgg(target)
        total = output.new_zeros((), dtype=torch.float32)
        for name, weight in self.layer_weights.items():
            total = total + weight * l1_loss(out_feats[name], target_feats[name])
        return total * self.perceptual_weight


def gan_loss(
    logits: torch.Tensor, target_is_real: bool, *, real_label: float = 1.0, fake_label: float = 0.0
) -> torch.Tensor:
    """Vanilla GAN loss: binary cross-entropy with logits against a constant label map (mean)."""
    logits = logits.float()
    label = real_label if target_is_real else fake_label
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, label))
