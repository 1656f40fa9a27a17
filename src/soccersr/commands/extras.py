"""Optional packages: which pip extra installs each, and the one-line hint when one is missing.

A plain ``pip install soccersr`` upscales with PyTorch. Video frames, training and the multiscale
crops need ``soccersr[train]``; ONNX export and ONNX models need ``soccersr[onnx]``;
``upscale --cluster ray`` needs ``soccersr[ray]`` (pyproject.toml, ``[project.optional-dependencies]``).
"""

from __future__ import annotations

import importlib

from soccersr.errors import MissingExtraError

EXTRA_OF_MODULE = {
    "av": "train",
    "PIL": "train",
    "yaml": "train",
    "tensorboard": "train",
    "onnx": "onnx",
    "onnxruntime": "onnx",
    "ray": "ray",
    "pyarrow": "ray",  # Ray Data's, missing where Ray was installed without its [data] extra
}
"""Top-level import name -> the extra that installs it."""


def require(feature: str, *modules: str) -> None:
    """Import ``modules`` now, so a missing one stops ``feature`` before any work, with the pip hint."""
    for module in modules:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as error:
            missing = missing_extra(error, feature)
            if missing is None:
                raise
            raise missing from None


def missing_extra(error: ModuleNotFoundError, feature: str) -> MissingExtraError | None:
    """The MissingExtraError for ``error`` when it is about an optional package, else None (a real bug)."""
    module = (error.name or "").partition(".")[0]
    extra = EXTRA_OF_MODULE.get(module)
    return None if extra is None else MissingExtraError(feature, extra, module)
