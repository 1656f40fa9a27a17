"""What this CPU can do: the facts behind the CPU precision and backend defaults.

bf16 pays on a CPU only where it is native: AMX tiles (Intel Xeon 4th gen and later) or the
AVX512_BF16 dot-product instructions (Intel Cooper Lake, AMD Zen 4 and later). Elsewhere the
runtimes emulate it and it is slower than fp32, so the default precision follows these flags.
Standard library only; the flags are read once per process.
"""

from __future__ import annotations

import functools
import platform
from collections.abc import Set

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
