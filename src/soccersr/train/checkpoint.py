"""Checkpoints: atomic training-state files, the newest-K policy, resume lookup, generator export.

Layout under the experiment folder (the BasicSR names)::

    training_states/<iter>.state   everything needed to continue bit for bit (torch.save, weights_only-loadable)
    models/net_g_<iter>.pth        {"params": G, "params_ema": EMA of G}  (official key names)
    models/net_g_<iter>.safetensors  the EMA generator (G when there is no EMA), for inference
    models/net_d_<iter>.pth        {"params": D}

Every file is written to a temporary name, fsynced and renamed, so a crash (even kill -9) leaves
either the previous file set or the new one, never a torn file under a real name.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any, Callable, Mapping

import torch
from torch import nn

from soccersr.errors import SoccersrError
from soccersr.io.atomic import atomic_write

log = logging.getLogger(__name__)

StateDict = dict[str, torch.Tensor]

STATE_DIR = "training_states"
MODELS_DIR = "models"
STATE_FORMAT = "soccersr-train-state/1"
_STATE_NAME = re.compile(r"^(\d+)\.state$")


class CheckpointError(SoccersrError, RuntimeError):
    """A training-state file is missing, unreadable or not ours; the message names the file."""


def _torch_save(obj: Any) -> Callable[[Path], None]:
    def write(tmp: Path) -> None:
        torch.save(obj, tmp)

    return write


def state_path(experiment_dir: Path, iteration: int) -> Path:
    return experiment_dir / STATE_DIR / f"{iteration}.state"


def list_states(experiment_dir: Path) -> list[tuple[int, Path]]:
    """(iteration, path) of the training states, oldest first."""
    folder = experiment_dir / STATE_DIR
    if not folder.is_dir():
        return []
    found = []
    for path in folder.iterdir():
        match = _STATE_NAME.match(path.name)
        if match:
            found.append((int(match.group(1)), path))
    return sorted(found)


def remove_stale_temporaries(experiment_dir: Path) -> None:
    """Delete ``.*.tmp`` files a killed run left behind."""
    for sub in (STATE_DIR, MODELS_DIR):
        folder = experiment_dir / sub
        if folder.is_dir():
            for path in folder.glob(".*.tmp"):
                path.unlink(missing_ok=True)


def save_state(experiment_dir: Path, iteration: int, state: Mapping[str, Any], *, keep: int) -> Path:
    """Write the training state for ``iteration`` atomically and keep only the newest ``keep`` states."""
    path = state_path(experiment_dir, iteration)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, _torch_save({"format": STATE_FORMAT, "iteration": iteration, **state}))
    for _, old in list_states(experiment_dir)[:-keep]:
        old.unlink(missing_ok=True)
    return path


def load_state(path: Path) -> dict[str, Any]:
    """Read a training state on the CPU (``weights_only=True``: tensors and plain data only)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: training state not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - truncated zip, bad pickle, ...: all mean "unreadable"
        raise CheckpointError(f"{path}: unreadable training state ({type(e).__name__}: {e})") from None
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise CheckpointError(f"{path}: not a soccersr training state")
    return state


def load_latest_state(experiment_dir: Path) -> tuple[Path, dict[str, Any]] | None:
    """The newest readable training state; a corrupt newer one is skipped with a warning."""
    for iteration, path in reversed(list_states(experiment_dir)):
        try:
            return path, load_state(path)
        except CheckpointError as e:
            log.warning("%s; falling back to the previous checkpoint", e)
    return None


def export_generator(experiment_dir: Path, iteration: int, g: StateDict, g_ema: StateDict | None,
                     d: StateDict | None, *, network: tuple[str, Mapping[str, Any]] | None = None) -> Path:
    """Write ``net_g_<iter>.pth`` ({"params", "params_ema"}), its safetensors twin and ``net_d_<iter>.pth``.

    ``g``, ``g_ema``, ``d``: ``cpu_state`` of each network (the training state saves the same copies).

    ``network`` = (architecture, kwargs) goes into the safetensors header, so a loader learns what
    the weights alone cannot say (a compact net's ReLU vs LeakyReLU).
    """
    from safetensors.torch import save_file

    models = experiment_dir / MODELS_DIR
    models.mkdir(parents=True, exist_ok=True)
    params = g
    bundle = {"params": params}
    if g_ema is not None:
        bundle["params_ema"] = g_ema
    g_path = models / f"net_g_{iteration}.pth"
    atomic_write(g_path, _torch_save(bundle))
    best = bundle.get("params_ema", params)
    header = {"format": "pt", "iteration": str(iteration), "params": "params_ema" if g_ema is not None else "params"}
    if network is not None:
        arch, kwargs = network
        header.update(arch=arch, arch_kwargs=json.dumps(dict(kwargs), sort_keys=True))
    atomic_write(models / f"net_g_{iteration}.safetensors", lambda tmp: save_file(best, str(tmp), metadata=header))
    if d is not None:
        atomic_write(models / f"net_d_{iteration}.pth", _torch_save({"params": d}))
    return g_path


def cpu_state(module: nn.Module) -> StateDict:
    """A CPU copy of ``module``'s state_dict, contiguous, detached from training."""
    # contiguous: channels_last weights would otherwise be saved with their strides (safetensors refuses them).
    return {k: v.detach().to("cpu", memory_format=torch.contiguous_format).clone() for k, v in module.state_dict().items()}
