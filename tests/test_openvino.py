"""The OpenVINO CPU engine: parity with PyTorch, bf16 accuracy, the compiled-model cache, no
telemetry, thread safety, out-of-memory and non-finite handling, and the fallback without openvino.

Tiny real networks (tests/tiny_models.py) everywhere except the parity and accuracy cases, which
run the built-in weights on real soccer crops.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from soccersr import hardware
from soccersr.infer import backends, openvino_runner
from soccersr.infer.engine import TileEngine
from soccersr.infer.openvino_runner import OpenVinoRunner
from soccersr.infer.torch_runner import TorchRunner
from soccersr.weights import load_model
from tiny_models import tiny_model

openvino = pytest.importorskip("openvino")  # tests/test_engine_choice.py covers a machine without it

NATIVE_BF16 = hardware.native_bf16()
needs_native_bf16 = pytest.mark.skipif(not NATIVE_BF16, reason="this CPU has no native bf16 (AMX/AVX512_BF16)")


def _levels(x: torch.Tensor) -> np.ndarray:
    return (x.clamp(0, 1) * 255).round().to(torch.int16).numpy()


def psnr_8bit(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(((_levels(a) - _levels(b)).astype(np.float64) ** 2).mean())
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def _crops(tiny_dir: Path, size: int, names: tuple[str, ...] = ("01_players.png", "04_lines.png")) -> torch.Tensor:
    """Real soccer crops, shrunk x4 (as a low-resolution input would be), as a float batch."""
    batch = []
    for name in names:
        bgr = cv2.imread(str(tiny_dir / name), cv2.IMREAD_COLOR)
        small = cv2.resize(bgr, (64, 64), interpolation=cv2.INTER_AREA)[:size, :size]
        batch.append(torch.from_numpy(small[:, :, ::-1].astype(np.float32) / 255.0).permute(2, 0, 1))
    return torch.stack(batch)


@pytest.fixture(scope="module")
def weights_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Shared with test_golden / test_weights_load: x4plus converts once per run.
    return tmp_path_factory.getbasetemp() / "shared-weights-cache"


@pytest.fixture(scope="module")
def ov_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One compiled-model cache for the tests that do not test the cache (each tiny model compiles once)."""
    return tmp_path_factory.mktemp("ov-cache")


@pytest.fixture
def fresh_cache(tmp_path: Path) -> Path:
    return tmp_path / "cache"


# ---------------------------------------------------------------------------------------------
# Accuracy on real crops (built-in weights)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["x4plus", "animevideov3"])
def test_fp32_matches_pytorch_within_one_level(name: str, tiny_dir: Path, weights_cache: Path, ov_cache: Path) -> None:
    model = load_model(name, cache_dir=weights_cache)
    x = _crops(tiny_dir, 32)
    with torch.no_grad():
        expected = model.net(x)
    got = OpenVinoRunner(model, precision="fp32", cache_dir=ov_cache).run(x)
    assert got.shape == expected.shape
    diff = np.abs(_levels(got) - _levels(expected))
    assert diff.max() <= 1, f"{name}: OpenVINO fp32 differs from PyTorch by {diff.max()} levels"
    assert psnr_8bit(got, expected) > 60


@pytest.mark.slow
@needs_native_bf16
@pytest.mark.parametrize("name", ["x4plus", "animevideov3"])
def test_bf16_is_within_50_db_of_fp32(name: str, tiny_dir: Path, weights_cache: Path, ov_cache: Path) -> None:
    model = load_model(name, cache_dir=weights_cache)
    x = _crops(tiny_dir, 32)
    with torch.no_grad():
        reference = model.net(x)
    runner = OpenVinoRunner(model, precision="bf16", cache_dir=ov_cache)
    assert runner.precision == "bf16" and runner.reduced_precision
    got = runner.run(x)
    assert 50 <= psnr_8bit(got, reference) < 80  # < 80: it really computed in bf16
    torch_bf16 = TorchRunner(model, device=torch.device("cpu"), precision="bf16").run(x)
    assert psnr_8bit(torch_bf16, reference) >= 50


# ---------------------------------------------------------------------------------------------
# Engine behaviour (tiny models)


@pytest.mark.parametrize("arch", ["RRDBNet", "SRVGGNetCompact"])
@pytest.mark.parametrize("scale", [4, 2])
def test_engine_matches_pytorch_tiled_and_padded(arch: str, scale: int, ov_cache: Path) -> None:
    model = tiny_model(arch, scale=scale)
    x = torch.rand(2, 3, 37, 51, generator=torch.Generator().manual_seed(0))
    runner = OpenVinoRunner(model, precision="fp32", cache_dir=ov_cache)
    reference = TileEngine(TorchRunner(model, device=torch.device("cpu"), precision="fp32"), model, tile=0)
    for tile in (0, 24):
        got = TileEngine(runner, model, tile=tile, tile_overlap=20).upscale(x)
        want = (
            reference.upscale(x)
            if tile == 0
            else TileEngine(reference.runner, model, tile=24, tile_overlap=20).upscale(x)
        )
        assert got.shape == (2, 3, 37 * scale, 51 * scale)
        assert (got - want).abs().max() < 1e-4


def test_no_recompile_for_new_tile_or_image_sizes(monkeypatch: pytest.MonkeyPatch, fresh_cache: Path) -> None:
    compiles = []
    original = openvino.Core.compile_model

    class CountingCore(openvino.Core):
        def compile_model(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            compiles.append(args)
            return original(self, *args, **kwargs)

    monkeypatch.setattr(openvino_runner, "shared_core", CountingCore)
    model = tiny_model()
    engine = TileEngine(OpenVinoRunner(model, precision="fp32", cache_dir=fresh_cache), model, tile=24, tile_overlap=8)
    assert len(compiles) == 1
    for h, w in ((16, 16), (40, 72), (33, 21), (100, 60)):
        assert engine.upscale(torch.rand(1, 3, h, w)).shape == (1, 3, 4 * h, 4 * w)
    assert len(compiles) == 1


def test_threads_share_one_runner(ov_cache: Path) -> None:
    model = tiny_model("SRVGGNetCompact")
    engine = TileEngine(OpenVinoRunner(model, precision="fp32", cache_dir=ov_cache), model, tile=16, tile_overlap=8)
    inputs = [torch.rand(1, 3, 20 + 3 * i, 30 - i, generator=torch.Generator().manual_seed(i)) for i in range(6)]
    expected = [engine.upscale(x) for x in inputs]
    results: dict[int, torch.Tensor] = {}
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            for _ in range(3):
                results[i] = engine.upscale(inputs[i])
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(inputs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for i, want in enumerate(expected):
        assert torch.equal(results[i], want)


class _FailingPool:
    """Stands in for the runner's request pool: fails like OpenVINO does on windows above a size."""

    def __init__(self, pool: object, max_pixels: int, error: BaseException) -> None:
        self.pool, self.max_pixels, self.error = pool, max_pixels, error
        self.failures = 0

    def run(self, x: np.ndarray) -> np.ndarray:
        if x.shape[0] * x.shape[2] * x.shape[3] > self.max_pixels:
            self.failures += 1
            raise self.error
        return self.pool.run(x)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "error", [MemoryError("std::bad_alloc"), RuntimeError("Exception from src/...: std::bad_alloc")]
)
def test_out_of_memory_makes_the_engine_split(error: BaseException, ov_cache: Path) -> None:
    model = tiny_model()
    runner = OpenVinoRunner(model, precision="fp32", cache_dir=ov_cache)
    x = torch.rand(1, 3, 96, 128, generator=torch.Generator().manual_seed(2))
    failing = _FailingPool(runner._pool, 80 * 80, error)
    runner._pool = failing  # type: ignore[assignment]
    engine = TileEngine(runner, model, tile=0, tile_overlap=8)
    got = engine.upscale(x)
    assert failing.failures == 1 and engine.tile == 64  # the whole image failed; 64 px tiles fit
    runner._pool = failing.pool  # type: ignore[assignment]
    assert torch.equal(got, TileEngine(runner, model, tile=64, tile_overlap=8).upscale(x))


def test_other_runtime_errors_pass_through(ov_cache: Path) -> None:
    model = tiny_model()
    runner = OpenVinoRunner(model, precision="fp32", cache_dir=ov_cache)
    runner._pool = _FailingPool(runner._pool, 0, RuntimeError("Check 'shape' failed"))  # type: ignore[assignment]
    with pytest.raises(RuntimeError, match="shape"):
        TileEngine(runner, model, tile=0).upscale(torch.rand(1, 3, 8, 8))


@needs_native_bf16
def test_non_finite_bf16_tiles_are_redone_in_fp32(fresh_cache: Path) -> None:
    model = tiny_model()
    runner = OpenVinoRunner(model, precision="bf16", cache_dir=fresh_cache)
    assert runner.reduced_precision and runner._fp32_pool is None

    class NanPool:
        def run(self, x: np.ndarray) -> np.ndarray:
            return np.full((x.shape[0], 3, x.shape[2] * 4, x.shape[3] * 4), np.nan, np.float32)

    runner._pool = NanPool()  # type: ignore[assignment]
    x = torch.rand(1, 3, 20, 24, generator=torch.Generator().manual_seed(3))
    got = TileEngine(runner, model, tile=0).upscale(x)
    expected = TileEngine(OpenVinoRunner(model, precision="fp32", cache_dir=fresh_cache), model, tile=0).upscale(x)
    assert runner._fp32_pool is not None
    assert torch.equal(got, expected)


# ---------------------------------------------------------------------------------------------
# The compiled-model cache


def _entries(folder: Path) -> list[Path]:
    return sorted((folder / "openvino").glob("*.ovblob"))


def _compiles(caplog: pytest.LogCaptureFixture) -> int:
    return sum("OpenVINO: compiling" in r.getMessage() for r in caplog.records)


def test_cache_is_reused(caplog: pytest.LogCaptureFixture, fresh_cache: Path) -> None:
    caplog.set_level(logging.INFO, logger="soccersr.infer.openvino_runner")
    model = tiny_model()
    x = torch.rand(1, 3, 12, 10, generator=torch.Generator().manual_seed(4))
    first = OpenVinoRunner(model, precision="fp32", cache_dir=fresh_cache).run(x)
    (entry,) = _entries(fresh_cache)
    stamp = entry.stat().st_mtime_ns
    assert _compiles(caplog) == 1
    second = OpenVinoRunner(model, precision="fp32", cache_dir=fresh_cache).run(x)
    assert _compiles(caplog) == 1, "a second runner compiled again instead of using the cache"
    assert entry.stat().st_mtime_ns == stamp
    assert torch.equal(first, second)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_other_weights_and_precisions_get_their_own_entries(fresh_cache: Path) -> None:
    x = torch.rand(1, 3, 12, 10, generator=torch.Generator().manual_seed(4))
    a = OpenVinoRunner(tiny_model(seed=0), precision="fp32", cache_dir=fresh_cache).run(x)
    b = OpenVinoRunner(tiny_model(seed=1), precision="fp32", cache_dir=fresh_cache).run(x)
    assert len(_entries(fresh_cache)) == 2
    assert not torch.allclose(a, b)  # seed 1 did not reuse seed 0's compiled weights
    with torch.no_grad():
        assert (b - tiny_model(seed=1).net(x)).abs().max() < 1e-4
    if NATIVE_BF16:
        OpenVinoRunner(tiny_model(seed=0), precision="bf16", cache_dir=fresh_cache)
        assert len(_entries(fresh_cache)) == 3


def test_cache_key_covers_what_changes_the_compiled_model(monkeypatch: pytest.MonkeyPatch) -> None:
    model = tiny_model()
    key = openvino_runner.cache_key(model, "fp32", 2, "2026.4.1")
    assert key == openvino_runner.cache_key(tiny_model(), "fp32", 2, "2026.4.1")
    others = {
        openvino_runner.cache_key(tiny_model(seed=1), "fp32", 2, "2026.4.1"),
        openvino_runner.cache_key(tiny_model("SRVGGNetCompact"), "fp32", 2, "2026.4.1"),
        openvino_runner.cache_key(model, "bf16", 2, "2026.4.1"),
        openvino_runner.cache_key(model, "fp32", 4, "2026.4.1"),
        openvino_runner.cache_key(model, "fp32", 2, "2026.5.0"),
    }
    monkeypatch.setattr(hardware, "cpu_flags", lambda: frozenset({"avx2"}))
    others.add(openvino_runner.cache_key(model, "fp32", 2, "2026.4.1"))
    assert key not in others and len(others) == 6


@pytest.mark.parametrize("damage", ["flip_blob_byte", "truncate", "garbage", "stale_key", "old_format"])
def test_damaged_or_stale_entry_is_rebuilt_with_one_warning(
    damage: str, caplog: pytest.LogCaptureFixture, fresh_cache: Path
) -> None:
    model = tiny_model()
    x = torch.rand(1, 3, 12, 10, generator=torch.Generator().manual_seed(4))
    expected = OpenVinoRunner(model, precision="fp32", cache_dir=fresh_cache).run(x)
    (entry,) = _entries(fresh_cache)
    data = bytearray(entry.read_bytes())
    if damage == "flip_blob_byte":
        data[len(data) // 2] ^= 0xFF
    elif damage == "truncate":
        data = data[: len(data) // 3]
    elif damage == "garbage":
        data = bytearray(b"\x00" * 100)
    elif damage == "stale_key":
        lines = bytes(data).split(b"\n", 3)
        data = bytearray(b"\n".join([lines[0], b"0" * 64, lines[2], lines[3]]))
    else:
        data = bytearray(bytes(data).replace(openvino_runner.CACHE_FORMAT.encode(), b"soccersr-openvino-cache/0", 1))
    entry.write_bytes(bytes(data))

    caplog.clear()
    caplog.set_level(logging.INFO, logger="soccersr.infer.openvino_runner")
    got = OpenVinoRunner(model, precision="fp32", cache_dir=fresh_cache).run(x)
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "rebuilding" in warnings[0] and entry.name in warnings[0]
    assert torch.equal(got, expected)
    # rebuilt: the next runner uses it silently
    caplog.clear()
    OpenVinoRunner(model, precision="fp32", cache_dir=fresh_cache)
    assert _compiles(caplog) == 0 and not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_entries_are_written_atomically(monkeypatch: pytest.MonkeyPatch, fresh_cache: Path) -> None:
    writes: list[Path] = []
    real = openvino_runner.atomic_write_bytes

    def spy(path, data, **kwargs):  # type: ignore[no-untyped-def]
        writes.append(Path(path))
        return real(path, data, **kwargs)

    monkeypatch.setattr(openvino_runner, "atomic_write_bytes", spy)
    OpenVinoRunner(tiny_model(), precision="fp32", cache_dir=fresh_cache)
    assert writes == _entries(fresh_cache)
    assert [p.name for p in (fresh_cache / "openvino").iterdir()] == [writes[0].name]  # no temporary left


def test_unwritable_cache_still_runs(caplog: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    blocker = tmp_path / "cache"
    blocker.write_text("a file where the cache folder should be")
    runner = OpenVinoRunner(tiny_model(), precision="fp32", cache_dir=blocker)
    assert runner.run(torch.rand(1, 3, 8, 8)).shape == (1, 3, 32, 32)
    assert any("cannot write" in r.getMessage() for r in caplog.records)


# ---------------------------------------------------------------------------------------------
# Telemetry: a photo desk's tool must not phone home


def test_telemetry_never_starts(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import socket

    import openvino_telemetry

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("OpenVINO telemetry was started")

    for name in ("__init__", "start_session", "send_event", "end_session", "force_shutdown"):
        if hasattr(openvino_telemetry.Telemetry, name):
            monkeypatch.setattr(openvino_telemetry.Telemetry, name, refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)  # nothing else may go out either
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setenv("SOCCERSR_CACHE_DIR", str(tmp_path / "cache"))
    model = tiny_model()
    x = torch.rand(1, 3, 20, 18)
    for _ in range(2):  # first run: export + compile + cache write; second: cache import
        engine = backends.open_upscaler(model, backends.EngineOptions(engine="auto", device="cpu"))
        assert isinstance(engine.runner, OpenVinoRunner)
        assert engine.upscale(x).shape == (1, 3, 80, 72)
    assert _entries(tmp_path / "cache")


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="reads Linux's /proc/self/maps")
def test_freed_runners_never_leave_a_dangling_signal_stack(ov_cache: Path) -> None:
    # On AMX CPUs the CPU plugin swaps in its own sigaltstack per Core; one Core per runner, freed
    # in creation order, left it pointing at unmapped memory, and the next SIGCHLD killed the
    # process (the full test suite died of SIGSEGV at the DDP test).
    import ctypes
    import gc

    class StackT(ctypes.Structure):
        _fields_ = [("sp", ctypes.c_void_p), ("flags", ctypes.c_int), ("size", ctypes.c_size_t)]

    def signal_stack_is_sane() -> bool:
        stack = StackT()
        assert ctypes.CDLL(None).sigaltstack(None, ctypes.byref(stack)) == 0
        if stack.flags & 2 or not stack.sp:  # SS_DISABLE
            return True
        for line in Path("/proc/self/maps").read_text().splitlines():
            low, high = (int(v, 16) for v in line.split()[0].split("-"))
            if low <= stack.sp and stack.sp + stack.size <= high:
                return True
        return False

    model = tiny_model()
    first = OpenVinoRunner(model, precision="fp32", cache_dir=ov_cache)
    second = OpenVinoRunner(model, precision="fp32", cache_dir=ov_cache)
    del first
    gc.collect()
    del second
    gc.collect()
    assert signal_stack_is_sane()
