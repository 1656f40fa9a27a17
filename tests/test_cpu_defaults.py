"""CPU defaults: precision from the CPU's bf16 flags, and the auto tile from the memory available
(MemAvailable and cgroup limits, v1 and v2), logged once at debug level."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from soccersr import hardware
from soccersr.infer import devices
from soccersr.infer.backends import create_runner
from soccersr.infer.devices import activation_bytes_per_pixel, auto_tile_side, resolve_precision
from soccersr.infer.engine import TileEngine
from soccersr.infer.torch_runner import TorchRunner
from tiny_models import tiny_model

CPU = torch.device("cpu")
X4PLUS = {"num_in_ch": 3, "num_out_ch": 3, "scale": 4, "num_feat": 64, "num_block": 23, "num_grow_ch": 32}


def _flags(monkeypatch: pytest.MonkeyPatch, *flags: str) -> None:
    monkeypatch.setattr(hardware, "cpu_flags", lambda: frozenset(flags))


# ---------------------------------------------------------------------------------------------
# Precision


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (("avx512f", "amx_bf16", "amx_tile"), "bf16"),  # Xeon 4th gen and later
        (("avx512f", "avx512_bf16"), "bf16"),  # Cooper Lake, AMD Zen 4/5
        (("avx2", "fma", "avx512f"), "fp32"),  # no native bf16: emulated bf16 is slower
        ((), "fp32"),  # flags unknown
    ],
)
def test_auto_precision_on_the_cpu_follows_the_bf16_flags(
    monkeypatch: pytest.MonkeyPatch, flags: tuple[str, ...], expected: str
) -> None:
    _flags(monkeypatch, *flags)
    assert hardware.native_bf16() == (expected == "bf16")
    assert resolve_precision("auto", CPU) == expected
    assert resolve_precision("fp32", CPU) == "fp32"  # forcing fp32 always wins
    assert resolve_precision("auto", torch.device("cuda", 0)) == "fp16"  # CUDA is unchanged


def _emulation_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "emulated" in r.getMessage()]


def test_explicit_bf16_without_native_support_warns_where_pytorch_emulates_it(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    _flags(monkeypatch, "avx2")
    assert resolve_precision("bf16", CPU) == "bf16"
    assert _emulation_warnings(caplog) == []  # the engine decides what bf16 costs, not the resolver
    with pytest.raises(ValueError, match="fp16"):
        resolve_precision("fp16", CPU)
    runner = create_runner(tiny_model(), engine="torch", device="cpu", precision="bf16")
    assert runner.precision == "bf16"
    assert len(_emulation_warnings(caplog)) == 1


def test_openvino_falls_back_to_fp32_without_an_emulation_warning(
    caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    """OpenVINO runs fp32 where bf16 is not native and says so; "bf16 is emulated and slower" would
    contradict that line (both were printed before)."""
    pytest.importorskip("openvino")
    from soccersr.infer.openvino_runner import OpenVinoRunner

    if hardware.native_bf16():
        pytest.skip("this CPU has native bf16: OpenVINO runs it, there is no fallback to see")
    with caplog.at_level(logging.INFO):
        runner = OpenVinoRunner(tiny_model(), precision="bf16", cache_dir=tmp_path)
    assert runner.precision == "fp32"
    assert _emulation_warnings(caplog) == []
    assert any("runs" in r.getMessage() and "fp32" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(("flags", "expected"), [(("amx_bf16",), "bf16"), (("avx2",), "fp32")])
def test_both_cpu_engines_get_the_selected_precision(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, flags: tuple[str, ...], expected: str
) -> None:
    _flags(monkeypatch, *flags)
    model = tiny_model()
    torch_runner = create_runner(model, engine="torch", device="cpu")
    assert isinstance(torch_runner, TorchRunner) and torch_runner.precision == expected
    assert torch_runner.reduced_precision == (expected == "bf16")
    if expected == "bf16":
        # channels_last bf16 weights: the fast oneDNN path where bf16 is native
        conv = torch_runner._net.conv_first.weight
        assert conv.dtype == torch.bfloat16 and conv.is_contiguous(memory_format=torch.channels_last)
    pytest.importorskip("openvino")
    monkeypatch.setenv("SOCCERSR_CACHE_DIR", str(tmp_path))
    ov_runner = create_runner(model, engine="openvino", device="cpu", precision="fp32")
    assert ov_runner.precision == "fp32"


def test_cpu_flags_come_from_cpuinfo_or_torch() -> None:
    flags = hardware.cpu_flags()
    assert isinstance(flags, frozenset)
    if Path("/proc/cpuinfo").exists():
        assert flags  # Linux always lists some
    assert hardware.cpu_name()


# ---------------------------------------------------------------------------------------------
# Memory available


def _proc(tmp_path: Path, mem_available_kib: int | None, cgroup: str) -> Path:
    proc = tmp_path / "proc"
    (proc / "self").mkdir(parents=True)
    lines = ["MemTotal:       24683584 kB"]
    if mem_available_kib is not None:
        lines.append(f"MemAvailable:   {mem_available_kib} kB")
    (proc / "meminfo").write_text("\n".join(lines) + "\n")
    (proc / "self" / "cgroup").write_text(cgroup)
    return proc


def test_memory_without_cgroup_limits_is_memavailable(tmp_path: Path) -> None:
    proc = _proc(tmp_path, 20 * 1024 * 1024, "0::/user.slice/session.scope\n")
    root = tmp_path / "cg"
    (root / "user.slice" / "session.scope").mkdir(parents=True)
    (root / "user.slice" / "session.scope" / "memory.max").write_text("max\n")
    assert hardware.available_memory(proc, root) == 20 << 30


def test_cgroup_v2_limit_of_a_parent_counts(tmp_path: Path) -> None:
    proc = _proc(tmp_path, 20 * 1024 * 1024, "0::/box/job\n")
    root = tmp_path / "cg"
    (root / "box" / "job").mkdir(parents=True)
    (root / "box" / "job" / "memory.max").write_text("max\n")
    (root / "box" / "memory.max").write_text(str(4 << 30))
    (root / "box" / "memory.current").write_text(str(3 << 30))
    (root / "box" / "memory.stat").write_text(f"anon 100\ninactive_file {1 << 30}\nactive_file 5\n")
    # 4 GiB limit, 3 GiB used of which 1 GiB is reclaimable page cache: 2 GiB left
    assert hardware.available_memory(proc, root) == 2 << 30


def test_cgroup_v1_limit(tmp_path: Path) -> None:
    proc = _proc(tmp_path, 20 * 1024 * 1024, "4:memory:/docker/abc\n3:cpuset:/\n0::/\n")
    root = tmp_path / "cg"
    folder = root / "memory" / "docker" / "abc"
    folder.mkdir(parents=True)
    (folder / "memory.limit_in_bytes").write_text(str(6 << 30))
    (folder / "memory.usage_in_bytes").write_text(str(1 << 30))
    (root / "memory" / "memory.limit_in_bytes").write_text("9223372036854771712\n")  # the root: no limit
    (root / "memory" / "memory.usage_in_bytes").write_text(str(10 << 30))
    assert hardware.available_memory(proc, root) == 5 << 30


def test_memory_unknown_off_linux(tmp_path: Path) -> None:
    assert hardware.available_memory(tmp_path / "no-proc", tmp_path / "no-cgroup") is None


def test_this_machine_reports_some_memory() -> None:
    if Path("/proc/meminfo").exists():
        available = hardware.available_memory()
        assert available is not None and available > 0


# ---------------------------------------------------------------------------------------------
# Auto tile from the memory available


def _auto_tile(monkeypatch: pytest.MonkeyPatch, available: int | None, precision: str = "fp32") -> int:
    monkeypatch.setattr(hardware, "available_memory", lambda: available)
    return auto_tile_side(activation_bytes_per_pixel("RRDBNet", X4PLUS, precision), None, 32)


def test_a_480x270_frame_is_not_tiled_on_a_24_gib_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    for precision in ("fp32", "bf16"):
        tile = _auto_tile(monkeypatch, 22 << 30, precision)
        assert (tile + 2 * 32) ** 2 >= 480 * 270  # the engine runs it in one pass
        assert tile == devices.CPU_MAX_AUTO_TILE


def test_less_memory_gives_smaller_tiles(monkeypatch: pytest.MonkeyPatch) -> None:
    roomy, tight, tiny = (_auto_tile(monkeypatch, gib << 30) for gib in (22, 2, 0))
    assert roomy > tight > tiny >= 32
    # the window's estimated activations stay within the budget
    per_pixel = activation_bytes_per_pixel("RRDBNet", X4PLUS, "fp32")
    assert (tight + 64) ** 2 * per_pixel <= (2 << 30) * devices.CPU_MEMORY_SHARE
    assert _auto_tile(monkeypatch, None) == auto_tile_side(per_pixel, None, 32)  # fallback budget
    monkeypatch.setattr(hardware, "available_memory", lambda: None)
    assert devices.cpu_memory_budget() == devices.CPU_FALLBACK_BUDGET


def test_chosen_tile_is_logged_once_at_debug_level(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="soccersr")
    model = tiny_model()
    engine = TileEngine(TorchRunner(model, device=CPU, precision="fp32"), model)
    for _ in range(3):
        engine.upscale(torch.rand(1, 3, 20, 20))
    lines = [r for r in caplog.records if "auto tile" in r.getMessage()]
    assert len(lines) == 1 and lines[0].levelno == logging.DEBUG
    assert str(engine.tile) in lines[0].getMessage()
