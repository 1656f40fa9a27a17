"""What this CPU can do: the facts behind the CPU precision and backend defaults.

bf16 pays on a CPU only where it is native: AMX tiles (Intel Xeon 4th gen and later) or the
AVX512_BF16 dot-product instructions (Intel Cooper Lake, AMD Zen 4 and later). Elsewhere the
runtimes emulate it and it is slower than fp32, so the default precision follows these flags.
Also the memory this process may still use, which sizes the CPU's auto tile. Standard library
only; the flags are read once per process, the memory on every call.
"""

from __future__ import annotations

import functools
import platform
from collections.abc import Set
from pathlib import Path

NATIVE_BF16_FLAGS = frozenset({"amx_bf16", "avx512_bf16"})
"""Linux /proc/cpuinfo names of the instructions that make bf16 faster than fp32."""


@functools.cache
def cpu_flags() -> frozenset[str]:
    """The CPU feature flags, lower case (Linux: /proc/cpuinfo; elsewhere: what PyTorch detects)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.partition(":")[2].split())
    except OSError:
        pass
    return _torch_flags()


def _torch_flags() -> frozenset[str]:
    # PyTorch's own cpuinfo probe works on macOS and Windows too; it is private, so failures
    # only mean "no flags known" (and fp32).
    try:
        import torch

        capability = torch._C._cpu._get_cpu_capability()
    except (ImportError, AttributeError, RuntimeError):
        return frozenset()
    if not isinstance(capability, dict):
        return frozenset()
    return frozenset(name.lower() for name, present in capability.items() if present is True)


def native_bf16(flags: Set[str] | None = None) -> bool:
    """True when the CPU computes bf16 natively (AMX or AVX512_BF16); ``flags`` for tests."""
    return bool(NATIVE_BF16_FLAGS & (cpu_flags() if flags is None else flags))


def cpu_name() -> str:
    """The CPU model as the OS names it (for benchmark reports)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


# ---------------------------------------------------------------------------------------------
# Memory: what the CPU auto tile is sized from.

_UNLIMITED = 1 << 60
"""cgroup limits at or above this are "no limit" (v1 writes 2**63 rounded down to a page)."""


def available_memory(proc: Path = Path("/proc"), cgroup_root: Path = Path("/sys/fs/cgroup")) -> int | None:
    """Bytes this process can still allocate without swapping or being killed: the smaller of
    the kernel's MemAvailable and the room left under every cgroup memory limit above this
    process (a container's limit is often far below the machine's memory). None where neither
    is readable (not Linux). ``proc`` and ``cgroup_root`` are for tests."""
    rooms = (_meminfo_available(proc / "meminfo"), _cgroup_room(proc / "self" / "cgroup", cgroup_root))
    candidates = [room for room in rooms if room is not None]
    return max(0, min(candidates)) if candidates else None


def _meminfo_available(path: Path) -> int | None:
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _cgroup_room(self_cgroup: Path, root: Path) -> int | None:
    """min(limit - usage) over the memory cgroups that hold this process, cgroup v2 or v1.
    Usage counts inactive page cache as free, since the kernel drops it before failing."""
    try:
        lines = self_cgroup.read_text(encoding="ascii", errors="replace").splitlines()
    except OSError:
        return None
    rooms: list[int] = []
    for line in lines:
        fields = line.split(":", 2)
        if len(fields) != 3:
            continue
        _, controllers, path = fields
        if controllers == "":  # v2 (unified hierarchy)
            folders, files = _ancestors(root, path), ("memory.max", "memory.current", "inactive_file")
        elif "memory" in controllers.split(","):  # v1
            folders = _ancestors(root / "memory", path)
            files = ("memory.limit_in_bytes", "memory.usage_in_bytes", "total_inactive_file")
        else:
            continue
        for folder in folders:
            room = _room(folder, *files)
            if room is not None:
                rooms.append(room)
    return min(rooms) if rooms else None


def _ancestors(mount: Path, path: str) -> list[Path]:
    """The cgroup folder of ``path`` and every folder above it up to the mount (inside a
    container the mount shows the container's own cgroup as its root, so it is always included)."""
    parts = [p for p in path.strip().split("/") if p]
    return [mount.joinpath(*parts[:n]) for n in range(len(parts), -1, -1)]


def _room(folder: Path, limit_file: str, usage_file: str, inactive_key: str) -> int | None:
    try:
        limit_text = (folder / limit_file).read_text().strip()
        if limit_text == "max":
            return None
        limit, usage = int(limit_text), int((folder / usage_file).read_text())
    except (OSError, ValueError):
        return None
    if limit >= _UNLIMITED:
        return None
    inactive = 0
    try:
        for line in (folder / "memory.stat").read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == inactive_key:
                inactive = int(value)
                break
    except (OSError, ValueError):
        pass
    return limit - max(0, usage - inactive)
