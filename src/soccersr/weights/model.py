"""``SRModel``: a loaded generator plus the facts the inference engine needs about it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from torch import nn

from soccersr.archs import generator_spec


def build_network(arch: str, arch_kwargs: Mapping[str, int | str]) -> nn.Module:
    """Instantiate generator ``arch`` with ``arch_kwargs`` (randomly initialised).

    Raises:
        ValueError: an unknown architecture (``archs.ArchError``) or bad arguments.
    """
    return generator_spec(arch).build(arch_kwargs)


@dataclass(frozen=True)
class SRModel:
    """A generator ready for inference (eval mode, float32, on the CPU until an engine moves a copy).

    Inference contract of ``net``: float RGB in [0, 1], shape (B, 3, H, W), with H and W multiples
    of ``size_multiple`` -> (B, 3, H*net_scale, W*net_scale), not clamped. When ``scale`` differs
    from ``net_scale`` the model is defined as the network followed by a bicubic resize by
    ``scale / net_scale`` (see the zoo); the inference engine applies it.
    """

    net: nn.Module
    name: str
    arch: str
    arch_kwargs: Mapping[str, int | str] = field(repr=False)
    net_scale: int
    scale: float
    size_multiple: int = 1
    source: str = ""
    """Where the weights came from: a zoo source string or a file path."""

    @property
    def post_resize(self) -> float | None:
        """Factor of the fixed bicubic resize after the network, or None."""
        return post_resize_factor(self.scale, self.net_scale)


def post_resize_factor(scale: float, net_scale: int) -> float | None:
    """The bicubic resize after an x``net_scale`` network that makes a model x``scale``, or None."""
    return None if scale == net_scale else scale / net_scale


def size_multiple_for(arch: str, arch_kwargs: Mapping[str, int | str]) -> int:
    """Input sizes the network accepts (see ``ArchSpec.size_multiple``)."""
    return generator_spec(arch).size_multiple(arch_kwargs)
