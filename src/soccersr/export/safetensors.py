"""Export an ``SRModel``'s weights to a ``.safetensors`` file other tools load.

Layout: a flat state_dict with the official Real-ESRGAN key names (``conv_first.weight``,
``body.0.rdb1.conv1.weight``, ... or ``body.0.weight`` for the compact model), with no
``params_ema`` wrapper or prefix. A safetensors file is a flat name -> tensor table, so it
cannot nest a dict the way the official ``.pth`` files do (``{"params_ema": {...}}``), and
the tools that read Real-ESRGAN safetensors (spandrel, hence chaiNNer and ComfyUI) detect the
architecture from exactly these flat names; they unwrap ``params_ema`` only as a nested dict
key, never as a key prefix.

Metadata (safetensors' string table): ``format`` = ``pt`` (the Hugging Face convention),
``arch``, ``arch_kwargs`` (JSON), ``scale``, ``net_scale``, ``name``, ``source``, ``precision``
and ``soccersr_version``. ``scale`` matters for animevideov3 x2/x3, whose weights equal the
x4 network's: only the metadata says "then resize by 0.5/0.75".
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import save

from soccersr import __version__
from soccersr.export import ExportError, write_atomic
from soccersr.weights.model import SRModel

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SafetensorsExportResult:
    path: Path
    precision: str
    num_tensors: int
    num_bytes: int


def safetensors_metadata(model: SRModel, *, fp16: bool = False) -> dict[str, str]:
    """The string metadata stored with the weights of ``model``."""
    return {
        "format": "pt",
        "arch": model.arch,
        "arch_kwargs": json.dumps(dict(model.arch_kwargs), sort_keys=True),
        "scale": f"{float(model.scale):g}",
        "net_scale": str(model.net_scale),
        "name": model.name,
        "source": model.source,
        "precision": "fp16" if fp16 else "fp32",
        "soccersr_version": __version__,
    }


def export_safetensors(model: SRModel, path: str | Path, *, fp16: bool = False) -> SafetensorsExportResult:
    """Write ``model.net``'s state_dict (official key names, flat) to ``path``, atomically.

    Args:
        model: a loaded model (``soccersr.weights.load_model``).
        path: output file; its folder is created; an existing file is replaced.
        fp16: store float16 tensors (half the size; loaders convert back to float32).

    Raises:
        ExportError: a tensor is not finite or does not fit in float16 (nothing is written then).
    """
    path = Path(path)
    dtype = torch.float16 if fp16 else torch.float32
    tensors: dict[str, torch.Tensor] = {}
    for key, value in model.net.state_dict().items():
        if not torch.isfinite(value).all():
            raise ExportError(f"{path}: weight {key!r} has NaN or infinite values; nothing written")
        converted = value.detach().to("cpu", dtype).contiguous()
        if fp16 and not torch.isfinite(converted).all():
            raise ExportError(f"{path}: weight {key!r} overflows float16 (|w| > 65504); export without --fp16")
        # A fresh copy per key: safetensors refuses tensors that share storage.
        tensors[key] = converted.clone()
    data = save(tensors, metadata=safetensors_metadata(model, fp16=fp16))
    write_atomic(path, data)
    logger.info("wrote %d tensors (%s) to %s", len(tensors), "fp16" if fp16 else "fp32", path)
    return SafetensorsExportResult(
        path=path, precision="fp16" if fp16 else "fp32", num_tensors=len(tensors), num_bytes=len(data)
    )
