"""Training configuration: the BasicSR / Real-ESRGAN YAML layout, parsed into frozen dataclasses.

A Real-ESRGAN user's ``options/*.yml`` keys mean the same here (``train.optim_g.lr``,
``path.pretrain_network_g``, ``datasets.train.resize_prob2``, ...). Everything is validated once,
at the edge: an unknown key, a wrong type or a bad value raises ``ConfigError`` naming the full
key path (``train.optim_g.lrr: unknown key``). Our own additions are marked "soccersr" below.

The official files put the degradation keys, ``gt_size``, ``queue_size`` and the ``*_gt_usm``
flags at the top level; they are accepted there too and moved to ``datasets.train`` / ``train``.
"""

from __future__ import annotations

import inspect
import types
from collections.abc import Mapping, Sequence
from dataclasses import field, fields, is_dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, get_type_hints

from pydantic import ConfigDict, Field, create_model

from soccersr.archs import GENERATORS, UNetDiscriminatorSN, generator_spec
from soccersr.degrade.config import DegradationConfig, flat_key_path, flatten, nest_flat_keys
from soccersr.schema import (
    Bool,
    ConfigError,
    Float,
    Int,
    Invalid,
    Loc,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    config_dataclass,
    parse,
    require,
)

Stage = Literal["RealESRNetModel", "RealESRGANModel"]
ESRNET: Stage = "RealESRNetModel"
ESRGAN: Stage = "RealESRGANModel"

# Pre-ReLU VGG19 layers of the official perceptual loss and their weights.
OFFICIAL_LAYER_WEIGHTS: Mapping[str, float] = types.MappingProxyType(
    {"conv1_2": 0.1, "conv2_2": 0.1, "conv3_4": 1.0, "conv4_4": 1.0, "conv5_4": 1.0}
)

# Official keys with no meaning here: named in the error so users know it is not a typo of theirs.
_OFFICIAL_UNUSED = frozenset(
    {
        "io_backend",
        "use_shuffle",
        "dataset_enlarge_ratio",
        "prefetch_mode",
        "wandb",
        "dist_params",
        "metrics",
        "pin_memory",
        "high_order_degradation",
        "suffix",
    }
)

Fraction = Annotated[Float, Field(ge=0, lt=1)]
ParamKey = Literal["params", "params_ema"]

# --------------------------------------------------------------------------------------------
# The schema
# --------------------------------------------------------------------------------------------


@config_dataclass
class TrainDataConfig:
    """``datasets.train``: HR images, crops, batches and the degradation recipe."""

    dataroot_gt: str
    """Folder the ``meta_info`` paths are relative to."""
    meta_info: str
    """Text file with one HR image path per line (``soccersr meta`` writes it)."""
    name: str = "train"
    type: Literal["RealESRGANDataset"] = "RealESRGANDataset"
    gt_size: PositiveInt = 256
    """HR crop side fed to the networks (LQ side = gt_size / scale)."""
    queue_size: PositiveInt = 180
    """Training-pair pool size; a multiple of ``batch_size_per_gpu``."""
    use_hflip: Bool = True
    use_rot: Bool = False
    crop_pad_size: PositiveInt = 400
    """soccersr: every HR image is cropped / padded to this square first (official: hard-coded 400)."""
    batch_size_per_gpu: PositiveInt = 12
    num_worker_per_gpu: NonNegativeInt = 5
    on_bad_image: Literal["skip", "error"] = "skip"
    """soccersr: an unreadable HR image is skipped (logged) or stops the run."""
    dataroot_mask: str | None = None
    """soccersr: a folder of player masks, one per HR image at the same relative path (a PNG, white on
    players; the soccer recipe's prepare.py renders them from YOLO boxes), for ``train.pixel_opt.player_weight``."""
    degradation: DegradationConfig = field(default_factory=DegradationConfig)
    """Built from the official flat keys (``resize_prob``, ``noise_range2``, ``final_sinc_prob``, ...)."""

    def __post_init__(self) -> None:
        require(
            self.queue_size % self.batch_size_per_gpu == 0,
            "queue_size",
            f"must be a positive multiple of batch_size_per_gpu ({self.batch_size_per_gpu}), got {self.queue_size}",
        )
        require(
            self.crop_pad_size >= self.gt_size,
            "crop_pad_size",
            f"must be >= gt_size ({self.gt_size}), got {self.crop_pad_size}",
        )


@config_dataclass
class ValDataConfig:
    """``datasets.val``: a fixed set of LQ/HR pairs with matching file names."""

    dataroot_lq: str
    dataroot_gt: str
    name: str = "val"
    type: Literal["PairedImageDataset"] = "PairedImageDataset"


@config_dataclass
class DatasetsConfig:
    train: TrainDataConfig
    val: ValDataConfig | None = None


# The inference table: what trains is what loads.
GENERATOR_CLASSES: Mapping[str, type] = types.MappingProxyType({spec.name: spec.module for spec in GENERATORS})
DISCRIMINATOR_CLASSES: Mapping[str, type] = types.MappingProxyType({"UNetDiscriminatorSN": UNetDiscriminatorSN})
# A network argument typed int is a count or a size, so it must be positive.
_ARGUMENT_TYPES = {int: PositiveInt, float: Float, bool: Bool, str: str}


@config_dataclass
class NetworkConfig:
    """``network_g``: ``type`` plus the constructor's keyword arguments (YAML: next to ``type``)."""

    type: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    classes: ClassVar[Mapping[str, type]] = GENERATOR_CLASSES

    def __post_init__(self) -> None:
        require(self.type in self.classes, "type", f"expected one of {list(self.classes)}, got {self.type!r}")
        network = self.classes[self.type]
        hints = get_type_hints(network.__init__)
        arguments = create_model(
            network.__name__,
            __config__=ConfigDict(extra="forbid"),
            **{
                name: (_ARGUMENT_TYPES[hints[name]], p.default)
                for name, p in inspect.signature(network).parameters.items()
            },
        )
        kwargs = arguments.model_validate(dict(self.kwargs)).model_dump(exclude_unset=True)
        object.__setattr__(self, "kwargs", types.MappingProxyType(kwargs))
        import torch

        with torch.device("meta"):  # checks the arguments without allocating or initialising weights
            network(**kwargs)


@config_dataclass
class DiscriminatorConfig(NetworkConfig):
    """``network_d``: a discriminator ``type`` plus its keyword arguments."""

    classes: ClassVar[Mapping[str, type]] = DISCRIMINATOR_CLASSES


@config_dataclass
class PathConfig:
    pretrain_network_g: str | None = None
    """A built-in model name (``x4plus``) or a .pth / .safetensors / .pdparams file."""
    param_key_g: ParamKey = "params_ema"
    strict_load_g: Bool = True
    pretrain_network_d: str | None = None
    param_key_d: ParamKey = "params"
    strict_load_d: Bool = True
    resume_state: str | None = None
    """A training-state file to continue from (same as ``--resume``)."""
    experiments_root: str = "experiments"
    """The run writes to ``experiments_root/name``."""
    vgg_weights: str | None = None
    """soccersr: torchvision's ``vgg19-dcbb9e9d.pth`` (default: the torch hub cache), or for vgg16 the file of
    ``soccersr vgg import`` (default: ``vgg16_imagenet.safetensors`` in the soccersr cache)."""


@config_dataclass
class OptimConfig:
    type: Literal["Adam"] = "Adam"
    lr: PositiveFloat = 1e-4
    weight_decay: NonNegativeFloat = 0.0
    betas: tuple[Fraction, Fraction] = (0.9, 0.99)


@config_dataclass
class SchedulerConfig:
    type: Literal["MultiStepLR"] = "MultiStepLR"
    milestones: tuple[PositiveInt, ...] = (400000,)
    gamma: Annotated[Float, Field(gt=0, le=1)] = 0.5

    def __post_init__(self) -> None:
        require(
            list(self.milestones) == sorted(self.milestones),
            "milestones",
            f"must be increasing positive iterations, got {list(self.milestones)}",
        )


@config_dataclass
class PixelLossConfig:
    type: Literal["L1Loss"] = "L1Loss"
    loss_weight: NonNegativeFloat = 1.0
    reduction: Literal["mean"] = "mean"
    player_weight: Annotated[Float, Field(ge=1)] = 1.0
    """soccersr: the L1 weight of player pixels, from the masks in ``datasets.train.dataroot_mask``
    (the weighted mean keeps the loss on the plain L1's scale); 1: the plain L1."""


@config_dataclass
class PerceptualLossConfig:
    type: Literal["PerceptualLoss"] = "PerceptualLoss"
    layer_weights: Mapping[str, NonNegativeFloat] = field(default_factory=lambda: OFFICIAL_LAYER_WEIGHTS)
    vgg_type: Literal["vgg19", "vgg16"] = "vgg19"
    """vgg19: torchvision's file; vgg16 (soccersr): the Oxford file from ``soccersr vgg import``."""
    use_input_norm: Bool = True
    input_norm: Literal["auto", "imagenet", "caffe"] = "auto"
    """soccersr: how ``use_input_norm`` normalises: "imagenet" mean / std (torchvision's VGG19), "caffe"
    x255 minus the RGB means, no std (the Oxford VGG16); "auto": the one of ``vgg_type``'s file."""
    range_norm: Bool = False
    perceptual_weight: NonNegativeFloat = 1.0
    style_weight: Float = 0.0
    criterion: Literal["l1"] = "l1"

    def __post_init__(self) -> None:
        from soccersr.train.vgg import VGG_LAYERS

        example = "conv3_4" if self.vgg_type == "vgg19" else "conv3_3"
        for name in self.layer_weights:
            require(
                name in VGG_LAYERS[self.vgg_type],
                f"layer_weights.{name}",
                f"not a {self.vgg_type.upper()} layer (e.g. {example}, relu2_2)",
            )
        require(len(self.layer_weights) > 0, "layer_weights", "must name at least one layer")
        require(self.style_weight == 0, "style_weight", "the style (Gram) loss is not supported; set it to 0")


@config_dataclass
class GANLossConfig:
    type: Literal["GANLoss"] = "GANLoss"
    gan_type: Literal["vanilla"] = "vanilla"
    real_label_val: Float = 1.0
    fake_label_val: Float = 0.0
    loss_weight: NonNegativeFloat = 0.1


@config_dataclass
class TrainConfig:
    """``train``: optimisation, losses, EMA; plus soccersr's speed switches."""

    total_iter: PositiveInt
    optim_g: OptimConfig = field(default_factory=OptimConfig)
    optim_d: OptimConfig | None = None
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    warmup_iter: Int = -1
    """Linear learning-rate warm-up over this many iterations (-1: none)."""
    ema_decay: Fraction = 0.999
    """Decay of the generator's EMA (``params_ema``); 0 disables it."""
    pixel_opt: PixelLossConfig | None = None
    perceptual_opt: PerceptualLossConfig | None = None
    gan_opt: GANLossConfig | None = None
    net_d_iters: PositiveInt = 1
    """G is updated every ``net_d_iters`` iterations (D every iteration)."""
    net_d_init_iters: NonNegativeInt = 0
    """D-only warm-up: G is not updated during the first ``net_d_init_iters`` iterations."""
    gt_usm: Bool | None = None
    """Real-ESRNet only: sharpen (USM) the GT before degrading it and use it as the L1 target (default true)."""
    l1_gt_usm: Bool | None = None
    """Real-ESRGAN only: targets of the three losses are the USM-sharpened GT (defaults true, true, false)."""
    percep_gt_usm: Bool | None = None
    gan_gt_usm: Bool | None = None
    texture_losses_off_players: Bool = False
    """soccersr: the generator's perceptual and GAN losses see the player pixels (``datasets.train.dataroot_mask``)
    as their targets' pixels, so no texture gradient reaches players and only the L1 shapes them: the
    texture goes to grass, crowds and boards while the players stay as faithful as the L1 makes them."""
    precision: Literal["auto", "bf16", "fp32"] = "auto"
    """soccersr: "auto" = bf16 autocast on CUDA and on CPUs with native bf16 (AMX / AVX512_BF16), fp32 elsewhere."""
    channels_last: Literal["auto"] | Bool = "auto"
    """soccersr: "auto" = channels_last memory format wherever the step runs in bf16."""
    compile: Bool = False
    """soccersr: torch.compile G, D and the VGG feature extractor."""
    allow_random_vgg: Bool = False
    """soccersr, tests only: run the perceptual loss with a random VGG19 when no weights file exists."""
    time_limit_min: PositiveFloat | None = None
    """soccersr: stop early, as if total_iter were reached (checkpoint, export, validation), once this
    many minutes have passed since the loop started; for GPU sessions of fixed length."""


@config_dataclass
class ValConfig:
    val_freq: PositiveInt = 5000
    save_img: Bool = True


@config_dataclass
class LoggerConfig:
    print_freq: PositiveInt = 100
    save_checkpoint_freq: PositiveInt = 5000
    use_tb_logger: Bool = True
    keep_checkpoints: PositiveInt = 1
    """soccersr: training-state files kept (the newest K); exported generators are all kept."""
    save_weights: Literal["ema", "all"] = "ema"
    """soccersr: what ``models/`` gets at each save point: "ema" = ``net_g_<iter>.pth`` with the EMA
    generator only (``params_ema``); "all" = also G's ``params``, a safetensors twin and ``net_d_<iter>.pth``."""


@config_dataclass
class TrainingConfig:
    """The whole run. ``model_type`` picks the stage: Real-ESRNet (L1 only) or Real-ESRGAN (L1 + VGG + GAN)."""

    name: str
    model_type: Stage
    datasets: DatasetsConfig
    network_g: NetworkConfig
    train: TrainConfig
    scale: PositiveInt = 4
    num_gpu: Literal["auto"] | Int = "auto"
    manual_seed: NonNegativeInt = 0
    network_d: DiscriminatorConfig | None = None
    path: PathConfig = field(default_factory=PathConfig)
    val: ValConfig | None = None
    logger: LoggerConfig = field(default_factory=LoggerConfig)

    def __post_init__(self) -> None:
        require(
            bool(self.name) and "/" not in self.name and self.name not in (".", ".."),
            "name",
            f"must be a plain folder name, got {self.name!r}",
        )
        require(self.scale in (1, 2, 4), "scale", f"must be 1, 2 or 4, got {self.scale}")
        require(
            self.datasets.train.gt_size % self.scale == 0,
            "datasets.train.gt_size",
            f"must be a multiple of scale ({self.scale}), got {self.datasets.train.gt_size}",
        )
        require(self.datasets.train.degradation.scale == self.scale, "scale", "differs from the degradation scale")
        net_scale = generator_spec(self.network_g.type).net_scale(self.network_g.kwargs)
        require(net_scale == self.scale, "network_g", f"upsamples x{net_scale} but scale is {self.scale}")
        t = self.train
        if self.model_type == ESRNET:
            require(self.network_d is None, "network_d", "only used by model_type RealESRGANModel")
            for key in ("optim_d", "perceptual_opt", "gan_opt", "l1_gt_usm", "percep_gt_usm", "gan_gt_usm"):
                require(getattr(t, key) is None, f"train.{key}", "only used by model_type RealESRGANModel")
            require(t.pixel_opt is not None, "train.pixel_opt", "required for model_type RealESRNetModel")
        else:
            require(self.network_d is not None, "network_d", "required for model_type RealESRGANModel")
            require(t.optim_d is not None, "train.optim_d", "required for model_type RealESRGANModel")
            require(t.gan_opt is not None, "train.gan_opt", "required for model_type RealESRGANModel")
            require(t.gt_usm is None, "train.gt_usm", "only used by model_type RealESRNetModel (see l1_gt_usm)")
        require(
            (self.val is None) == (self.datasets.val is None),
            "val",
            "datasets.val and val (val_freq) must be given together",
        )
        self._check_player_masks()

    def _check_player_masks(self) -> None:
        pixel = self.train.pixel_opt
        needs_masks = {
            "train.pixel_opt.player_weight": pixel is not None and pixel.player_weight != 1,
            "train.texture_losses_off_players": self.train.texture_losses_off_players,
        }
        for key, used in needs_masks.items():
            if used:
                require(
                    self.datasets.train.dataroot_mask is not None,
                    key,
                    "needs the player masks: set datasets.train.dataroot_mask",
                )
        require(
            not self.train.texture_losses_off_players or self.is_gan,
            "train.texture_losses_off_players",
            "only for model_type RealESRGANModel (Real-ESRNet has no perceptual or GAN loss)",
        )

    @property
    def experiment_dir(self) -> Path:
        return Path(self.path.experiments_root) / self.name

    @property
    def is_gan(self) -> bool:
        return self.model_type == ESRGAN

    # Stage-dependent defaults of the USM flags (official values), resolved in one place.
    @property
    def sharpen_gt_first(self) -> bool:
        """Real-ESRNet: the GT itself is replaced by its USM-sharpened version before degradation."""
        return self.model_type == ESRNET and self.train.gt_usm is not False

    def usm_targets(self) -> tuple[bool, bool, bool]:
        """(l1, perceptual, gan) use the USM-sharpened GT (Real-ESRGAN)."""
        t = self.train
        return (
            t.l1_gt_usm is not False,
            t.percep_gt_usm is not False,
            bool(t.gan_gt_usm),
        )


# --------------------------------------------------------------------------------------------
# The official layout: the one translation between what users write and the schema
# --------------------------------------------------------------------------------------------

_DEGRADATION_KEYS = DegradationConfig.flat_keys() - {"scale"}
_HOISTED_TO_DATA = _DEGRADATION_KEYS | {"gt_size", "queue_size"}
_HOISTED_TO_TRAIN = frozenset({"gt_usm", "l1_gt_usm", "percep_gt_usm", "gan_gt_usm"})
_DEGRADATION = ("datasets", "train", "degradation")


def _section(parent: dict[str, Any], key: str) -> Any:
    """``parent[key]`` as a dict of its own to edit ({} when absent); a non-mapping is left for the schema."""
    value = parent.get(key)
    if value is None or isinstance(value, Mapping):
        value = parent[key] = dict(value or {})
    return value


def _nest_official_layout(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The official layout as the schema's fields: top-level degradation / USM keys go to ``datasets.train`` /
    ``train``, the flat degradation keys become ``degradation``, the network arguments ``kwargs``."""
    raw = dict(raw)
    datasets, train = _section(raw, "datasets"), _section(raw, "train")
    data = _section(datasets, "train") if isinstance(datasets, dict) else None
    for key in [k for k in raw if k in _HOISTED_TO_DATA | _HOISTED_TO_TRAIN]:
        target, where = (data, "datasets.train") if key in _HOISTED_TO_DATA else (train, "train")
        if isinstance(target, dict):
            require(
                target.get(key, raw[key]) == raw[key],
                key,
                f"given both at the top level and in {where} with different values",
            )
            target[key] = raw.pop(key)
    if isinstance(data, dict):
        require("degradation" not in data, "datasets.train.degradation", "unknown key")
        try:
            degradation = nest_flat_keys({k: data.pop(k) for k in list(data) if k in _DEGRADATION_KEYS})
        except Invalid as e:
            raise Invalid(f"datasets.train.{e.key}", e.reason) from None
        data["degradation"] = {**degradation, "scale": raw.get("scale", 4)}
    for name in ("network_g", "network_d"):
        if isinstance(raw.get(name), Mapping):
            kwargs = dict(raw[name])
            raw[name] = {"kwargs": kwargs} | ({"type": kwargs.pop("type")} if "type" in kwargs else {})
    return raw


def _official_key_path(loc: Loc) -> Loc:
    """The key the user wrote for a location in ``TrainingConfig`` (the reverse of ``_nest_official_layout``)."""
    if loc[:4] == (*_DEGRADATION, "scale"):
        return ("scale",)
    if loc[:3] == _DEGRADATION:
        return ("datasets", "train", *flat_key_path(loc[3:]))
    if loc[:1] in (("network_g",), ("network_d",)) and loc[1:2] == ("kwargs",):
        return (loc[0], *loc[2:])
    return loc


def parse_config(raw: Any) -> TrainingConfig:
    """Validate a raw YAML mapping (official layout accepted) into a ``TrainingConfig``."""
    nested = _nest_official_layout(raw) if isinstance(raw, Mapping) else raw
    return parse(TrainingConfig, nested, key_path=_official_key_path, unused_keys=_OFFICIAL_UNUSED)


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def config_to_dict(cfg: Any) -> Any:
    """The config as plain YAML-able data in the official layout ``parse_config`` reads."""
    if isinstance(cfg, NetworkConfig):
        return {"type": cfg.type, **_plain(cfg.kwargs)}
    if isinstance(cfg, TrainDataConfig):
        out = {f.name: config_to_dict(getattr(cfg, f.name)) for f in fields(cfg) if f.name != "degradation"}
        return {**out, **_plain(flatten(cfg.degradation))}
    if is_dataclass(cfg):
        return {f.name: config_to_dict(getattr(cfg, f.name)) for f in fields(cfg) if getattr(cfg, f.name) is not None}
    return _plain(cfg)


# --------------------------------------------------------------------------------------------
# Overrides, loading, saving
# --------------------------------------------------------------------------------------------


def apply_overrides(raw: Mapping[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Apply ``key.path=value`` overrides; values are read with ``yaml.safe_load`` (never eval)."""
    import copy

    import yaml

    out = copy.deepcopy(dict(raw))
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key or any(not part for part in key.split(".")):
            raise ConfigError(f"-o {item!r}: expected key.path=value")
        try:
            value = yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError as e:
            raise ConfigError(f"-o {item!r}: value is not valid YAML ({str(e).splitlines()[0]})") from None
        node = out
        parts = key.split(".")
        for i, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"-o {item!r}: {'.'.join(parts[: i + 1])} is not a mapping")
            node = child
        node[parts[-1]] = value
    return out


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> TrainingConfig:
    """Read, override and validate a YAML config; errors name the file and the key path."""
    import yaml

    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ConfigError(f"{path}: cannot read ({e.strerror or e})") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({' '.join(str(e).split())})") from None
    try:
        return parse_config(apply_overrides(raw or {}, overrides))
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None


def dump_config(cfg: TrainingConfig) -> str:
    """The resolved config as YAML text (re-loadable with ``load_config``)."""
    import yaml

    return yaml.safe_dump(config_to_dict(cfg), sort_keys=False, default_flow_style=None)
