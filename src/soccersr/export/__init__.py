"""Export a model to files other tools load: ONNX (``export.onnx``) and safetensors (``export.safetensors``).

The submodules are imported explicitly (``from soccersr.export.onnx import export_onnx``) so that
safetensors export works without the optional ``onnx``/``onnxruntime`` packages.
"""

from __future__ import annotations

from pathlib import Path

from soccersr.errors import SoccersrError
from soccersr.io.atomic import atomic_write_bytes

__all__ = ["ExportError", "write_atomic"]


class ExportError(SoccersrError, ValueError):
    """An export failed; the message names the output file and the reason, in one line.

    When it is raised, nothing was written at the output path (exports are atomic).
    """


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename.

    Readers never see a half-written file, and an interrupted export leaves the old file (or none).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, data)
