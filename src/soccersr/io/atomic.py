"""Atomic file writes: a reader sees the old file, no file, or the complete new one, never half.

Every file soccersr writes (upscaled images, the weights cache, checkpoints, exports, logs,
training data) goes through here. The temporary file is a hidden sibling of the target,
``.NAME.PID-SPACE.RANDOM.tmp`` (same filesystem, so the rename is atomic); it is removed on
any exception, Ctrl-C included. A process killed with SIGKILL cannot clean up, so the first
write of a process into a folder removes the temporaries there whose writer is no longer
running. SPACE names the machine and PID namespace the PID belongs to: in a folder shared by
several machines (cluster workers writing to one network path) a PID of another machine says
nothing about that writer here, so its temporaries are left alone.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import logging
import os
import re
import secrets
import socket
import sys
import threading
from collections.abc import Callable
from pathlib import Path

logger = logging.getLogger(__name__)

# Names written before SPACE was added have none; they count as this machine's.
_TEMP_NAME = re.compile(r"\.(?P<target>.+)\.(?P<pid>[0-9]+)(?:-(?P<space>[0-9a-f]{8}))?\.[0-9a-f]{8}\.tmp")
_swept_folders: set[str] = set()
_sweep_lock = threading.Lock()


def atomic_write(
    path: str | os.PathLike[str], write: Callable[[Path], None], *, durable: bool = True, replace: bool = True
) -> None:
    """Call ``write(tmp)`` to fill a temporary sibling file, then rename it to ``path``.

    The file gets the permissions of any new file (0666 minus the umask), whatever ``write``
    did (safetensors, for one, writes 0600). With ``durable`` the file and the rename are
    fsynced too, so after a crash or power loss ``path`` is the old or the new file (worth it
    for checkpoints and caches).

    With ``replace=False`` an existing ``path`` is never replaced, not even one that another
    process created while ``write`` ran: the rename itself refuses, and FileExistsError is
    raised with ``path`` untouched.
    """
    path = Path(path)
    _sweep_once(path.parent)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{pid_space()}.{secrets.token_hex(4)}.tmp")
    try:
        mode = _create_empty(tmp)
        write(tmp)
        if os.stat(tmp).st_mode & 0o777 != mode:
            os.chmod(tmp, mode)
        if durable:
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        if replace:
            os.replace(tmp, path)
        else:
            _rename_without_replacing(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if durable:
        _fsync_dir(path.parent)


def atomic_write_bytes(
    path: str | os.PathLike[str], data: bytes, *, durable: bool = True, replace: bool = True
) -> None:
    """``atomic_write`` of a bytes object."""

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            f.write(data)

    atomic_write(path, write, durable=durable, replace=replace)


def _create_empty(tmp: Path) -> int:
    """Create ``tmp`` as any new file is created; return its permission bits (0666 minus the umask).

    Reading the mode back from a real file gives the umask without ``os.umask``, which would
    change it for every thread for a moment.
    """
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        return os.fstat(fd).st_mode & 0o777
    finally:
        os.close(fd)


# --- never replacing ---------------------------------------------------------------------------


def _rename_without_replacing(src: Path, dst: Path) -> None:
    """Rename ``src`` to ``dst``, or raise FileExistsError when ``dst`` exists, in one atomic step."""
    if os.name == "nt":
        os.rename(src, dst)  # Windows' rename never replaces
        return
    renameat2 = _renameat2()
    if renameat2 is not None:
        if renameat2(-100, os.fsencode(src), -100, os.fsencode(dst), 1) == 0:  # AT_FDCWD, RENAME_NOREPLACE
            return
        code = _errno()
        if code not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):  # else: this filesystem lacks it
            raise OSError(code, os.strerror(code), str(dst))
    try:
        os.link(src, dst)  # a hard link never replaces either; then drop the temporary name
    except OSError as error:
        if error.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOSYS, errno.EMLINK):
            raise
        # A filesystem with neither (FAT, some network shares): check, then rename. The gap
        # between the two is a few microseconds, not the minutes of inference before it.
        if os.path.lexists(dst):
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(dst)) from None
        os.rename(src, dst)
        return
    os.unlink(src)


@functools.cache
def _renameat2():  # noqa: ANN202 - a ctypes function or None
    """glibc's renameat2 (Linux 3.15+, glibc 2.28+), or None where there is none."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    try:
        function = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    function.restype = ctypes.c_int
    return function


def _errno() -> int:
    import ctypes

    return ctypes.get_errno()


# --- leftovers of killed processes -------------------------------------------------------------


def remove_stale_temporaries(folder: str | os.PathLike[str]) -> list[Path]:
    """Remove the temporary files in ``folder`` whose writing process is no longer running.

    Only names of the exact form this module writes are considered, and a file is kept whenever
    its process may still be alive (this process, another user's, any PID that exists) or
    belongs to another machine or PID namespace (see ``pid_space``). Returns the removed paths.
    """
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        match = _TEMP_NAME.fullmatch(entry.name)
        if match is None or match["space"] not in (None, pid_space()):
            continue  # not ours, or written on another machine sharing this folder
        if _process_may_be_alive(int(match["pid"])):
            continue
        try:
            if not entry.is_file(follow_symlinks=False):
                continue
            os.unlink(entry.path)
        except OSError:
            continue
        removed.append(Path(entry.path))
    if removed:
        logger.info("%s: removed %d temporary file(s) left by killed runs", folder, len(removed))
    return removed


def _sweep_once(folder: Path) -> None:
    """``remove_stale_temporaries`` on the first write of this process into ``folder``."""
    key = os.path.realpath(folder)
    with _sweep_lock:
        if key in _swept_folders:
            return
        _swept_folders.add(key)
    remove_stale_temporaries(folder)


@functools.cache
def pid_space() -> str:
    """8 hex digits naming where this process's PIDs mean something: the host name and, on
    Linux, the PID namespace (containers on one host each have their own)."""
    try:
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        namespace = ""
    return hashlib.sha256(f"{socket.gethostname()}/{namespace}".encode()).hexdigest()[:8]


def _process_may_be_alive(pid: int) -> bool:
    if os.name == "nt" or pid <= 0 or pid == os.getpid():
        return True  # on Windows os.kill(pid, 0) would terminate the process, not probe it
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # PermissionError: it exists, and belongs to another user
    return True


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
