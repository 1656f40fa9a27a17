"""Architectures: official parameter counts and key names, shapes, and an independent functional reference."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from soccersr.archs import (
    GENERATORS,
    RRDBNET,
    SRVGG_COMPACT,
    ArchError,
    ArchSpec,
    RRDBNet,
    SRVGGNetCompact,
    UNetDiscriminatorSN,
    generator_spec,
)
from soccersr.infer.devices import activation_bytes_per_pixel
from soccersr.weights.detect import detect_arch
from soccersr.weights.zoo import MODELS


def _params(build) -> int:
    with torch.device("meta"):  # counts need shapes only
        return sum(p.numel() for p in build().parameters())


def _seeded(net: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    return net.eval()


def _rand(*shape: int, seed: int = 1) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


def test_official_parameter_counts():
    assert _params(lambda: RRDBNet(num_block=23)) == 16_697_987  # RealESRGAN_x4plus
    assert _params(lambda: RRDBNet(num_block=6)) == 4_467_779  # RealESRGAN_x4plus_anime_6B
    assert _params(lambda: RRDBNet(num_block=23, scale=2)) == 16_703_171  # RealESRGAN_x2plus
    assert _params(lambda: SRVGGNetCompact(num_conv=16)) == 621_424  # realesr-animevideov3
    assert _params(lambda: SRVGGNetCompact(num_conv=32)) == 1_213_296  # realesr-general-x4v3
    assert _params(UNetDiscriminatorSN) == 4_376_897  # *_netD


def test_official_key_names():
    with torch.device("meta"):
        rrdb = list(RRDBNet(num_block=23).state_dict())
        srvgg = SRVGGNetCompact(num_conv=16).state_dict()
        disc = list(UNetDiscriminatorSN().state_dict())
    assert len(rrdb) == 2 * 351
    assert rrdb[:4] == ["conv_first.weight", "conv_first.bias", "body.0.rdb1.conv1.weight", "body.0.rdb1.conv1.bias"]
    assert "body.22.rdb3.conv5.weight" in rrdb
    assert rrdb[-10:] == [
        f"{m}.{p}" for m in ("conv_body", "conv_up1", "conv_up2", "conv_hr", "conv_last") for p in ("weight", "bias")
    ]
    assert list(srvgg)[:3] == ["body.0.weight", "body.0.bias", "body.1.weight"]
    assert len(srvgg) == 18 * 2 + 17  # 18 convs (first, 16 hidden, last) and 17 PReLUs
    assert tuple(srvgg["body.1.weight"].shape) == (64,) and tuple(srvgg["body.34.weight"].shape) == (48, 64, 3, 3)
    assert disc[:5] == ["conv0.weight", "conv0.bias", "conv1.weight_orig", "conv1.weight_u", "conv1.weight_v"]
    assert disc[-2:] == ["conv9.weight", "conv9.bias"]


@pytest.mark.parametrize(("scale", "in_ch", "hw"), [(4, 3, (5, 7)), (2, 12, (6, 10)), (1, 48, (8, 12))])
def test_rrdbnet_pixel_unshuffle_shapes(scale, in_ch, hw):
    net = _seeded(RRDBNet(scale=scale, num_feat=8, num_block=1, num_grow_ch=4))
    assert tuple(net.conv_first.weight.shape) == (8, in_ch, 3, 3)
    with torch.no_grad():
        y = net(_rand(2, 3, *hw))
    assert y.shape == (2, 3, hw[0] * scale, hw[1] * scale)


def test_rrdbnet_x2_rejects_odd_sizes():
    net = RRDBNet(scale=2, num_feat=8, num_block=1, num_grow_ch=4)
    with pytest.raises(RuntimeError):
        net(torch.zeros(1, 3, 5, 6))


def _unshuffle(x: torch.Tensor, s: int) -> torch.Tensor:
    """Pixel-unshuffle written out: channel c, offset (i, j) -> channel c*s*s + i*s + j."""
    b, c, h, w = x.shape
    return x.view(b, c, h // s, s, w // s, s).permute(0, 1, 3, 5, 2, 4).reshape(b, c * s * s, h // s, w // s)


def _reference_rrdbnet(sd: dict[str, torch.Tensor], x: torch.Tensor, num_block: int, scale: int) -> torch.Tensor:
    """RRDBNet from the ESRGAN paper, written as plain functions over the state_dict."""

    def conv(name: str, t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(t, sd[f"{name}.weight"], sd[f"{name}.bias"], padding=1)

    def lrelu(t: torch.Tensor) -> torch.Tensor:
        return torch.where(t >= 0, t, 0.2 * t)

    def up2(t: torch.Tensor) -> torch.Tensor:
        return t.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)

    if scale < 4:
        x = _unshuffle(x, 4 // scale)
    feat = conv("conv_first", x)
    h = feat
    for b in range(num_block):
        block_in = h
        for r in (1, 2, 3):
            xs = [h]
            for c in (1, 2, 3, 4):
                xs.append(lrelu(conv(f"body.{b}.rdb{r}.conv{c}", torch.cat(xs, 1))))
            h = conv(f"body.{b}.rdb{r}.conv5", torch.cat(xs, 1)) * 0.2 + xs[0]
        h = h * 0.2 + block_in
    feat = feat + conv("conv_body", h)
    feat = lrelu(conv("conv_up1", up2(feat)))
    feat = lrelu(conv("conv_up2", up2(feat)))
    return conv("conv_last", lrelu(conv("conv_hr", feat)))


@pytest.mark.parametrize("scale", [4, 2, 1])
def test_rrdbnet_matches_functional_reference(scale):
    net = _seeded(RRDBNet(scale=scale, num_feat=8, num_block=2, num_grow_ch=4), seed=scale)
    x = _rand(1, 3, 8, 12)
    with torch.no_grad():
        torch.testing.assert_close(net(x), _reference_rrdbnet(net.state_dict(), x, 2, scale), rtol=0, atol=1e-6)


def test_srvgg_matches_functional_reference():
    net = _seeded(SRVGGNetCompact(num_feat=8, num_conv=3, upscale=3))
    sd = net.state_dict()
    x = _rand(1, 3, 5, 7)
    h = x
    for i in range(0, 8, 2):  # conv + PReLU pairs at body.0/1 .. body.6/7
        h = F.conv2d(h, sd[f"body.{i}.weight"], sd[f"body.{i}.bias"], padding=1)
        slope = sd[f"body.{i + 1}.weight"].view(1, -1, 1, 1)
        h = torch.where(h >= 0, h, slope * h)
    h = F.conv2d(h, sd["body.8.weight"], sd["body.8.bias"], padding=1)  # 27 = 3 * 3^2 channels
    # pixel shuffle written out: channel c*9 + i*3 + j -> pixel (3y+i, 3x+j) of channel c
    b, _, hh, ww = h.shape
    h = h.view(b, 3, 3, 3, hh, ww).permute(0, 1, 4, 2, 5, 3).reshape(b, 3, hh * 3, ww * 3)
    expected = h + x.repeat_interleave(3, dim=2).repeat_interleave(3, dim=3)
    with torch.no_grad():
        torch.testing.assert_close(net(x), expected, rtol=0, atol=1e-6)


def test_discriminator_shape():
    net = UNetDiscriminatorSN(num_feat=8).eval()
    with torch.no_grad():
        assert net(_rand(2, 3, 16, 24)).shape == (2, 1, 16, 24)


# --------------------------------------------------------------------------------------------
# ArchSpec: each generator described once
# --------------------------------------------------------------------------------------------

SPEC_CASES = [
    (RRDBNET, dict(num_in_ch=3, num_out_ch=3, scale=4, num_feat=64, num_block=23, num_grow_ch=32)),  # x4plus
    (RRDBNET, dict(num_in_ch=3, num_out_ch=3, scale=2, num_feat=16, num_block=2, num_grow_ch=8)),
    (RRDBNET, dict(num_in_ch=3, num_out_ch=1, scale=1, num_feat=8, num_block=1, num_grow_ch=4)),
    (SRVGG_COMPACT, dict(num_in_ch=3, num_out_ch=3, num_feat=64, num_conv=16, upscale=4, act_type="prelu")),
    (SRVGG_COMPACT, dict(num_in_ch=3, num_out_ch=3, num_feat=8, num_conv=2, upscale=3, act_type="prelu")),
    (SRVGG_COMPACT, dict(num_in_ch=1, num_out_ch=1, num_feat=8, num_conv=1, upscale=2, act_type="relu")),
]


@pytest.mark.parametrize(("spec", "kwargs"), SPEC_CASES, ids=lambda v: getattr(v, "name", ""))
def test_spec_reads_back_the_constructor_arguments(spec: ArchSpec, kwargs: dict) -> None:
    """build -> state_dict -> detect: the same architecture and arguments (spandrel's round trip)."""
    with torch.device("meta"):
        state = spec.build(kwargs).state_dict()
    assert [s.name for s in GENERATORS if s.detects(state)] == [spec.name]
    assert detect_arch(state, origin="w") == (spec.name, kwargs)


@pytest.mark.parametrize(("spec", "kwargs"), SPEC_CASES[1:3] + SPEC_CASES[4:], ids=lambda v: getattr(v, "name", ""))
def test_spec_scale_and_size_multiple_match_the_network(spec: ArchSpec, kwargs: dict) -> None:
    net, m = spec.build(kwargs).eval(), spec.size_multiple(kwargs)
    s = spec.net_scale(kwargs)
    with torch.no_grad():
        y = net(_rand(1, kwargs["num_in_ch"], 3 * m, 5 * m))
    assert y.shape == (1, kwargs["num_out_ch"], 3 * m * s, 5 * m * s)
    if m > 1:
        with pytest.raises(RuntimeError):
            net(_rand(1, kwargs["num_in_ch"], 3 * m + 1, 5 * m))


def test_generator_lookup_by_stored_name() -> None:
    assert len({s.name for s in GENERATORS}) == len(GENERATORS)
    assert all(generator_spec(s.name) is s for s in GENERATORS)
    with pytest.raises(
        ArchError, match=r"unknown architecture 'ESRGAN': expected one of \['RRDBNet', 'SRVGGNetCompact'\]"
    ):
        generator_spec("ESRGAN")


def test_every_zoo_model_names_a_generator_with_its_scale() -> None:
    for model in MODELS:
        spec = generator_spec(model.arch)
        assert spec.net_scale(model.arch_kwargs) == model.net_scale, model.name
        assert spec.ncnn_graph is not None or not model.source.startswith("ncnn:"), model.name


def test_activation_memory_estimates() -> None:
    """The estimates the tile planner uses; bench/README.md measured 15.3 KB/px for x4plus and
    1.1 KB/px for animevideov3 (fp32, CPU): each estimate must stay above its measurement."""
    x4plus = {m.name: m for m in MODELS}["x4plus"].arch_kwargs
    compact = {m.name: m for m in MODELS}["animevideov3"].arch_kwargs
    assert activation_bytes_per_pixel("RRDBNet", x4plus, "fp32") == 4 * (3 * (64 + 4 * 32) + 3.5 * 64 * 16) == 16640
    assert activation_bytes_per_pixel("RRDBNet", x4plus, "bf16") == 8320
    assert activation_bytes_per_pixel("SRVGGNetCompact", compact, "fp32") == 4 * (3 * 64 + 4 * 3 * 16) == 1536
    # x2 RRDBNet: the trunk works on a 2x2-unshuffled image (a quarter of the pixels), x4 tail on the output.
    x2 = {**x4plus, "scale": 2}
    assert activation_bytes_per_pixel("RRDBNet", x2, "fp32") == 4 * (3 * (64 + 128) / 4 + 3.5 * 64 * 4)


class _Recorder:
    """A ``ForwardGraph`` that records the weighted layers and the values they read."""

    def __init__(self) -> None:
        self.weighted: list[str] = []

    def _value(self, *parts: object) -> int:
        return hash(parts)

    def input(self) -> int:
        return self._value("input")

    def conv(self, key: str, x: int, *, leaky_slope: float | None = None) -> int:
        self.weighted += [f"{key}.weight", f"{key}.bias"]
        return self._value("conv", key, x, leaky_slope)

    def prelu(self, key: str, x: int) -> int:
        self.weighted.append(f"{key}.weight")
        return self._value("prelu", key, x)

    def cat(self, *xs: int) -> int:
        return self._value("cat", *xs)

    def weighted_sum(self, *terms: tuple[float, int]) -> int:
        return self._value("sum", *terms)

    def resize_nearest(self, factor: float, x: int) -> int:
        return self._value("resize", factor, x)

    def pixel_shuffle(self, factor: int, x: int) -> int:
        return self._value("shuffle", factor, x)


@pytest.mark.parametrize(
    ("spec", "kwargs"), [SPEC_CASES[0], SPEC_CASES[3], SPEC_CASES[4]], ids=lambda v: getattr(v, "name", "")
)
def test_ncnn_graph_has_every_weight_once_in_module_order(spec: ArchSpec, kwargs: dict) -> None:
    """ncnn stores weights in graph order, which for these networks is the module's key order."""
    assert spec.ncnn_graph is not None
    recorder = _Recorder()
    spec.ncnn_graph(kwargs, recorder)
    with torch.device("meta"):
        assert recorder.weighted == list(spec.build(kwargs).state_dict())


@pytest.mark.parametrize(
    ("spec", "kwargs", "message"),
    [
        (RRDBNET, SPEC_CASES[1][1], "supports RRDBNet scale 4 only"),
        (SRVGG_COMPACT, SPEC_CASES[5][1], "supports SRVGGNetCompact with act_type 'prelu' only"),
    ],
)
def test_ncnn_graph_refuses_what_ncnn_files_cannot_hold(spec: ArchSpec, kwargs: dict, message: str) -> None:
    assert spec.ncnn_graph is not None
    with pytest.raises(ArchError, match=message):
        spec.ncnn_graph(kwargs, _Recorder())
