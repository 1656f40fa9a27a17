"""Calibrate the VGG16 perceptual weight: perceptual vs L1 gradient proportions on real soccer patches.

The official recipe weighs L1 1.0 and a VGG19 perceptual loss 1.0 (torchvision's weights, ImageNet
mean / std input). Our backbone is the Oxford VGG16 on Caffe input (x255 minus the means), whose
features are far larger, so weight 1.0 would give the perceptual term a much larger share of G's
gradient than the official recipe gives it. This script measures, at the recipe's settings (the
training degradation, batch 4 of 128x128 GT, USM targets, G = the fine-tune's start), the norms of
the gradients of each loss with respect to G's output image:

    r_l1    = ||d L1 / d SR||
    r_vgg16 = ||d P_vgg16,caffe(weight 1) / d SR||

The official proportion r_vgg19 / r_l1 cannot be measured here (no VGG19 weights). It is derived:

1. Input scale. torchvision's input is (x - mean) / std with 255 * mean = (123.7, 116.3, 103.5), the
   Caffe means, and 255 * std = (58.4, 57.1, 57.4). So torchvision's input is Caffe's divided by
   s_in = 57.6 (their mean 255 * std): the same images, the same offsets, 57.6x smaller.
2. A ReLU network is positively homogeneous in its input apart from its biases, so two ImageNet VGGs of
   the same training recipe carry that factor to every feature map and to the gradient of an L1
   feature loss. The biases' share is measured below: the Oxford VGG16 on its Caffe input, and on
   the input divided by 57.6 with its biases divided by 57.6 too, give gradients 57.6x apart exactly;
   with the biases kept, the ratio shows how far from homogeneous the net is at these taps.
3. Architecture. VGG19 taps conv3_4 / conv4_4 / conv5_4 (one conv deeper per block) where VGG16 taps
   conv3_3 / conv4_3 / conv5_3. The structure's effect is measured with both networks He-initialised
   (torchvision's init, --seeds each) on torchvision's input: structure = r_vgg19,random / r_vgg16,random.

Estimate: r_vgg19 = r_vgg16 / s_in * structure, and the VGG16 weight that restores the official
proportion is w = (r_vgg19 / r_l1) / (r_vgg16 / r_l1) = structure / s_in.

    python recipes/soccer_x4plus/calibrate_perceptual.py --data .devrun/soccer --vgg16 .devrun/cache/vgg16_imagenet.safetensors
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import torch

from soccersr.data.dataset import HRImageDataset
from soccersr.degrade import DegradationConfig, degrade, paired_random_crop, sample_params, usm_sharp
from soccersr.train.config import OFFICIAL_LAYER_WEIGHTS
from soccersr.train.losses import PerceptualLoss, l1_loss
from soccersr.train.vgg import IMAGENET_STD, VGG16_LAYER_WEIGHTS, VGGFeatures, build_vgg

S_IN = 255 * sum(IMAGENET_STD) / 3  # 57.6: torchvision's input = Caffe's / S_IN


def grad_norm(loss_fn, sr: torch.Tensor, target: torch.Tensor) -> tuple[float, float]:
    """(loss value, L2 norm of d loss / d sr)."""
    x = sr.detach().clone().requires_grad_(True)
    loss = loss_fn(x, target)
    (grad,) = torch.autograd.grad(loss, x)
    return float(loss), float(grad.norm())


def random_vgg(vgg_type: str, layers: dict[str, float], seed: int) -> PerceptualLoss:
    net = VGGFeatures(tuple(layers), vgg_type=vgg_type, input_norm="imagenet")
    generator = torch.Generator().manual_seed(seed)
    for m in net.features:  # torchvision's VGG init: kaiming normal, fan_out, zero bias
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu", generator=generator)
            torch.nn.init.zeros_(m.bias)
    return PerceptualLoss(net, layers, 1.0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path(".devrun/soccer"), help="prepare.py's output folder")
    parser.add_argument("--vgg16", type=Path, required=True, help="soccersr vgg import's file")
    parser.add_argument("--model", default="soccer-x4plus", help="G: the fine-tune's start (default soccer-x4plus)")
    parser.add_argument("--batches", type=int, default=6)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--gt-size", type=int, default=128)
    parser.add_argument("--crop-pad", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--seeds", type=int, default=3, help="random initialisations per structure (default 3)")
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    args = parser.parse_args(argv)
    torch.manual_seed(args.seed)

    from soccersr.weights import load_model

    g = load_model(args.model).net.eval()
    train = args.data / "train"
    dataset = HRImageDataset(
        train / "meta_info.txt", train, crop_pad_size=args.crop_pad, use_hflip=True, use_rot=False, seed=args.seed
    )
    vgg16 = PerceptualLoss(
        build_vgg(tuple(VGG16_LAYER_WEIGHTS), weights=args.vgg16, allow_random=False, vgg_type="vgg16"),
        VGG16_LAYER_WEIGHTS,
        1.0,
    )
    # The same Oxford net made exactly homogeneous in the input scale (biases / S_IN), on input / S_IN.
    vgg16_scaled = PerceptualLoss(
        build_vgg(tuple(VGG16_LAYER_WEIGHTS), weights=args.vgg16, allow_random=False, vgg_type="vgg16"),
        VGG16_LAYER_WEIGHTS,
        1.0,
    )
    vgg16_scaled.vgg.std.mul_(S_IN)
    vgg16_nobias = PerceptualLoss(
        build_vgg(tuple(VGG16_LAYER_WEIGHTS), weights=args.vgg16, allow_random=False, vgg_type="vgg16"),
        VGG16_LAYER_WEIGHTS,
        1.0,
    )
    vgg16_nobias.vgg.std.mul_(S_IN)
    for m in vgg16_scaled.vgg.features:
        if isinstance(m, torch.nn.Conv2d):
            m.bias.div_(S_IN)
    random19 = [random_vgg("vgg19", dict(OFFICIAL_LAYER_WEIGHTS), seed) for seed in range(args.seeds)]
    random16 = [random_vgg("vgg16", dict(VGG16_LAYER_WEIGHTS), seed) for seed in range(args.seeds)]

    cfg = DegradationConfig()
    generator = torch.Generator().manual_seed(args.seed)
    rows = []
    order = torch.randperm(len(dataset), generator=generator).tolist()
    for b in range(args.batches):
        items = [dataset[i]["gt"] for i in order[b * args.batch : (b + 1) * args.batch]]
        gt = torch.stack([t if torch.is_tensor(t) else torch.from_numpy(t) for t in items])
        with torch.no_grad():
            sharp = usm_sharp(gt)
            lq = degrade(sharp, sample_params(cfg, gt.shape[0], generator=generator), cfg)
            (gt,), lq = paired_random_crop((gt,), lq, args.gt_size, 4, generator=generator)
            target = usm_sharp(gt)  # l1_gt_usm and percep_gt_usm: both targets are the sharpened GT
            sr = g(lq).clamp(0, 1)
        l1_value, l1_grad = grad_norm(l1_loss, sr, target)
        p16_value, p16_grad = grad_norm(vgg16, sr, target)
        _, scaled_grad = grad_norm(vgg16_scaled, sr, target)
        _, nobias_grad = grad_norm(vgg16_nobias, sr, target)
        r19 = statistics.mean(grad_norm(p, sr, target)[1] for p in random19)
        r16 = statistics.mean(grad_norm(p, sr, target)[1] for p in random16)
        row = {
            "l1": l1_value,
            "l1_grad": l1_grad,
            "p16": p16_value,
            "p16_grad": p16_grad,
            "p16_homogeneous_grad": scaled_grad,
            "p16_small_input_grad": nobias_grad,
            "random19_grad": r19,
            "random16_grad": r16,
        }
        rows.append(row)
        print(f"batch {b}: " + "  ".join(f"{k} {v:.4g}" for k, v in row.items()), flush=True)

    mean = {k: statistics.mean(r[k] for r in rows) for k in rows[0]}
    ratio16 = mean["p16_grad"] / mean["l1_grad"]
    homogeneous = mean["p16_grad"] / mean["p16_homogeneous_grad"]
    bias_effect = mean["p16_grad"] / mean["p16_small_input_grad"]
    structure = mean["random19_grad"] / mean["random16_grad"]
    weight = structure / S_IN
    result = {
        "mean": mean,
        "s_in": S_IN,
        "ratio_vgg16_caffe_to_l1": ratio16,
        "check_homogeneous_scale": homogeneous,
        "input_scale_effect_with_biases": bias_effect,
        "structure_vgg19_over_vgg16": structure,
        "chosen_weight": weight,
        "estimated_official_ratio": ratio16 * weight,
        "loss_ratio_at_chosen_weight": mean["p16"] * weight / mean["l1"],
    }
    print(json.dumps(result, indent=1))
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, **result}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
