"""Tell the generator architecture and its constructor arguments from state_dict keys and shapes.

Only the two generators of the official Real-ESRGAN models are recognised, by their official
key names: RRDBNet (``conv_first``, ``body.{b}.rdb{r}.conv{c}``, ...) and SRVGGNetCompact
(``body.{i}.weight``). Everything else is a ``WeightsError``.
"""

from __future__ import annotations

import logging
import math
import re
from typing import Mapping

import torch

from soccersr.errors import UsageError

log = logging.getLogger(__name__)


class WeightsError(UsageError, ValueError):
    """A weights file or built-in model cannot be used. The message names the file and the reason.

    Defined here, the lowest layer of ``soccersr.weights``, so every module can raise it;
    import it from ``soccersr.weights``.
    """


ArchKwargs = dict[str, int | str]

_RRDB_BLOCK = re.compile(r"body\.(\d+)\.rdb1\.conv1\.weight")
_SRVGG_BODY = re.compile(r"body\.(\d+)\.weight")
# RRDBNet x2 / x1 pixel-unshuffle RGB by 2 / 4 before conv_first: 3, 12 or 48 input channels.
_RRDB_SCALE_BY_IN_CH = {3: 4, 12: 2, 48: 1}


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
    if "conv_first.weight" in state_dict:
        return "RRDBNet", _rrdbnet_kwargs(state_dict, origin)
    if "body.0.weight" in state_dict:
        return "SRVGGNetCompact", _srvgg_kwargs(state_dict, origin)
    if "conv0.weight" in state_dict and ("conv9.weight" in state_dict or "conv1.weight_orig" in state_dict):
        raise WeightsError(f"{origin}: this is a discriminator (UNetDiscriminatorSN), not a generator")
    first = ", ".join(list(state_dict)[:3]) or "no keys"
    raise WeightsError(
        f"{origin}: unknown architecture (keys start with {first}); expected RRDBNet or SRVGGNetCompact official keys"
    )


def _shape(state_dict: Mapping[str, torch.Tensor], key: str, ndim: int, origin: str) -> tuple[int, ...]:
    tensor = state_dict.get(key)
    if tensor is None:
        raise WeightsError(f"{origin}: missing key {key}")
    if tensor.ndim != ndim:
        raise WeightsError(f"{origin}: {key} has shape {tuple(tensor.shape)}, expected {ndim} dimensions")
    return tuple(tensor.shape)


def _rrdbnet_kwargs(state_dict: Mapping[str, torch.Tensor], origin: str) -> ArchKwargs:
    num_feat, in_ch, _, _ = _shape(state_dict, "conv_first.weight", 4, origin)
    if in_ch not in _RRDB_SCALE_BY_IN_CH:
        raise WeightsError(
            f"{origin}: conv_first.weight has {in_ch} input channels; RRDBNet RGB needs 3 (x4), 12 (x2) or 48 (x1)"
        )
    blocks = sorted(int(m.group(1)) for k in state_dict if (m := _RRDB_BLOCK.fullmatch(k)))
    if blocks != list(range(len(blocks))):
        raise WeightsError(f"{origin}: RRDB blocks are not numbered 0..n-1 (found {blocks[:5]}...)")
    num_grow_ch = _shape(state_dict, "body.0.rdb1.conv1.weight", 4, origin)[0] if blocks else 32
    num_out_ch = _shape(state_dict, "conv_last.weight", 4, origin)[0]
    return {
        "num_in_ch": 3,
        "num_out_ch": num_out_ch,
        "scale": _RRDB_SCALE_BY_IN_CH[in_ch],
        "num_feat": num_feat,
        "num_block": len(blocks),
        "num_grow_ch": num_grow_ch,
    }


def _srvgg_kwargs(state_dict: Mapping[str, torch.Tensor], origin: str) -> ArchKwargs:
    indices = sorted(int(m.group(1)) for k in state_dict if (m := _SRVGG_BODY.fullmatch(k)))
    conv_indices = [i for i in indices if state_dict[f"body.{i}.weight"].ndim == 4]
    last = max(conv_indices, default=-1)
    # body = conv, act, (conv, act) * num_conv, conv: convs at even indices 0 .. 2 * num_conv + 2.
    if last < 2 or last % 2 or conv_indices != list(range(0, last + 1, 2)):
        raise WeightsError(f"{origin}: SRVGGNetCompact convs must sit at body.0, body.2, ..., found {conv_indices[:6]}")
    num_feat, num_in_ch, _, _ = _shape(state_dict, "body.0.weight", 4, origin)
    last_out = _shape(state_dict, f"body.{last}.weight", 4, origin)[0]
    upscale = math.isqrt(last_out // num_in_ch)
    if upscale < 1 or num_in_ch * upscale * upscale != last_out:
        raise WeightsError(f"{origin}: body.{last}.weight has {last_out} outputs, not {num_in_ch} x upscale^2")
    if "body.1.weight" in state_dict:
        act_type = "prelu"
    else:
        # ReLU and LeakyReLU have no weights, so a file cannot say which; the official models use PReLU.
        act_type = "relu"
        log.warning("%s: SRVGGNetCompact without PReLU weights: assuming act_type 'relu'", origin)
    return {
        "num_in_ch": num_in_ch,
        "num_out_ch": num_in_ch,
        "num_feat": num_feat,
        "num_conv": last // 2 - 1,
        "upscale": upscale,
        "act_type": act_type,
    }
