"""Export a model to files other tools load: ONNX (``export.onnx``) and safetensors (``export.safetensors``).

The submodules are imported explicitly (``from soccersr.export.onnx import export_onnx``) so that
safetensors export works without the optional ``onnx``/``onnxruntime`` packages.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

__all__ = ["ExportError", "write_atomic"]


class ExportError(ValueError):
    """An export failed; the message names the output file and the reason, in one line.

    When it is raised, nothing was written at the output path (exports are atomic).
    """


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename.

    Readers never see a half-written file, and an interrupted export leaves the old file (or none).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    # Not tempfile.mkstemp: its files are private (0600); this one gets the usual umask permissions.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "xb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
