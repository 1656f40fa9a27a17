"""Tell the generator architecture and its constructor arguments from state_dict keys and shapes.

Only the generators of ``soccersr.archs.GENERATORS`` are recognised, by their official key names
(each ``ArchSpec`` knows its own keys and how to read its arguments from the shapes). Everything
else is a ``WeightsError``.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from soccersr.archs import GENERATORS, ArchError, ArchKwargs
from soccersr.errors import UsageError


class WeightsError(UsageError, ValueError):
    """A weights file or built-in model cannot be used. The message names the file and the reason.

    Defined here, the lowest layer of ``soccersr.weights``, so every module can raise it;
    import it from ``soccersr.weights``. Exit code 2 (a usage error): nothing can run without a model.
    """


def detect_arch(state_dict: Mapping[str, torch.Tensor], *, origin: str) -> tuple[str, ArchKwargs]:
    """Return ``(arch, arch_kwargs)`` such that ``build_network(arch, arch_kwargs)`` has these keys.

    Only the keys that define the hyperparameters are read; whether every key and shape fits
    is checked when loading (``strict=True``).

    Args:
        state_dict: official key names (already unwrapped from ``params_ema`` etc.).
        origin: the file or model name, for error messages.

    Raises:
        WeightsError: not a generator we know.
    """
    for spec in GENERATORS:
        if spec.detects(state_dict):
            try:
                return spec.name, spec.kwargs_from_state_dict(state_dict, origin)
            except ArchError as e:
                raise WeightsError(str(e)) from None
    if "conv0.weight" in state_dict and ("conv9.weight" in state_dict or "conv1.weight_orig" in state_dict):
        raise WeightsError(f"{origin}: this is a discriminator (UNetDiscriminatorSN), not a generator")
    first = ", ".join(list(state_dict)[:3]) or "no keys"
    names = " or ".join(spec.name for spec in GENERATORS)
    raise WeightsError(f"{origin}: unknown architecture (keys start with {first}); expected {names} official keys")
