"""The one place weights come in: built-in model names, or ``.pth`` / ``.safetensors`` / ``.pdparams`` files.

Files are read without running code from them (``torch.load(weights_only=True)``, safetensors,
a restricted unpickler for Paddle pickles), unwrapped to a flat state_dict with the official
key names (``params_ema`` first, then ``params``; a ``module.`` prefix stripped), their
architecture is told from keys and shapes, and they are loaded with ``strict=True``.
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file

from soccersr.archs import ArchSpec, generator_spec
from soccersr.weights import zoo
from soccersr.weights.builtin import builtin_state_dict, cache_file
from soccersr.weights.detect import WeightsError, detect_arch
from soccersr.weights.model import SRModel, build_network, size_multiple_for
from soccersr.weights.unpickle import load_pdparams
from soccersr.weights.zoo import ModelSpec

SUFFIXES = (".pth", ".pt", ".safetensors", ".pdparams")
_WRAPPERS = ("params_ema", "params")  # EMA weights are the ones the official releases ship
_PADDLE_NAME_TABLE = "StructuredToParameterName@@"


def load_model(name_or_path: str | Path, *, cache_dir: Path | None = None) -> SRModel:
    """Load a built-in model by name (or alias) or a weights file, ready for inference.

    A string that names a built-in model wins over a file of the same name.

    Args:
        name_or_path: e.g. ``"x4plus"``, ``"RealESRGAN_x4plus"``, ``"runs/x/net_g.pth"``.
        cache_dir: where converted built-in weights are cached (default: see
            ``builtin.default_cache_dir``).

    Returns:
        An ``SRModel`` in eval mode, float32, on the CPU.

    Raises:
        WeightsError: unknown name, unreadable or unsafe file, unknown architecture, or keys /
            shapes that do not fit (the message names the file and the first offending key).
    """
    spec = zoo.find_spec(name_or_path) if isinstance(name_or_path, str) else None
    if spec is not None:
        state = builtin_state_dict(spec, cache_dir=cache_dir)
        origin = f"built-in model {spec.name!r} ({spec.source})"
        net = build_and_load(spec.arch, spec.arch_kwargs, state, origin)
        return SRModel(
            net=net,
            name=spec.name,
            arch=spec.arch,
            arch_kwargs=spec.arch_kwargs,
            net_scale=spec.net_scale,
            scale=spec.scale,
            size_multiple=size_multiple_for(spec.arch, spec.arch_kwargs),
            source=spec.source,
        )
    path = Path(name_or_path)
    if not path.is_file():
        raise WeightsError(
            f"{name_or_path}: not a built-in model ({', '.join(zoo.model_names())}) and not a weights file"
        )
    state = load_state_dict_file(path)
    arch, kwargs = detect_arch(state, origin=str(path))
    spec = generator_spec(arch)
    net_scale = spec.net_scale(kwargs)
    scale, kwargs = _apply_file_metadata(path, spec, kwargs, net_scale)
    net = build_and_load(arch, kwargs, state, str(path))
    return SRModel(
        net=net,
        name=path.stem,
        arch=arch,
        arch_kwargs=kwargs,
        net_scale=net_scale,
        scale=scale,
        size_multiple=size_multiple_for(arch, kwargs),
        source=str(path),
    )


def _apply_file_metadata(
    path: Path, spec: ArchSpec, kwargs: dict[str, Any], net_scale: int
) -> tuple[float, dict[str, Any]]:
    """What only a safetensors header can say (``soccersr export`` writes it): the model's overall
    scale (animevideov3 x2/x3 hold the x4 network's weights, then a fixed resize) and constructor
    arguments that leave no trace in the weights (the compact net's ReLU or LeakyReLU)."""
    if path.suffix.lower() != ".safetensors":
        return net_scale, kwargs
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except (OSError, SafetensorError):
        return net_scale, kwargs
    if meta.get("arch", spec.name) != spec.name:
        raise WeightsError(f"{path}: header says {meta['arch']}, but the weights are {spec.name}")
    scale: float = net_scale
    if "scale" in meta:
        try:
            scale = float(meta["scale"])
        except ValueError:
            raise WeightsError(f"{path}: header key 'scale' is not a number: {meta['scale']!r}") from None
        # A model is its network, then at most a fixed downscale (animevideov3 x2 / x3 from x4):
        # below x1 it would shrink images, which no super-resolution model does.
        if not 1 <= scale <= net_scale:
            raise WeightsError(
                f"{path}: header scale {scale:g} does not fit a x{net_scale} network (expected 1 to {net_scale})"
            )
    if "arch_kwargs" in meta:
        try:
            header_kwargs = json.loads(meta["arch_kwargs"])
        except ValueError:
            header_kwargs = None
        if isinstance(header_kwargs, dict):
            kwargs = spec.kwargs_from_header(kwargs, header_kwargs)
    return scale, kwargs


def load_state_dict_file(path: Path, *, param_key: str | None = None) -> dict[str, torch.Tensor]:
    """Read a weights file into a flat float32 state_dict with the official key names.

    ``.pth``/``.pt`` (``torch.load(weights_only=True)``), ``.safetensors``, or ``.pdparams``
    (a Paddle pickle of numpy arrays, read by a restricted unpickler). Nested ``params_ema`` /
    ``params`` dicts (or ``params_ema.`` / ``params.`` key prefixes) are unwrapped, EMA first,
    or exactly ``param_key`` when given, and a ``module.`` prefix is stripped.

    Raises:
        MissingParamKey: ``param_key`` is given and the file has no such entry.
        WeightsError: unknown format, unreadable or truncated file, a pickle that needs code,
            or a value that is not a tensor.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".pth", ".pt"):
        obj = _torch_load(path)
    elif suffix == ".safetensors":
        obj = _nest_prefixed(_safetensors_load(path))
    elif suffix == ".pdparams":
        obj = load_pdparams(path)
    else:
        raise WeightsError(
            f"{path}: unknown weights format {suffix or '(no suffix)'!r}; expected {', '.join(SUFFIXES)}"
        )
    return _flatten(obj, path, param_key)


class MissingParamKey(WeightsError):
    """``load_state_dict_file(param_key=...)`` on a file without that entry."""


# Lines of torch's weights_only message that are advice, not the reason. Its "re-run with
# weights_only=False" would run code from the file: never pass it on.
_TORCH_ADVICE = ("weights only load failed", "weights_only", "please file an issue", "check the documentation")


def _torch_load(path: Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        # torch.load raises anything from bad bytes (UnpicklingError, KeyError, EOFError, RuntimeError
        # from the zip reader, ...); weights_only=True means no code from the file ran.
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
        reasons = [ln for ln in lines if not any(advice in ln.lower() for advice in _TORCH_ADVICE)]
        refused = next((ln for ln in reasons if "global" in ln.lower()), None)
        if isinstance(e, pickle.UnpicklingError) and refused is not None:
            # A well-formed pickle that names a callable outside torch's allow-list.
            raise WeightsError(f"{path}: refused to load: it needs more than plain tensors ({refused})") from None
        first_sentence = reasons[0].split(". ")[0] if reasons else ""  # the zip reader's goes on for five
        reason = f"{type(e).__name__}: {first_sentence}" if first_sentence else type(e).__name__
        raise WeightsError(f"{path}: not a readable PyTorch file ({reason})") from None


def _safetensors_load(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path))
    except (OSError, SafetensorError) as e:
        raise WeightsError(f"{path}: not a readable safetensors file ({e})") from None


def _nest_prefixed(flat: Mapping[str, torch.Tensor]) -> Mapping[str, Any]:
    """``{"params_ema.conv_first.weight": t}`` -> ``{"params_ema": {"conv_first.weight": t}}``."""
    for wrapper in _WRAPPERS:
        prefix = wrapper + "."
        if any(k.startswith(prefix) for k in flat):
            nested: dict[str, Any] = {}
            for key, value in flat.items():
                head, dot, rest = key.partition(".")
                if head in _WRAPPERS and dot:
                    nested.setdefault(head, {})[rest] = value
                else:
                    nested[key] = value
            return nested
    return flat


def _flatten(obj: Any, path: Path, param_key: str | None = None) -> dict[str, torch.Tensor]:
    if not isinstance(obj, Mapping):
        raise WeightsError(f"{path}: holds a {type(obj).__name__}, not a dict of tensors")
    for wrapper in (param_key,) if param_key is not None else _WRAPPERS:
        if isinstance(obj.get(wrapper), Mapping):
            obj = obj[wrapper]
            break
    else:
        if param_key is not None:
            raise MissingParamKey(f"{path}: has no {param_key!r} entry")
    state: dict[str, torch.Tensor] = {}
    for key, value in obj.items():
        if key == _PADDLE_NAME_TABLE:  # paddle's structured-name -> parameter-name table, not weights
            continue
        if not isinstance(key, str):
            raise WeightsError(f"{path}: key {key!r} is not a string")
        name = key.removeprefix("module.")
        if name in state:
            raise WeightsError(f"{path}: key {name} appears twice (with and without 'module.')")
        state[name] = _to_tensor(value, name, path)
    if not state:
        raise WeightsError(f"{path}: holds no tensors")
    return state


def _to_tensor(value: Any, key: str, path: Path) -> torch.Tensor:
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], str):
        value = value[1]  # paddle >= 2.1 pickles a live tensor as (name, ndarray)
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "fiu":
            raise WeightsError(f"{path}: {key} is a numpy array of dtype {value.dtype}, not numbers")
        value = torch.from_numpy(np.array(value))  # a writable, contiguous copy
    if not isinstance(value, torch.Tensor):
        raise WeightsError(f"{path}: {key} is a {type(value).__name__}, not a tensor")
    if not value.is_floating_point():
        raise WeightsError(f"{path}: {key} has dtype {value.dtype}, not floating point")
    return value.to(torch.float32)


def build_and_load(
    arch: str, arch_kwargs: Mapping[str, int | str], state: Mapping[str, torch.Tensor], origin: str
) -> torch.nn.Module:
    # Built on the meta device and then given the loaded tensors (assign=True): the random
    # init of a real build would take seconds for x4plus only to be overwritten.
    with torch.device("meta"):
        net = build_network(arch, arch_kwargs)
    expected = net.state_dict()
    for key, value in state.items():
        if key not in expected:
            raise WeightsError(f"{origin}: unexpected key {key} for {arch}({dict(arch_kwargs)})")
        if value.shape != expected[key].shape:
            raise WeightsError(
                f"{origin}: {key} has shape {tuple(value.shape)}, {arch} needs {tuple(expected[key].shape)}"
            )
        if not torch.isfinite(value).all():
            raise WeightsError(f"{origin}: {key} contains NaN or infinity")
    missing = [k for k in expected if k not in state]
    if missing:
        raise WeightsError(f"{origin}: missing key {missing[0]} ({len(missing)} missing) for {arch}")
    net.load_state_dict({k: v.contiguous() for k, v in state.items()}, strict=True, assign=True)
    leftover = [name for name, t in [*net.named_parameters(), *net.named_buffers()] if t.is_meta]
    if leftover:  # a tensor outside the state_dict (non-persistent buffer) was never materialised
        raise RuntimeError(f"{arch}: {leftover[0]} has no value after loading")
    return net.eval()


@dataclass(frozen=True)
class ModelInfo:
    """A built-in model, as listed by ``soccersr models``."""

    spec: ModelSpec
    params: int
    """Number of parameters of the network."""
    cache_file: Path | None
    """Where its converted weights are cached (None for weights shipped in the package)."""
    cached: bool
    """Whether that cache file exists (it is not validated here)."""


def list_models(*, cache_dir: Path | None = None) -> list[ModelInfo]:
    """The built-in models in zoo order, with parameter counts and cache state. Loads no weights."""
    infos = []
    for spec in zoo.MODELS:
        with torch.device("meta"):  # counting parameters needs shapes only
            params = sum(p.numel() for p in build_network(spec.arch, spec.arch_kwargs).parameters())
        path = cache_file(spec, cache_dir)
        infos.append(ModelInfo(spec=spec, params=params, cache_file=path, cached=path is not None and path.is_file()))
    return infos
