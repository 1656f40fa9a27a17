"""Architectures: official parameter counts and key names, shapes, and an independent functional reference."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from soccersr.archs import RRDBNet, SRVGGNetCompact, UNetDiscriminatorSN


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
