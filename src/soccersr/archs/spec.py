"""``ArchSpec``: everything the rest of soccersr needs to know about one generator architecture.

Each generator file (``rrdbnet.py``, ``srvgg.py``) defines its ``nn.Module`` and, below it, one
``ArchSpec`` that describes it: how to recognise its state_dict and read the constructor
arguments from key names and shapes, its scale and input size multiple, its activation memory
for tile planning, and its forward pass as a graph for the ncnn converter. ``archs.GENERATORS``
lists them; nothing else in soccersr branches on an architecture's name.

The functions here take plain data and raise ``ArchError`` with a one-line message; the weights
layer turns that into its own ``WeightsError`` (this package sits below it and cannot import it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import nn

ArchKwargs = dict[str, int | str]
"""Constructor keyword arguments of a generator, as stored in files (JSON-friendly values)."""


class ArchError(ValueError):
    """A state_dict or a set of constructor arguments does not fit an architecture (one-line message)."""


class ForwardGraph(Protocol):
    """Builds a symbolic forward pass, one node per value (the ncnn converter implements it).

    Nodes are opaque integers; equal computations give equal nodes. The order of the
    ``conv`` / ``prelu`` calls is the order in which an ncnn ``.bin`` file stores their weights.
    """

    def input(self) -> int: ...

    def conv(self, key: str, x: int, *, leaky_slope: float | None = None) -> int:
        """3x3 conv ``key`` (its ``.weight`` / ``.bias``) on ``x``, optionally followed by a leaky ReLU."""
        ...

    def prelu(self, key: str, x: int) -> int: ...

    def cat(self, *xs: int) -> int:
        """Channel concatenation, in order."""
        ...

    def weighted_sum(self, *terms: tuple[float, int]) -> int: ...

    def resize_nearest(self, factor: float, x: int) -> int: ...

    def pixel_shuffle(self, factor: int, x: int) -> int: ...


@dataclass(frozen=True)
class ArchSpec:
    """One generator architecture, described once.

    ``kwargs`` below are the module's constructor arguments; missing ones take the module's defaults.
    """

    name: str
    """The name stored in files and configs (``arch`` in safetensors headers, ``network_g.type``)."""
    module: type[nn.Module]
    """The ``nn.Module`` class; its keyword-only constructor arguments are the ``kwargs``."""
    detect_keys: tuple[str, ...]
    """A state_dict with all of these keys is this architecture's (then ``kwargs_from_state_dict``
    decides whether it is a valid one)."""
    kwargs_from_state_dict: Callable[[Mapping[str, torch.Tensor], str], ArchKwargs]
    """``(state_dict, origin)`` -> the full constructor arguments that give these keys and shapes.
    Reads only the tensors that define them; whether every key fits is checked when loading.
    Raises ``ArchError`` naming ``origin`` (a file or model name) and the offending key."""
    net_scale: Callable[[Mapping[str, Any]], int]
    """Output / input size ratio of the network built with ``kwargs``."""
    size_multiple: Callable[[Mapping[str, Any]], int]
    """Input height and width must be multiples of this (the engine pads to it)."""
    activation_floats_per_pixel: Callable[[Mapping[str, Any]], float]
    """Peak live activation values of one forward pass per *input* pixel (times the element size:
    bytes). Used to size tiles and batches; see ``infer.devices.activation_bytes_per_pixel``."""
    ncnn_graph: Callable[[Mapping[str, Any], ForwardGraph], int] | None = None
    """Writes the forward pass into a ``ForwardGraph`` and returns its output node, so the ncnn
    converter can check a file computes exactly this network. Raises ``ArchError`` for arguments
    the ncnn files cannot express. None: no ncnn conversion."""
    kwargs_from_header: Callable[[ArchKwargs, Mapping[str, Any]], ArchKwargs] = field(default=lambda kw, _: kw)
    """``(detected kwargs, header kwargs)`` -> kwargs: what only a file header (``arch_kwargs`` in
    safetensors metadata) can say, for arguments that leave no trace in the weights."""

    def detects(self, state_dict: Mapping[str, torch.Tensor]) -> bool:
        return all(key in state_dict for key in self.detect_keys)

    def build(self, kwargs: Mapping[str, Any]) -> nn.Module:
        """A new, randomly initialised network (under ``torch.device("meta")``: shapes only)."""
        return self.module(**kwargs)


def tensor_shape(state_dict: Mapping[str, torch.Tensor], key: str, ndim: int, origin: str) -> tuple[int, ...]:
    """The shape of ``state_dict[key]``, which must exist and have ``ndim`` dimensions."""
    tensor = state_dict.get(key)
    if tensor is None:
        raise ArchError(f"{origin}: missing key {key}")
    if tensor.ndim != ndim:
        raise ArchError(f"{origin}: {key} has shape {tuple(tensor.shape)}, expected {ndim} dimensions")
    return tuple(tensor.shape)
