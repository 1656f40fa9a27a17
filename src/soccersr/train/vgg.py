"""VGG19 feature extractor for the perceptual loss, loadable from torchvision's ImageNet file.

The module is a plain ``features`` ``nn.Sequential`` whose parameter names (``features.N.weight``)
are torchvision's, so ``vgg19-dcbb9e9d.pth`` loads with ``weights_only=True`` and no torchvision
import. ImageNet weights cannot be downloaded here: they come from a configured path or from the
torch hub cache; without them the perceptual loss refuses to run (unless explicitly allowed for tests).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Mapping

import torch
from torch import nn

from soccersr.errors import SoccersrError

log = logging.getLogger(__name__)

VGG19_FILE = "vgg19-dcbb9e9d.pth"
VGG19_URL = "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth"

# torchvision's VGG19 "E" configuration: output channels per conv, "M" = 2x2 max-pool.
_VGG19_CFG: tuple[int | str, ...] = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
                                     512, 512, 512, 512, "M", 512, 512, 512, 512, "M")


def _layer_names() -> tuple[str, ...]:
    names: list[str] = []
    block, conv = 1, 1
    for item in _VGG19_CFG:
        if item == "M":
            names.append(f"pool{block}")
            block, conv = block + 1, 1
        else:
            names += [f"conv{block}_{conv}", f"relu{block}_{conv}"]
            conv += 1
    return tuple(names)


VGG19_LAYERS: tuple[str, ...] = _layer_names()
"""Names of ``features[i]`` in order: conv1_1, relu1_1, conv1_2, ..., pool5 (37 layers)."""

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class VGGWeightsError(SoccersrError, RuntimeError):
    """The VGG19 ImageNet weights are missing or unreadable; the message says where to put them."""


def default_weights_path() -> Path:
    """Where torchvision would cache the file: ``torch.hub.get_dir()/checkpoints/vgg19-dcbb9e9d.pth``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / VGG19_FILE


def find_weights(configured: str | Path | None) -> Path | None:
    """The configured file (which must exist), else the hub-cache file if present, else None."""
    if configured is not None:
        path = Path(configured).expanduser()
        if not path.is_file():
            raise VGGWeightsError(f"{path}: VGG19 weights file not found (path.vgg_weights)")
        return path
    cached = default_weights_path()
    return cached if cached.is_file() else None


def missing_weights_message() -> str:
    return (
        f"VGG19 ImageNet weights not found: the perceptual loss needs torchvision's {VGG19_FILE} "
        f"({VGG19_URL}); put it at {default_weights_path()} or set path.vgg_weights in the config "
        "(or set train.perceptual_opt.perceptual_weight to 0 to train without the perceptual loss)"
    )


class VGG19Features(nn.Module):
    """VGG19 ``features[: last + 1]`` returning the named intermediate outputs.

    Args:
        layers: names from ``VGG19_LAYERS`` to return (e.g. the pre-ReLU "conv5_4").
        use_input_norm: normalise [0, 1] RGB input with the ImageNet mean / std.
        range_norm: map [-1, 1] input to [0, 1] first.

    Shape:
        (B, 3, H, W) RGB -> {name: (B, C, H', W')}.
    """

    def __init__(self, layers: tuple[str, ...], *, use_input_norm: bool = True, range_norm: bool = False) -> None:
        super().__init__()
        unknown = [name for name in layers if name not in VGG19_LAYERS]
        if unknown:
            raise ValueError(f"unknown VGG19 layer {unknown[0]!r}: expected names like conv3_4 or relu2_2")
        self.layers = tuple(layers)
        self.use_input_norm = use_input_norm
        self.range_norm = range_norm
        last = max(VGG19_LAYERS.index(name) for name in layers)
        modules: list[nn.Module] = []
        in_ch = 3
        for item in _VGG19_CFG:
            if item == "M":
                modules.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                # Not in-place: the pre-ReLU conv outputs are returned and must stay intact.
                modules += [nn.Conv2d(in_ch, int(item), 3, padding=1), nn.ReLU(inplace=False)]
                in_ch = int(item)
        self.features = nn.Sequential(*modules[: last + 1])
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.range_norm:
            x = (x + 1) / 2
        if self.use_input_norm:
            x = (x - self.mean) / self.std
        wanted = set(self.layers)
        out: dict[str, torch.Tensor] = {}
        for name, layer in zip(VGG19_LAYERS, self.features):
            x = layer(x)
            if name in wanted:
                out[name] = x
        return out

    def train(self, mode: bool = True) -> VGG19Features:
        # Frozen feature extractor: always in eval mode (no dropout/BN here, but keep it explicit).
        return super().train(False)

    def load_torchvision(self, path: str | Path) -> None:
        """Load ``features.*`` from torchvision's ImageNet VGG19 file (classifier keys are ignored)."""
        path = Path(path)
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - any unreadable file gets the same one-line message
            raise VGGWeightsError(f"{path}: cannot read VGG19 weights ({type(e).__name__}: {e})") from None
        if not isinstance(state, Mapping):
            raise VGGWeightsError(f"{path}: not a state dict")
        own = self.state_dict()
        picked = {k: v for k, v in state.items() if k in own}
        missing = [k for k in own if k not in picked]
        if missing:
            raise VGGWeightsError(f"{path}: not a torchvision VGG19 file (missing {missing[0]})")
        for key, value in picked.items():
            if tuple(value.shape) != tuple(own[key].shape):
                raise VGGWeightsError(f"{path}: {key} has shape {tuple(value.shape)}, expected {tuple(own[key].shape)}")
        self.load_state_dict(picked, strict=True)

    def init_random(self, seed: int = 0) -> None:
        """Deterministic random weights (tests only: the loss is then not perceptually meaningful)."""
        generator = torch.Generator().manual_seed(seed)
        for m in self.features:
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu", generator=generator)
                nn.init.zeros_(m.bias)


def build_vgg(layers: tuple[str, ...], *, weights: str | Path | None, allow_random: bool,
              use_input_norm: bool = True, range_norm: bool = False) -> VGG19Features:
    """A frozen VGG19 with ImageNet weights from ``weights`` or the hub cache.

    Raises ``VGGWeightsError`` when no file is found, unless ``allow_random`` (then it warns loudly).
    """
    net = VGG19Features(layers, use_input_norm=use_input_norm, range_norm=range_norm)
    path = find_weights(weights)
    if path is None:
        if not allow_random:
            raise VGGWeightsError(missing_weights_message())
        log.warning("!" * 80)
        log.warning("PERCEPTUAL LOSS USES A RANDOM VGG19 (train.allow_random_vgg: true): for tests only, "
                    "the trained model will not be good")
        log.warning("!" * 80)
        net.init_random()
    else:
        net.load_torchvision(path)
        log.info("VGG19 weights: %s", path)
    return net

