"""Training configuration: the BasicSR / Real-ESRGAN YAML layout, parsed into frozen dataclasses.

A Real-ESRGAN user's ``options/*.yml`` keys mean the same here (``train.optim_g.lr``,
``path.pretrain_network_g``, ``datasets.train.resize_prob2``, ...). Everything is validated once,
at the edge: an unknown key, a wrong type or a bad value raises ``ConfigError`` naming the full
key path (``train.optim_g.lrr: unknown key``). Our own additions are marked "soccersr" below.

The official files put the degradation keys, ``gt_size``, ``queue_size`` and the ``*_gt_usm``
flags at the top level; they are accepted there too and moved to ``datasets.train`` / ``train``.
"""

from __future__ import annotations

import collections.abc
import inspect
import math
import types
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence, Union, get_args, get_origin, get_type_hints

from soccersr.archs import GENERATORS, UNetDiscriminatorSN, generator_spec
from soccersr.degrade.config import DegradationConfig, StageConfig
from soccersr.errors import UsageError

Stage = Literal["RealESRNetModel", "RealESRGANModel"]
ESRNET: Stage = "RealESRNetModel"
ESRGAN: Stage = "RealESRGANModel"

# Pre-ReLU VGG19 layers of the official perceptual loss and their weights.
OFFICIAL_LAYER_WEIGHTS: Mapping[str, float] = types.MappingProxyType(
    {"conv1_2": 0.1, "conv2_2": 0.1, "conv3_4": 1.0, "conv4_4": 1.0, "conv5_4": 1.0}
)

# Official keys with no meaning here: named in the error so users know it is not a typo of theirs.
_OFFICIAL_UNUSED = frozenset(
    {"io_backend", "use_shuffle", "dataset_enlarge_ratio", "prefetch_mode", "wandb", "dist_params",
     "metrics", "pin_memory", "high_order_degradation", "suffix"}
)


class ConfigError(UsageError, ValueError):
    """A bad training configuration; the message names the key path (and the file, when loaded from one)."""


class _Invalid(ValueError):
    """Raised by ``__post_init__`` checks: ``key`` is relative to the dataclass being built."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"{key}: {reason}")
        self.key = key
        self.reason = reason


def _require(ok: bool, key: str, reason: str) -> None:
    if not ok:
        raise _Invalid(key, reason)


# --------------------------------------------------------------------------------------------
# The schema
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainDataConfig:
    """``datasets.train``: HR images, crops, batches and the degradation recipe."""

    dataroot_gt: str
    """Folder the ``meta_info`` paths are relative to."""
    meta_info: str
    """Text file with one HR image path per line (``soccersr meta`` writes it)."""
    name: str = "train"
    type: Literal["RealESRGANDataset"] = "RealESRGANDataset"
    gt_size: int = 256
    """HR crop side fed to the networks (LQ side = gt_size / scale)."""
    queue_size: int = 180
    """Training-pair pool size; a multiple of ``batch_size_per_gpu``."""
    use_hflip: bool = True
    use_rot: bool = False
    crop_pad_size: int = 400
    """soccersr: every HR image is cropped / padded to this square first (official: hard-coded 400)."""
    batch_size_per_gpu: int = 12
    num_worker_per_gpu: int = 5
    on_bad_image: Literal["skip", "error"] = "skip"
    """soccersr: an unreadable HR image is skipped (logged) or stops the run."""
    degradation: DegradationConfig = field(default_factory=DegradationConfig)
    """Built from the official flat keys (``resize_prob``, ``noise_range2``, ``final_sinc_prob``, ...)."""

    def __post_init__(self) -> None:
        _require(self.gt_size > 0, "gt_size", f"must be positive, got {self.gt_size}")
        _require(self.batch_size_per_gpu > 0, "batch_size_per_gpu", f"must be positive, got {self.batch_size_per_gpu}")
        _require(self.num_worker_per_gpu >= 0, "num_worker_per_gpu", f"must be >= 0, got {self.num_worker_per_gpu}")
        _require(self.queue_size > 0 and self.queue_size % self.batch_size_per_gpu == 0, "queue_size",
                 f"must be a positive multiple of batch_size_per_gpu ({self.batch_size_per_gpu}), got {self.queue_size}")
        _require(self.crop_pad_size >= self.gt_size, "crop_pad_size",
                 f"must be >= gt_size ({self.gt_size}), got {self.crop_pad_size}")


@dataclass(frozen=True)
class ValDataConfig:
    """``datasets.val``: a fixed set of LQ/HR pairs with matching file names."""

    dataroot_lq: str
    dataroot_gt: str
    name: str = "val"
    type: Literal["PairedImageDataset"] = "PairedImageDataset"


@dataclass(frozen=True)
class DatasetsConfig:
    train: TrainDataConfig
    val: ValDataConfig | None = None


@dataclass(frozen=True)
class NetworkConfig:
    """``network_g`` / ``network_d``: ``type`` plus the constructor's keyword arguments."""

    type: str
    kwargs: Mapping[str, Any] = field(default_factory=lambda: types.MappingProxyType({}))


# The inference table: what trains is what loads.
GENERATOR_CLASSES: Mapping[str, type] = types.MappingProxyType({spec.name: spec.module for spec in GENERATORS})
DISCRIMINATOR_CLASSES: Mapping[str, type] = types.MappingProxyType({"UNetDiscriminatorSN": UNetDiscriminatorSN})


@dataclass(frozen=True)
class PathConfig:
    pretrain_network_g: str | None = None
    """A built-in model name (``x4plus``) or a .pth / .safetensors / .pdparams file."""
    param_key_g: Literal["params", "params_ema"] = "params_ema"
    strict_load_g: bool = True
    pretrain_network_d: str | None = None
    param_key_d: Literal["params", "params_ema"] = "params"
    strict_load_d: bool = True
    resume_state: str | None = None
    """A training-state file to continue from (same as ``--resume``)."""
    experiments_root: str = "experiments"
    """The run writes to ``experiments_root/name``."""
    vgg_weights: str | None = None
    """soccersr: torchvision's ``vgg19-dcbb9e9d.pth`` (default: the torch hub cache), or for vgg16 the file of
    ``soccersr vgg import`` (default: ``vgg16_imagenet.safetensors`` in the soccersr cache)."""


@dataclass(frozen=True)
class OptimConfig:
    type: Literal["Adam"] = "Adam"
    lr: float = 1e-4
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.99)

    def __post_init__(self) -> None:
        _require(self.lr > 0 and math.isfinite(self.lr), "lr", f"must be a positive number, got {self.lr}")
        _require(self.weight_decay >= 0, "weight_decay", f"must be >= 0, got {self.weight_decay}")
        _require(all(0 <= b < 1 for b in self.betas), "betas", f"must lie in [0, 1), got {list(self.betas)}")


@dataclass(frozen=True)
class SchedulerConfig:
    type: Literal["MultiStepLR"] = "MultiStepLR"
    milestones: tuple[int, ...] = (400000,)
    gamma: float = 0.5

    def __post_init__(self) -> None:
        _require(list(self.milestones) == sorted(self.milestones) and all(m > 0 for m in self.milestones),
                 "milestones", f"must be increasing positive iterations, got {list(self.milestones)}")
        _require(0 < self.gamma <= 1, "gamma", f"must lie in (0, 1], got {self.gamma}")


@dataclass(frozen=True)
class PixelLossConfig:
    type: Literal["L1Loss"] = "L1Loss"
    loss_weight: float = 1.0
    reduction: Literal["mean"] = "mean"

    def __post_init__(self) -> None:
        _require(self.loss_weight >= 0, "loss_weight", f"must be >= 0, got {self.loss_weight}")


@dataclass(frozen=True)
class PerceptualLossConfig:
    type: Literal["PerceptualLoss"] = "PerceptualLoss"
    layer_weights: Mapping[str, float] = field(default_factory=lambda: OFFICIAL_LAYER_WEIGHTS)
    vgg_type: Literal["vgg19", "vgg16"] = "vgg19"
    """vgg19: torchvision's file; vgg16 (soccersr): the Oxford file from ``soccersr vgg import``."""
    use_input_norm: bool = True
    input_norm: Literal["auto", "imagenet", "caffe"] = "auto"
    """soccersr: how ``use_input_norm`` normalises: "imagenet" mean / std (torchvision's VGG19), "caffe"
    x255 minus the RGB means, no std (the Oxford VGG16); "auto": the one of ``vgg_type``'s file."""
    range_norm: bool = False
    perceptual_weight: float = 1.0
    style_weight: float = 0.0
    criterion: Literal["l1"] = "l1"

    def __post_init__(self) -> None:
        from soccersr.train.vgg import VGG_LAYERS

        example = "conv3_4" if self.vgg_type == "vgg19" else "conv3_3"
        for name, weight in self.layer_weights.items():
            _require(name in VGG_LAYERS[self.vgg_type], f"layer_weights.{name}",
                     f"not a {self.vgg_type.upper()} layer (e.g. {example}, relu2_2)")
            _require(weight >= 0, f"layer_weights.{name}", f"must be >= 0, got {weight}")
        _require(len(self.layer_weights) > 0, "layer_weights", "must name at least one layer")
        _require(self.perceptual_weight >= 0, "perceptual_weight", f"must be >= 0, got {self.perceptual_weight}")
        _require(self.style_weight == 0, "style_weight", "the style (Gram) loss is not supported; set it to 0")


@dataclass(frozen=True)
class GANLossConfig:
    type: Literal["GANLoss"] = "GANLoss"
    gan_type: Literal["vanilla"] = "vanilla"
    real_label_val: float = 1.0
    fake_label_val: float = 0.0
    loss_weight: float = 0.1

    def __post_init__(self) -> None:
        _require(self.loss_weight >= 0, "loss_weight", f"must be >= 0, got {self.loss_weight}")


@dataclass(frozen=True)
class TrainConfig:
    """``train``: optimisation, losses, EMA; plus soccersr's speed switches."""

    total_iter: int
    optim_g: OptimConfig = field(default_factory=OptimConfig)
    optim_d: OptimConfig | None = None
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    warmup_iter: int = -1
    """Linear learning-rate warm-up over this many iterations (-1: none)."""
    ema_decay: float = 0.999
    """Decay of the generator's EMA (``params_ema``); 0 disables it."""
    pixel_opt: PixelLossConfig | None = None
    perceptual_opt: PerceptualLossConfig | None = None
    gan_opt: GANLossConfig | None = None
    net_d_iters: int = 1
    """G is updated every ``net_d_iters`` iterations (D every iteration)."""
    net_d_init_iters: int = 0
    """D-only warm-up: G is not updated during the first ``net_d_init_iters`` iterations."""
    gt_usm: bool | None = None
    """Real-ESRNet only: sharpen (USM) the GT before degrading it and use it as the L1 target (default true)."""
    l1_gt_usm: bool | None = None
    """Real-ESRGAN only: targets of the three losses are the USM-sharpened GT (defaults true, true, false)."""
    percep_gt_usm: bool | None = None
    gan_gt_usm: bool | None = None
    precision: Literal["auto", "bf16", "fp32"] = "auto"
    """soccersr: "auto" = bf16 autocast on CUDA and on CPUs with native bf16 (AMX / AVX512_BF16), fp32 elsewhere."""
    channels_last: Literal["auto"] | bool = "auto"
    """soccersr: "auto" = channels_last memory format wherever the step runs in bf16."""
    compile: bool = False
    """soccersr: torch.compile G, D and the VGG feature extractor."""
    allow_random_vgg: bool = False
    """soccersr, tests only: run the perceptual loss with a random VGG19 when no weights file exists."""
    time_limit_min: float | None = None
    """soccersr: stop early, as if total_iter were reached (checkpoint, export, validation), once this
    many minutes have passed since the loop started; for GPU sessions of fixed length."""

    def __post_init__(self) -> None:
        _require(self.total_iter > 0, "total_iter", f"must be positive, got {self.total_iter}")
        _require(self.time_limit_min is None or self.time_limit_min > 0, "time_limit_min",
                 f"must be positive, got {self.time_limit_min}")
        _require(0 <= self.ema_decay < 1, "ema_decay", f"must lie in [0, 1), got {self.ema_decay}")
        _require(self.net_d_iters >= 1, "net_d_iters", f"must be >= 1, got {self.net_d_iters}")
        _require(self.net_d_init_iters >= 0, "net_d_init_iters", f"must be >= 0, got {self.net_d_init_iters}")


@dataclass(frozen=True)
class ValConfig:
    val_freq: int = 5000
    save_img: bool = True

    def __post_init__(self) -> None:
        _require(self.val_freq > 0, "val_freq", f"must be positive, got {self.val_freq}")


@dataclass(frozen=True)
class LoggerConfig:
    print_freq: int = 100
    save_checkpoint_freq: int = 5000
    use_tb_logger: bool = True
    keep_checkpoints: int = 1
    """soccersr: training-state files kept (the newest K); exported generators are all kept."""
    save_weights: Literal["ema", "all"] = "ema"
    """soccersr: what ``models/`` gets at each save point: "ema" = ``net_g_<iter>.pth`` with the EMA
    generator only (``params_ema``); "all" = also G's ``params``, a safetensors twin and ``net_d_<iter>.pth``."""

    def __post_init__(self) -> None:
        _require(self.print_freq > 0, "print_freq", f"must be positive, got {self.print_freq}")
        _require(self.save_checkpoint_freq > 0, "save_checkpoint_freq", f"must be positive, got {self.save_checkpoint_freq}")
        _require(self.keep_checkpoints >= 1, "keep_checkpoints", f"must be >= 1, got {self.keep_checkpoints}")


@dataclass(frozen=True)
class TrainingConfig:
    """The whole run. ``model_type`` picks the stage: Real-ESRNet (L1 only) or Real-ESRGAN (L1 + VGG + GAN)."""

    name: str
    model_type: Stage
    datasets: DatasetsConfig
    network_g: NetworkConfig
    train: TrainConfig
    scale: int = 4
    num_gpu: Literal["auto"] | int = "auto"
    manual_seed: int = 0
    network_d: NetworkConfig | None = None
    path: PathConfig = field(default_factory=PathConfig)
    val: ValConfig | None = None
    logger: LoggerConfig = field(default_factory=LoggerConfig)

    def __post_init__(self) -> None:
        _require(bool(self.name) and "/" not in self.name and self.name not in (".", ".."), "name",
                 f"must be a plain folder name, got {self.name!r}")
        _require(self.scale in (1, 2, 4), "scale", f"must be 1, 2 or 4, got {self.scale}")
        _require(self.manual_seed >= 0, "manual_seed", f"must be >= 0, got {self.manual_seed}")
        _require(self.datasets.train.gt_size % self.scale == 0, "datasets.train.gt_size",
                 f"must be a multiple of scale ({self.scale}), got {self.datasets.train.gt_size}")
        _require(self.datasets.train.degradation.scale == self.scale, "scale", "differs from the degradation scale")
        net_scale = generator_spec(self.network_g.type).net_scale(self.network_g.kwargs)
        _require(net_scale == self.scale, "network_g", f"upsamples x{net_scale} but scale is {self.scale}")
        t = self.train
        if self.model_type == ESRNET:
            for key in ("network_d",):
                _require(getattr(self, key) is None, key, "only used by model_type RealESRGANModel")
            for key in ("optim_d", "perceptual_opt", "gan_opt", "l1_gt_usm", "percep_gt_usm", "gan_gt_usm"):
                _require(getattr(t, key) is None, f"train.{key}", "only used by model_type RealESRGANModel")
            _require(t.pixel_opt is not None, "train.pixel_opt", "required for model_type RealESRNetModel")
        else:
            _require(self.network_d is not None, "network_d", "required for model_type RealESRGANModel")
            _require(t.optim_d is not None, "train.optim_d", "required for model_type RealESRGANModel")
            _require(t.gan_opt is not None, "train.gan_opt", "required for model_type RealESRGANModel")
            _require(t.gt_usm is None, "train.gt_usm", "only used by model_type RealESRNetModel (see l1_gt_usm)")
        _require((self.val is None) == (self.datasets.val is None), "val",
                 "datasets.val and val (val_freq) must be given together")

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
# Parsing: raw YAML mapping -> dataclasses, with key paths in every error
# --------------------------------------------------------------------------------------------

_DEGRADATION_KEYS = DegradationConfig.flat_keys() - {"scale"}
_HOISTED_TO_DATA = _DEGRADATION_KEYS | {"gt_size", "queue_size"}
_HOISTED_TO_TRAIN = frozenset({"gt_usm", "l1_gt_usm", "percep_gt_usm", "gan_gt_usm"})


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _convert(tp: Any, value: Any, path: str) -> Any:
    """Check ``value`` against the annotation ``tp`` and return it in its typed form."""
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        options = get_args(tp)
        if value is None:
            if type(None) in options:
                return None
            raise ConfigError(f"{path}: must not be null")
        real_options = [o for o in options if o is not type(None)]
        if len(real_options) == 1:
            return _convert(real_options[0], value, path)
        errors = []
        for option in real_options:
            try:
                return _convert(option, value, path)
            except ConfigError as e:
                errors.append(str(e).split(": ", 1)[1])
        raise ConfigError(f"{path}: " + " or ".join(dict.fromkeys(errors)))
    if origin is Literal:
        allowed = get_args(tp)
        # type() check too: YAML's true must not match a literal 1.
        if any(value == a and type(value) is type(a) for a in allowed):
            return value
        raise ConfigError(f"{path}: expected one of {list(allowed)}, got {value!r}")
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{path}: expected true or false, got {value!r}")
    if tp is int:
        # The official files write iteration counts as !!float 5e3.
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{path}: expected an integer, got {value!r}")
    if tp is float:
        number: float | None = None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            number = float(value)
        elif isinstance(value, str):
            # YAML 1.1 reads "1e-4" (no dot) as text; accept the number the user meant.
            try:
                number = float(value)
            except ValueError:
                pass
        if number is None or not math.isfinite(number):
            raise ConfigError(f"{path}: expected a finite number, got {value!r}")
        return number
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{path}: expected text, got {_type_name(value)} {value!r}")
    if origin is tuple:
        args = get_args(tp)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{path}: expected a list, got {_type_name(value)} {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(args[0], v, f"{path}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise ConfigError(f"{path}: expected a list of {len(args)} values, got {len(value)}")
        return tuple(_convert(a, v, f"{path}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
    if origin in (collections.abc.Mapping, dict):
        key_tp, value_tp = get_args(tp) or (str, Any)
        if not isinstance(value, Mapping):
            raise ConfigError(f"{path}: expected a mapping, got {_type_name(value)} {value!r}")
        return types.MappingProxyType(
            {_convert(key_tp, k, f"{path}"): _convert(value_tp, v, f"{path}.{k}") for k, v in value.items()}
        )
    if is_dataclass(tp):
        return _build(tp, value, path)
    raise TypeError(f"unsupported annotation {tp!r} at {path}")  # a bug in the schema, not in the file


def _unknown_key(path: str, key: str) -> ConfigError:
    hint = " (an official key soccersr does not use; remove it)" if key in _OFFICIAL_UNUSED else ""
    return ConfigError(f"{path}{key}: unknown key{hint}")


def _build(cls: type, raw: Any, path: str) -> Any:
    """Build dataclass ``cls`` from mapping ``raw``; ``path`` is the key path of ``raw`` (e.g. "train.optim_g")."""
    prefix = f"{path}." if path else ""
    if isinstance(raw, cls):
        return raw  # already built (the degradation config, see parse_config)
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{path or '<top level>'}: expected a mapping, got {_type_name(raw)} {raw!r}")
    if cls is NetworkConfig:
        return _build_network(raw, path)
    hints = get_type_hints(cls)
    names = [f.name for f in fields(cls)]
    for key in raw:
        if key not in names:
            raise _unknown_key(prefix, str(key))
    kwargs = {key: _convert(hints[key], value, prefix + key) for key, value in raw.items()}
    missing = [f.name for f in fields(cls) if f.name not in kwargs and _is_required(f)]
    if missing:
        raise ConfigError(f"{prefix}{missing[0]}: missing required key")
    try:
        return cls(**kwargs)
    except _Invalid as e:
        raise ConfigError(f"{prefix}{e.key}: {e.reason}") from None


def _is_required(f: Any) -> bool:
    from dataclasses import MISSING

    return f.default is MISSING and f.default_factory is MISSING


def _build_network(raw: Mapping[str, Any], path: str) -> NetworkConfig:
    classes = GENERATOR_CLASSES if path == "network_g" else DISCRIMINATOR_CLASSES
    kind = raw.get("type")
    if kind not in classes:
        raise ConfigError(f"{path}.type: expected one of {list(classes)}, got {kind!r}")
    params = inspect.signature(classes[kind]).parameters
    hints = get_type_hints(classes[kind].__init__)
    kwargs = {}
    for key, value in raw.items():
        if key == "type":
            continue
        if key not in params:
            raise ConfigError(f"{path}.{key}: unknown key (not an argument of {kind}: {sorted(params)})")
        kwargs[key] = _convert(hints[key], value, f"{path}.{key}")
        if isinstance(kwargs[key], int) and not isinstance(kwargs[key], bool) and kwargs[key] <= 0:
            raise ConfigError(f"{path}.{key}: must be positive, got {kwargs[key]}")
    try:
        import torch

        with torch.device("meta"):  # checks the arguments without allocating or initialising weights
            classes[kind](**kwargs)
    except ValueError as e:
        raise ConfigError(f"{path}: {e}") from None
    return NetworkConfig(type=kind, kwargs=types.MappingProxyType(kwargs))


def _hoist_official_layout(raw: dict[str, Any]) -> dict[str, Any]:
    """Move the official top-level degradation / USM keys to where this schema keeps them."""
    raw = dict(raw)
    datasets = dict(raw.get("datasets") or {})
    train_data = dict(datasets.get("train") or {}) if isinstance(datasets.get("train"), Mapping) else datasets.get("train")
    train = dict(raw.get("train") or {}) if isinstance(raw.get("train"), Mapping) else raw.get("train")
    for key in [k for k in raw if k in _HOISTED_TO_DATA | _HOISTED_TO_TRAIN]:
        target, where = (train_data, "datasets.train") if key in _HOISTED_TO_DATA else (train, "train")
        if not isinstance(target, dict):
            continue  # reported as a type error of that section
        if key in target and target[key] != raw[key]:
            raise ConfigError(f"{key}: given both at the top level and in {where} with different values")
        target[key] = raw.pop(key)
    if isinstance(train_data, dict) and train_data:
        datasets["train"] = train_data
        raw["datasets"] = datasets
    if isinstance(train, dict) and train:
        raw["train"] = train
    return raw


def parse_config(raw: Any) -> TrainingConfig:
    """Validate a raw YAML mapping (official layout accepted) into a ``TrainingConfig``."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"<top level>: expected a mapping, got {_type_name(raw)}")
    raw = _hoist_official_layout(dict(raw))
    scale = _convert(int, raw.get("scale", 4), "scale")
    # The flat degradation keys of datasets.train become one DegradationConfig, checked by the
    # degradation module itself; the rest of datasets.train goes through the schema.
    datasets = raw.get("datasets")
    if isinstance(datasets, Mapping) and isinstance(datasets.get("train"), Mapping):
        train_data = dict(datasets["train"])
        if "degradation" in train_data:
            raise _unknown_key("datasets.train.", "degradation")
        flat = {k: train_data.pop(k) for k in list(train_data) if k in _DEGRADATION_KEYS}
        try:
            train_data["degradation"] = DegradationConfig.from_flat_keys({**flat, "scale": scale})
        except (ValueError, TypeError) as e:
            raise ConfigError(f"datasets.train.{e}") from None
        raw["datasets"] = {**datasets, "train": train_data}
    return _build(TrainingConfig, raw, "")


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


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _flat_degradation(cfg: DegradationConfig) -> dict[str, Any]:
    """The official flat keys of a degradation config (inverse of ``from_flat_keys``)."""
    out: dict[str, Any] = {}
    for f in fields(StageConfig):
        first, second = getattr(cfg.first, f.name), getattr(cfg.second, f.name)
        if f.name == "blur_prob":
            out["second_blur_prob"] = second
            continue
        out[f.name] = _plain(first)
        out[f.name + "2"] = _plain(second)
    out["final_sinc_prob"] = cfg.final_sinc_prob
    out["blur_kernel_size"] = cfg.blur_kernel_size
    return out


def config_to_dict(cfg: Any) -> Any:
    """The config as plain YAML-able data in the same layout ``parse_config`` reads."""
    if isinstance(cfg, NetworkConfig):
        return {"type": cfg.type, **_plain(cfg.kwargs)}
    if isinstance(cfg, TrainDataConfig):
        out = {f.name: config_to_dict(getattr(cfg, f.name)) for f in fields(cfg) if f.name != "degradation"}
        return {**out, **_flat_degradation(cfg.degradation)}
    if is_dataclass(cfg):
        return {f.name: config_to_dict(getattr(cfg, f.name)) for f in fields(cfg) if getattr(cfg, f.name) is not None}
    return _plain(cfg)


def dump_config(cfg: TrainingConfig) -> str:
    """The resolved config as YAML text (re-loadable with ``load_config``)."""
    import yaml

    return yaml.safe_dump(config_to_dict(cfg), sort_keys=False, default_flow_style=None)
