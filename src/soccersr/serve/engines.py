"""The models a server offers, and one engine per model, loaded once and shared by every job.

The page may pick any built-in model, or the weights file the server was started with (shown by
its file name): a client never names a path on the server. Engines are built exactly as
``soccersr upscale`` builds them, with ``infer.backends.open_upscaler`` and the server's
``EngineOptions``, so the defaults (engine, device, precision, tiling) are the CLI's.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from soccersr.infer.backends import open_upscaler
from soccersr.infer.engine import TileEngine
from soccersr.options import EngineOptions
from soccersr.weights import zoo

OpenEngine = Callable[[str, EngineOptions], TileEngine]
"""``infer.backends.open_upscaler``'s shape; tests pass one that builds a tiny model."""


@dataclass(frozen=True)
class ModelChoice:
    """A model the page can pick."""

    name: str
    """What the page shows and sends."""
    ref: str
    """What ``open_upscaler`` gets: a built-in name or the server's weights file."""
    scale: float | None
    """The model's scale; None for a weights file until it is loaded."""
    description: str


def model_choices(default_model: str) -> tuple[tuple[ModelChoice, ...], str]:
    """The choices for a server whose default is ``default_model`` (a built-in name or alias, or a
    weights file), and the name of the default among them."""
    choices = [ModelChoice(spec.name, spec.name, spec.scale, spec.description) for spec in zoo.MODELS]
    spec = zoo.find_spec(default_model)
    if spec is not None:
        return tuple(choices), spec.name
    name = Path(default_model).name
    if any(choice.name == name for choice in choices):
        name = f"file:{name}"  # a weights file called like a built-in model must not hide it
    custom = ModelChoice(name, default_model, None, f"weights file given to soccersr serve ({name})")
    return (custom, *choices), name


class Engines:
    """Engines by model name, each opened on first use and then reused (thread-safe)."""

    def __init__(self, default_model: str, options: EngineOptions, open_engine: OpenEngine | None = None) -> None:
        self.choices, self.default = model_choices(default_model)
        self.options = options
        if open_engine is None:
            open_engine = open_upscaler
        self._open = open_engine
        self._engines: dict[str, TileEngine] = {}
        """Read without a lock (a dict lookup is atomic), so listing models never waits for a load."""
        self._loading = threading.Lock()

    def find(self, name: str) -> ModelChoice | None:
        """The choice called ``name`` (a built-in alias works too), or None."""
        for choice in self.choices:
            if choice.name == name:
                return choice
        spec = zoo.find_spec(name)
        return self.find(spec.name) if spec is not None and spec.name != name else None

    def get(self, name: str) -> TileEngine:
        """The engine of model ``name``, opening it the first time.

        Raises:
            KeyError: ``name`` is not one of the choices.
            WeightsError, ValueError, RuntimeError: the model cannot be opened (as in ``open_upscaler``).
        """
        choice = self.find(name)
        if choice is None:
            raise KeyError(name)
        engine = self._engines.get(choice.name)
        if engine is not None:
            return engine
        with self._loading:  # one load at a time: two callers asking at once must not load a model twice
            engine = self._engines.get(choice.name)
            if engine is None:
                engine = self._open(choice.ref, self.options)
                self._engines[choice.name] = engine
            return engine

    def scale_of(self, name: str) -> float | None:
        """The scale of model ``name``: from the zoo, or from its engine once it is loaded."""
        choice = self.find(name)
        if choice is None:
            return None
        engine = self._engines.get(choice.name)
        return engine.scale if engine is not None else choice.scale
