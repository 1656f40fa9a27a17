"""Atomic file writes: a reader sees the old file, no file, or the complete new one, never half.

Every file soccersr writes (upscaled images, the weights cache, checkpoints, exports, logs,
training data) goes through here. The temporary file is a hidden sibling of the target (same
filesystem, so the rename is atomic); it is removed on any exception, Ctrl-C included.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable
from pathlib import Path


def atomic_write(path: str | os.PathLike[str], write: Callable[[Path], None], *, durable: bool = True) -> None:
    """Call ``write(tmp)`` to create a temporary sibling file, then rename it to ``path``.

    With ``durable`` the file and the rename are fsynced too, so after a crash or power loss
    ``path`` is the old or the new file (worth it for checkpoints and caches).
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        write(tmp)
        if durable:
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if durable:
        _fsync_dir(path.parent)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes, *, durable: bool = True) -> None:
    """``atomic_write`` of a bytes object."""

    def write(tmp: Path) -> None:
        # os.open with 0o666 (minus the umask) like any new file; tempfile.mkstemp would make it 0o600.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
        with os.fdopen(fd, "wb") as f:
            f.write(data)

    atomic_write(path, write, durable=durable)


def _fsync_dir(folder: Path) -> None:
    # Makes the rename itself durable on POSIX; not possible everywhere, and then not needed.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
