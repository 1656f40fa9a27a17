"""Read PaddlePaddle ``.pdparams`` files without running any code from them.

``paddle.save`` writes a plain pickle. For a layer's state_dict it holds a dict of numpy
arrays plus a name table under ``"StructuredToParameterName@@"``; nested dicts such as
``{"params": state_dict}`` hold numpy arrays or, when they held live paddle tensors,
``(name, ndarray)`` tuples (paddle builds these with ``builtins.tuple``).

A pickle can name any importable callable and have the loader call it (``os.system`` is the
classic example), so ``pickle.load`` on a downloaded file is code execution. This unpickler
resolves only the few globals needed to rebuild numpy arrays and plain containers, and
refuses everything else before anything is called.
"""

from __future__ import annotations

import collections
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from soccersr.weights.detect import WeightsError

# numpy 2 renamed numpy.core to numpy._core; files written by either version name theirs.
try:
    from numpy._core import multiarray as _multiarray
    from numpy._core import numeric as _numeric
except ImportError:  # numpy < 2
    from numpy.core import multiarray as _multiarray  # type: ignore[no-redef]
    from numpy.core import numeric as _numeric  # type: ignore[no-redef]


class _Refused(pickle.UnpicklingError):
    """The pickle asked for something outside the allow-list (as opposed to being corrupt)."""


def _latin1_bytes(text: str, encoding: str = "latin1") -> bytes:
    """Protocol 2 has no bytes opcode, so Python 3 writes bytes as ``_codecs.encode(str, "latin1")``."""
    if encoding not in ("latin1", "latin-1"):
        raise _Refused(f"refused _codecs.encode with encoding {encoding!r}")
    return text.encode("latin1")


def _allowed_globals() -> dict[tuple[str, str], Callable[..., Any] | type]:
    allowed: dict[tuple[str, str], Callable[..., Any] | type] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("collections", "OrderedDict"): collections.OrderedDict,
        # paddle pickles a tensor as tuple((name, ndarray)); tuple() of data is harmless.
        ("builtins", "tuple"): tuple,
        ("__builtin__", "tuple"): tuple,  # protocol-2 spelling
        ("_codecs", "encode"): _latin1_bytes,
    }
    for package in ("numpy.core", "numpy._core"):
        allowed[(f"{package}.multiarray", "_reconstruct")] = _multiarray._reconstruct
        allowed[(f"{package}.multiarray", "scalar")] = _multiarray.scalar
        allowed[(f"{package}.numeric", "_frombuffer")] = _numeric._frombuffer  # pickle protocol 5
    return allowed


_ALLOWED = _allowed_globals()


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise _Refused(f"refused global {module}.{name}") from None

    def persistent_load(self, pid: Any) -> Any:
        raise _Refused("refused persistent id (not a plain pickle)")


def load_pdparams(path: Path) -> Any:
    """Unpickle ``path`` allowing only numpy arrays and plain containers.

    Returns:
        The unpickled object (normally a dict of numpy arrays, possibly nested).

    Raises:
        WeightsError: unreadable, truncated, or the pickle asks for anything else.
    """
    try:
        with open(path, "rb") as f:
            return _RestrictedUnpickler(f).load()
    except _Refused as e:
        raise WeightsError(
            f"{path}: refused to load: {e} (only numpy arrays and plain containers are allowed)"
        ) from None
    except Exception as e:
        # What a truncated or corrupt pickle raises depends on where it breaks (EOFError, KeyError,
        # OverflowError for a BINBYTES8 length >= 2**63, MemoryError, ...). No code from the file ran:
        # only the allow-listed constructors above can be called, so any error means bad bytes.
        raise WeightsError(f"{path}: not a readable .pdparams pickle ({type(e).__name__}: {e})") from None
