"""Checkpoints: atomic training-state files, the newest-K policy, resume lookup, generator export.

Layout under the experiment folder (the BasicSR names)::

    training_states/<iter>.state   everything needed to continue bit for bit (torch.save, weights_only-loadable);
                                   only the newest ``logger.keep_checkpoints`` are kept
    models/net_g_<iter>.pth        {"params_ema": EMA of G} (official key; {"params": G} without an EMA)

and with ``logger.save_weights: all`` (the earlier default: about three times the size)::

    models/net_g_<iter>.pth        {"params": G, "params_ema": EMA of G}
    models/net_g_<iter>.safetensors  the EMA generator (G when there is no EMA), for inference
    models/net_d_<iter>.pth        {"params": D}

Every file is written to a temporary name, fsynced and renamed, so a crash (even kill -9) or a
full disk leaves either the previous file set or the new one, never a torn file under a real name.
"""

from __future__ import annotations

import errno
import json
import logging
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save
from torch import nn

from soccersr.errors import SoccersrError
from soccersr.io.atomic import atomic_write

log = logging.getLogger(__name__)

StateDict = dict[str, torch.Tensor]

STATE_DIR = "training_states"
MODELS_DIR = "models"
STATE_FORMAT = "soccersr-train-state/1"
_STATE_NAME = re.compile(r"^(\d+)\.state$")
SAVE_WEIGHTS = ("ema", "all")
"""What goes to ``models/`` at each save point: the EMA generator only, or G, its EMA and D."""


class CheckpointError(SoccersrError, RuntimeError):
    """A training state or exported weights file is missing, unreadable, not ours or cannot be written;
    the message names the file."""


def _os_error_in(exc: BaseException) -> OSError | None:
    """The OSError behind ``exc`` (torch reports a failed write as "inline_container.cc ... unexpected pos")."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, OSError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _torch_save(obj: Any) -> Callable[[Path], None]:
    def write(tmp: Path) -> None:
        try:
            # Through a Python file object, so the OS error (ENOSPC, EIO...) reaches us with its errno.
            with open(tmp, "wb") as f:
                torch.save(obj, f)
        except RuntimeError as e:
            os_error = _os_error_in(e)
            if os_error is None:
                raise
            raise os_error from None

    return write


def _bytes(data: bytes) -> Callable[[Path], None]:
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            f.write(data)

    return write


def _write(path: Path, write: Callable[[Path], None]) -> None:
    """``atomic_write`` with a one-line error naming ``path``; nothing is left behind when it fails."""
    try:
        atomic_write(path, write)
    except OSError as e:
        if e.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
            raise CheckpointError(
                f"{path}: no space left on device (not written; free some space, then continue with --auto-resume)"
            ) from None
        raise CheckpointError(f"{path}: cannot write ({e.strerror or e})") from None


def _first_sentence(e: BaseException) -> str:
    # torch's load errors go on for several sentences of advice that does not apply here.
    return str(e).splitlines()[0].split(". ")[0] if str(e) else type(e).__name__


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
    """Write the training state for ``iteration`` atomically and keep only the newest ``keep`` states.

    States of later iterations are neither counted nor deleted: they are ones a resumed run fell
    back past (torn, say), and this run replaces each when it gets there.
    """
    path = state_path(experiment_dir, iteration)
    path.parent.mkdir(parents=True, exist_ok=True)
    _write(path, _torch_save({"format": STATE_FORMAT, "iteration": iteration, **state}))
    older = [old for it, old in list_states(experiment_dir) if it <= iteration]
    for old in older[:-keep]:
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
        raise CheckpointError(f"{path}: unreadable training state ({_first_sentence(e)})") from None
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise CheckpointError(f"{path}: not a soccersr training state")
    return state


def load_latest_state(experiment_dir: Path) -> tuple[Path, dict[str, Any]] | None:
    """The newest readable training state, or None when there is no state at all.

    A corrupt newer state is skipped with a warning. When there are states but none can be read,
    CheckpointError: starting over would overwrite that run's logs and weights.
    """
    states = list_states(experiment_dir)
    unreadable: list[CheckpointError] = []
    for _, path in reversed(states):
        try:
            found = path, load_state(path)
        except CheckpointError as e:
            unreadable.append(e)
            continue
        for e in unreadable:
            log.warning("%s; falling back to %s", e, path.name)
        return found
    if states:
        raise CheckpointError(
            f"{experiment_dir / STATE_DIR}: none of the {len(states)} training states can be read (newest: "
            f"{unreadable[0]}); nothing was changed: pass --resume with a good state, or another 'name' to start over"
        )
    return None


def export_generator(
    experiment_dir: Path,
    iteration: int,
    g: StateDict,
    g_ema: StateDict | None,
    d: StateDict | None,
    *,
    network: tuple[str, Mapping[str, Any]] | None = None,
    weights: str = "all",
) -> Path:
    """Write ``models/net_g_<iter>.pth`` and, with ``weights="all"``, its safetensors twin and ``net_d_<iter>.pth``.

    ``g``, ``g_ema``, ``d``: ``cpu_state`` of each network (the training state saves the same copies).
    ``weights``: "ema" writes only the generator that is used for inference, under its official
    key (``params_ema``; ``params`` when there is no EMA); "all" writes ``{"params", "params_ema"}``,
    the safetensors twin and D.

    ``network`` = (architecture, kwargs) goes into the safetensors header, so a loader learns what
    the weights alone cannot say (a compact net's ReLU vs LeakyReLU).
    """
    if weights not in SAVE_WEIGHTS:
        raise ValueError(f"weights must be one of {SAVE_WEIGHTS}, got {weights!r}")
    models = experiment_dir / MODELS_DIR
    models.mkdir(parents=True, exist_ok=True)
    best_key = "params_ema" if g_ema is not None else "params"
    best = g_ema if g_ema is not None else g
    g_path = models / f"net_g_{iteration}.pth"
    if weights == "ema":
        _write(g_path, _torch_save({best_key: best}))
        return g_path
    bundle = {"params": g} if g_ema is None else {"params": g, "params_ema": g_ema}
    _write(g_path, _torch_save(bundle))
    header = {"format": "pt", "iteration": str(iteration), "params": best_key}
    if network is not None:
        arch, kwargs = network
        header.update(arch=arch, arch_kwargs=json.dumps(dict(kwargs), sort_keys=True))
    # Serialised here and written by open(): one error path, and the file mode of every other output.
    _write(models / f"net_g_{iteration}.safetensors", _bytes(save(best, metadata=header)))
    if d is not None:
        _write(models / f"net_d_{iteration}.pth", _torch_save({"params": d}))
    return g_path


def cpu_state(module: nn.Module) -> StateDict:
    """A CPU copy of ``module``'s state_dict, contiguous, detached from training."""
    # contiguous: channels_last weights would otherwise be saved with their strides (safetensors refuses them).
    return {
        k: v.detach().to("cpu", memory_format=torch.contiguous_format).clone() for k, v in module.state_dict().items()
    }
