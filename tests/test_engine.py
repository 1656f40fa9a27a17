"""The tiled inference engine: tiled == untiled, padding, post-resize, OOM splitting,
the non-finite guard, batches, threads, progress, devices and precisions."""

from __future__ import annotations

import threading
from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from soccersr.infer.engine import MIN_TILE, TileEngine, Upscaler
from soccersr.infer.tiling import Size, plan_tiles
from soccersr.weights.model import SRModel, build_network, size_multiple_for

RRDB_TINY = {"num_in_ch": 3, "num_out_ch": 3, "num_feat": 8, "num_block": 1, "num_grow_ch": 4}
SRVGG_TINY = {"num_in_ch": 3, "num_out_ch": 3, "num_feat": 8, "num_conv": 2, "upscale": 4, "act_type": "prelu"}
# Receptive field radius in input pixels: RRDBNet(1 block) has 17 convs at input resolution,
# SRVGGNetCompact(num_conv=2) 4. An overlap above it makes tiling exact.
EXACT_OVERLAP = 20


def _model(arch: str, kwargs: dict, *, scale: float | None = None, seed: int = 0) -> SRModel:
    torch.manual_seed(seed)  # the archs initialise with the global RNG; tests pin it
    net = build_network(arch, kwargs).eval()
    if arch == "RRDBNet":
        # Random init leaves outputs near zero, mostly clamped away: rescale the last conv so
        # outputs spread over [0, 1] and errors are visible.
        with torch.no_grad():
            probe = net(_image(1, 3, 24, 24, seed=99))
            net.conv_last.weight.mul_(0.25 / probe.std())
            net.conv_last.bias.mul_(0.25 / probe.std()).add_(0.5 - probe.mean() * 0.25 / probe.std())
    net_scale = int(kwargs.get("scale", kwargs.get("upscale", 4)))
    return SRModel(
        net=net,
        name=f"tiny-{arch}",
        arch=arch,
        arch_kwargs=kwargs,
        net_scale=net_scale,
        scale=net_scale if scale is None else scale,
        size_multiple=size_multiple_for(arch, kwargs),
    )


def _image(*shape: int, seed: int = 1) -> Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


def _reference(model: SRModel, images: Tensor) -> Tensor:
    """Independent of the engine: pad (reflect) to the size multiple, run, crop, resize, clamp."""
    h, w = images.shape[-2:]
    m = model.size_multiple
    x = F.pad(images, (0, -w % m, 0, -h % m), mode="reflect") if (h % m or w % m) else images
    with torch.no_grad():
        out = model.net(x)[:, :, : h * model.net_scale, : w * model.net_scale]
    if model.post_resize is not None:
        size = (round(h * model.scale), round(w * model.scale))
        out = F.interpolate(out, size=size, mode="bicubic", align_corners=False)
    return out.clamp(0, 1)


@pytest.mark.parametrize(
    ("arch", "kwargs", "shape"),
    [
        ("RRDBNet", RRDB_TINY | {"scale": 4}, (1, 3, 45, 70)),
        ("SRVGGNetCompact", SRVGG_TINY, (1, 3, 70, 45)),
        ("RRDBNet", RRDB_TINY | {"scale": 2}, (1, 3, 47, 69)),  # odd sizes: padded to multiples of 2
        ("RRDBNet", RRDB_TINY | {"scale": 1}, (1, 3, 42, 57)),  # multiples of 4
    ],
)
def test_tiled_equals_untiled(arch: str, kwargs: dict, shape: tuple[int, ...]) -> None:
    model = _model(arch, kwargs)
    images = _image(*shape)
    whole = Upscaler(model, device="cpu", engine="torch", precision="fp32", tile=0).upscale(images)
    tiled_upscaler = Upscaler(
        model, device="cpu", engine="torch", precision="fp32", tile=16, tile_overlap=EXACT_OVERLAP
    )
    tiled = tiled_upscaler.upscale(images)
    s = model.net_scale
    assert whole.shape == (shape[0], 3, shape[2] * s, shape[3] * s)
    assert torch.allclose(whole, _reference(model, images), atol=1e-5, rtol=0)
    assert (tiled - whole).abs().max().item() < 1e-5
    assert 0.05 < whole.mean().item() < 0.95 and whole.std().item() > 0.05  # not a degenerate output


def test_small_overlap_is_not_exact() -> None:
    """The equality above is not vacuous: with too little context, tiles differ."""
    model = _model("RRDBNet", RRDB_TINY | {"scale": 4})
    images = _image(1, 3, 45, 70)
    whole = Upscaler(model, device="cpu", engine="torch", precision="fp32", tile=0).upscale(images)
    tiled = Upscaler(model, device="cpu", engine="torch", precision="fp32", tile=16, tile_overlap=2).upscale(images)
    assert (tiled - whole).abs().max().item() > 1e-3


def test_post_resize_is_applied_once_to_the_stitched_image() -> None:
    model = _model("SRVGGNetCompact", SRVGG_TINY, scale=2)  # animevideov3-x2 style: x4 net, bicubic x0.5
    images = _image(1, 3, 33, 50)
    whole = Upscaler(model, device="cpu", engine="torch", precision="fp32", tile=0).upscale(images)
    tiled = Upscaler(model, device="cpu", engine="torch", precision="fp32", tile=16, tile_overlap=EXACT_OVERLAP)
    tiled = tiled.upscale(images)
    assert whole.shape == (1, 3, 66, 100)
    assert torch.allclose(whole, _reference(model, images), atol=1e-5, rtol=0)
    assert (tiled - whole).abs().max().item() < 1e-5
    # Independent check of the resize itself: a x4 then x0.5 bicubic is not a plain x2 network output.
    with torch.no_grad():
        raw = model.net(images)
    assert (whole - raw[:, :, ::2, ::2].clamp(0, 1)).abs().max().item() > 1e-3


def test_scale3_post_resize_shape() -> None:
    model = _model("SRVGGNetCompact", SRVGG_TINY, scale=3)
    out = Upscaler(model, device="cpu", engine="torch", precision="fp32", tile=0).upscale(_image(1, 3, 11, 7))
    assert out.shape == (1, 3, 33, 21)
    assert torch.allclose(out, _reference(model, _image(1, 3, 11, 7)), atol=1e-5, rtol=0)


def test_output_is_clamped_and_pins_a_value() -> None:
    model = _model("SRVGGNetCompact", SRVGG_TINY)
    images = _image(1, 3, 8, 8)
    out = Upscaler(model, device="cpu", engine="torch", precision="fp32", tile=0).upscale(images)
    assert out.min().item() >= 0.0 and out.max().item() <= 1.0
    raw = model.net(images).detach()
    assert raw.min().item() < 0.0 or raw.max().item() > 1.0  # clamping did something
    assert out[0, 1, 5, 9].item() == pytest.approx(raw[0, 1, 5, 9].clamp(0, 1).item(), abs=1e-6)


def test_batch_of_two_equals_one_by_one() -> None:
    model = _model("RRDBNet", RRDB_TINY | {"scale": 4})
    images = torch.cat([_image(1, 3, 30, 41, seed=1), _image(1, 3, 30, 41, seed=2)])
    upscaler = Upscaler(
        model, device="cpu", engine="torch", precision="fp32", tile=16, tile_overlap=EXACT_OVERLAP, batch_size=3
    )
    both = upscaler.upscale(images)
    assert both.shape == (2, 3, 120, 164)
    for i in range(2):
        assert (both[i : i + 1] - upscaler.upscale(images[i : i + 1])).abs().max().item() < 1e-5
    assert (both[0] - both[1]).abs().max().item() > 0.1


def test_progress_counts_tiles() -> None:
    model = _model("SRVGGNetCompact", SRVGG_TINY)
    calls: list[tuple[int, int]] = []
    upscaler = Upscaler(model, device="cpu", engine="torch", precision="fp32", tile=16, tile_overlap=4, batch_size=2)
    upscaler.upscale(_image(2, 3, 20, 40), progress=lambda done, total: calls.append((done, total)))
    # 2 images x (2 rows x 3 columns) tiles, 2 per batch.
    assert calls == [(0, 12), (2, 12), (4, 12), (6, 12), (8, 12), (10, 12), (12, 12)]


def test_out_of_memory_splits_and_remembers(monkeypatch: pytest.MonkeyPatch) -> None:
    model = _model("SRVGGNetCompact", SRVGG_TINY)
    images = _image(1, 3, 90, 130)
    expected = Upscaler(model, device="cpu", engine="torch", precision="fp32", tile=0).upscale(images)
    upscaler = Upscaler(model, device="cpu", engine="torch", precision="fp32", tile=128, tile_overlap=6)
    runner = upscaler.runner
    real_run = runner.run
    seen: list[tuple[int, int]] = []

    def fragile_run(windows: Tensor) -> Tensor:
        seen.append(tuple(windows.shape[-2:]))
        if windows.shape[-2] * windows.shape[-1] > 60 * 60:  # a "device" that fits 60x60 windows
            raise torch.OutOfMemoryError("simulated")
        return real_run(windows)

    monkeypatch.setattr(runner, "run", fragile_run)
    calls: list[tuple[int, int]] = []
    out = upscaler.upscale(images, progress=lambda done, total: calls.append((done, total)))
    assert (out - expected).abs().max().item() < 1e-5
    # Cores 90x65 (windows 90x77) fail; the tile halves to 45: cores 45x44, windows 57x56 fit.
    assert seen[0] == (90, 77)
    assert upscaler.tile == 45
    assert calls[0] == (0, 2) and calls[-1] == (6, 6)
    # Remembered: the next image starts at the smaller size, with no failed attempt.
    seen.clear()
    again = upscaler.upscale(images)
    assert (again - expected).abs().max().item() < 1e-5
    assert seen == [(57, 56)] * 6


def test_out_of_memory_keeps_finished_tiles(monkeypatch: pytest.MonkeyPatch) -> None:
    model = _model("SRVGGNetCompact", SRVGG_TINY)
    images = _image(1, 3, 64, 128)
    expected = Upscaler(model, device="cpu", engine="torch", precision="fp32", tile=0).upscale(images)
    upscaler = Upscaler(model, device="cpu", engine="torch", precision="fp32", tile=64, tile_overlap=8)
    runner = upscaler.runner
    real_run = runner.run
    windows_run: list[int] = []

    def fails_once(windows: Tensor) -> Tensor:
        windows_run.append(len(windows))
        if len(windows_run) == 2:  # the second 64x64 tile fails, the first is kept
            raise torch.OutOfMemoryError("simulated")
        return real_run(windows)

    monkeypatch.setattr(runner, "run", fails_once)
    out = upscaler.upscale(images)
    assert (out - expected).abs().max().item() < 1e-5
    assert upscaler.tile == 32
    # First plan: 2 tiles (1 done, 1 failed). Second plan at 32: 8 tiles, 4 inside the finished core.
    assert len(windows_run) == 2 + 4


def test_out_of_memory_halves_batch_first_and_gives_up_at_the_floor(monkeypatch: pytest.MonkeyPatch) -> None:
    model = _model("SRVGGNetCompact", SRVGG_TINY)
    upscaler = Upscaler(model, device="cpu", engine="torch", precision="fp32", tile=64, tile_overlap=4, batch_size=4)
    sizes: list[tuple[int, int, int]] = []

    def always_oom(windows: Tensor) -> Tensor:
        sizes.append((len(windows), windows.shape[-2], windows.shape[-1]))
        raise torch.OutOfMemoryError("simulated")

    monkeypatch.setattr(upscaler.runner, "run", always_oom)
    with pytest.raises(torch.OutOfMemoryError):
        upscaler.upscale(_image(1, 3, 128, 128))
    batches = [n for n, _, _ in sizes]
    tiles = [h - 8 for _, h, _ in sizes]  # windows are cores + 2 x 4
    assert batches[:3] == [4, 2, 1]  # fewer windows per batch first
    assert tiles[2:] == [64, MIN_TILE]  # then smaller tiles, down to the floor
    assert upscaler.tile == MIN_TILE


@dataclass
class _NanOnceRunner:
    """A fake reduced-precision backend: tiles whose window touches x == 0 come back NaN."""

    device: torch.device = torch.device("cpu")
    reduced_precision: bool = True
    fp32_calls: int = 0

    def run(self, windows: Tensor) -> Tensor:
        out = F.interpolate(windows, scale_factor=2, mode="nearest")
        out[windows[:, 0, 0, 0] > 0.5] = float("nan")
        return out

    def run_fp32(self, windows: Tensor) -> Tensor:
        self.fp32_calls += len(windows)
        return F.interpolate(windows, scale_factor=2, mode="nearest")

    def auto_tile(self, overlap: int) -> int:
        return 64

    def auto_batch(self, window: Size) -> int:
        return 3


@dataclass(frozen=True)
class _Facts:
    name: str = "facts"
    net_scale: int = 2
    scale: float = 2
    size_multiple: int = 1
    post_resize: float | None = None


def test_non_finite_tiles_are_redone_in_fp32() -> None:
    runner = _NanOnceRunner()
    upscaler = TileEngine(runner, _Facts(), tile=8, tile_overlap=2)
    images = _image(1, 3, 24, 24)
    out = upscaler.upscale(images)
    assert torch.isfinite(out).all()
    assert torch.equal(out, F.interpolate(images, scale_factor=2, mode="nearest"))
    plan = plan_tiles(Size(24, 24), 8, 2)
    poisoned = sum(1 for t in plan if images[0, 0, t.window.y, t.window.x].item() > 0.5)
    assert len(plan) == 9 and 0 < poisoned < 9
    assert runner.fp32_calls == poisoned  # only the bad tiles, not their batches
    assert upscaler.scale == 2 and upscaler.tile == 8


def test_two_threads_share_one_upscaler() -> None:
    model = _model("SRVGGNetCompact", SRVGG_TINY)
    upscaler = Upscaler(model, device="cpu", engine="torch", precision="fp32", tile=16, tile_overlap=6)
    images = [_image(1, 3, 40, 56, seed=5), _image(1, 3, 56, 40, seed=6)]
    serial = [upscaler.upscale(x) for x in images]
    results: dict[int, list[Tensor]] = {0: [], 1: []}
    barrier = threading.Barrier(2)

    def work(i: int) -> None:
        barrier.wait()
        for _ in range(3):
            results[i].append(upscaler.upscale(images[i]))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(2):
        assert len(results[i]) == 3
        for r in results[i]:
            assert torch.equal(r, serial[i])


def test_input_contract_is_enforced() -> None:
    upscaler = Upscaler(_model("SRVGGNetCompact", SRVGG_TINY), device="cpu", engine="torch", precision="fp32", tile=0)
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        upscaler.upscale(torch.rand(3, 8, 8))
    with pytest.raises(ValueError, match="float32"):
        upscaler.upscale(torch.rand(1, 3, 8, 8, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        upscaler.upscale(torch.rand(1, 4, 8, 8))
    with pytest.raises(TypeError):
        upscaler.upscale(torch.rand(1, 3, 8, 8).numpy())  # type: ignore[arg-type]


def test_options_are_validated() -> None:
    model = _model("SRVGGNetCompact", SRVGG_TINY)
    with pytest.raises(ValueError, match="tile"):
        Upscaler(model, device="cpu", engine="torch", precision="fp32", tile=-1)
    with pytest.raises(ValueError, match="batch_size"):
        Upscaler(model, device="cpu", engine="torch", precision="fp32", batch_size=0)
    with pytest.raises(ValueError, match="precision"):
        Upscaler(model, device="cpu", engine="torch", precision="fp8")
    with pytest.raises(ValueError, match="fp16"):
        Upscaler(model, device="cpu", engine="torch", precision="fp16")
    with pytest.raises(ValueError, match="device"):
        Upscaler(model, device="tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            Upscaler(model, device="cuda:0")


def test_auto_settings_on_cpu(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    from soccersr import hardware

    monkeypatch.setenv("SOCCERSR_CACHE_DIR", str(tmp_path))  # OpenVINO's compiled-model cache
    model = _model("RRDBNet", RRDB_TINY | {"scale": 4})
    upscaler = Upscaler(model, device="auto" if not torch.cuda.is_available() else "cpu")
    assert upscaler.device == torch.device("cpu")
    assert 32 <= upscaler.tile <= 512
    # bf16 where the CPU has it natively (tests/test_cpu_defaults.py mocks the flags)
    assert upscaler.runner.precision == ("bf16" if hardware.native_bf16() else "fp32")


def test_model_is_not_modified() -> None:
    model = _model("SRVGGNetCompact", SRVGG_TINY)
    before = {k: v.clone() for k, v in model.net.state_dict().items()}
    Upscaler(model, device="cpu", engine="torch", precision="bf16", tile=0).upscale(_image(1, 3, 8, 8))
    for k, v in model.net.state_dict().items():
        assert v.dtype == torch.float32 and torch.equal(v, before[k]) and v.is_contiguous()


def test_bf16_on_cpu_is_close_to_fp32() -> None:
    model = _model("SRVGGNetCompact", SRVGG_TINY)
    images = _image(1, 3, 24, 30)
    fp32 = Upscaler(model, device="cpu", engine="torch", precision="fp32", tile=0).upscale(images)
    bf16 = Upscaler(model, device="cpu", engine="torch", precision="bf16", tile=0).upscale(images)
    error = (bf16 - fp32).abs().max().item()
    assert 0 < error < 0.05


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_reduced_precision_close_to_fp32(device: torch.device, precision: str) -> None:
    if device.type != "cuda":
        pytest.skip("fp16/bf16 inference is a CUDA path")
    model = _model("RRDBNet", RRDB_TINY | {"scale": 4})
    images = _image(2, 3, 48, 80)
    fp32 = Upscaler(model, device=device, precision="fp32", tile=0).upscale(images)
    assert torch.allclose(fp32, _reference(model, images), atol=1e-4, rtol=0)
    reduced = Upscaler(model, device=device, precision=precision, tile=32, tile_overlap=EXACT_OVERLAP)
    out = reduced.upscale(images)
    assert out.device.type == "cpu" and out.dtype == torch.float32
    assert (out - fp32).abs().max().item() < (0.01 if precision == "fp16" else 0.04)


def test_cuda_fp16_overflow_is_redone_in_fp32(device: torch.device) -> None:
    if device.type != "cuda":
        pytest.skip("needs CUDA")
    model = _model("SRVGGNetCompact", SRVGG_TINY)
    with torch.no_grad():
        model.net.body[0].weight.mul_(3e4)  # activations beyond fp16's 65504 -> inf -> NaN
    images = _image(1, 3, 16, 16)
    expected = _reference(model, images)
    out = Upscaler(model, device=device, precision="fp16", tile=0).upscale(images)
    assert torch.isfinite(out).all()
    assert torch.allclose(out, expected, atol=1e-3, rtol=0)


@dataclass
class _CountingRunner:
    """A fake backend (nearest x2) that records window sizes; auto tile 16."""

    device: torch.device = torch.device("cpu")
    reduced_precision: bool = False

    def __post_init__(self) -> None:
        self.windows: list[tuple[int, int]] = []

    def run(self, windows: Tensor) -> Tensor:
        self.windows += [tuple(windows.shape[-2:])] * len(windows)
        return F.interpolate(windows, scale_factor=2, mode="nearest")

    def run_fp32(self, windows: Tensor) -> Tensor:
        raise AssertionError("not a reduced-precision runner")

    def auto_tile(self, overlap: int) -> int:
        return 16

    def auto_batch(self, window: Size) -> int:
        return 1


def test_auto_tile_leaves_images_that_fit_untiled() -> None:
    runner = _CountingRunner()
    upscaler = TileEngine(runner, _Facts(), tile_overlap=4)  # auto: windows of 24x24 = 576 px
    small = _image(1, 3, 20, 28)  # 560 px: one pass, although 28 > 24
    assert torch.equal(upscaler.upscale(small), F.interpolate(small, scale_factor=2, mode="nearest"))
    assert runner.windows == [(20, 28)]
    runner.windows.clear()
    upscaler.upscale(_image(1, 3, 24, 30))  # 720 px: tiled, cores <= 16
    assert runner.windows == [(20, 23)] * 4  # 2x2 cores of 12x15, each with 4 px margins
