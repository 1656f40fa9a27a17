"""Frozen config dataclasses checked by pydantic, with one-line errors that name the key path.

``degrade/config.py`` and ``train/config.py`` declare their configs with ``@config_dataclass`` and
the value types below: pydantic checks types, bounds, missing and unknown keys on every
construction; checks that span fields live in ``__post_init__`` and raise ``Invalid(key, reason)``.
``parse`` validates plain data (as read from YAML); every failure becomes one ``ConfigError``
line, e.g. ``train.optim_g.lr: input should be greater than 0, got -1.0``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Collection
from typing import Annotated, Any, TypeVar, dataclass_transform

from pydantic import BeforeValidator, ConfigDict, Field, Strict, TypeAdapter, ValidationError
from pydantic.dataclasses import dataclass

from soccersr.errors import UsageError

T = TypeVar("T")
Loc = tuple[str | int, ...]
"""A key path as pydantic reports it: ``("train", "optim_g", "betas", 0)``."""


class ConfigError(UsageError, ValueError):
    """A bad configuration; the message names the key path (and the file, when loaded from one)."""


class Invalid(ConfigError):
    """A failed check inside a config; ``key`` ("a.b") is relative to the config being built."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"{key}: {reason}")
        self.key = key
        self.reason = reason


def require(ok: bool, key: str, reason: str) -> None:
    if not ok:
        raise Invalid(key, reason)


def _whole_number(value: Any) -> Any:
    # The official files write iteration counts as !!float 5e3.
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _number_text(value: Any) -> Any:
    # YAML 1.1 reads 1e-4 (no dot) as text; accept the number the user meant.
    try:
        return float(value) if isinstance(value, str) else value
    except ValueError:
        return value


# Numbers and flags as YAML writes them, and nothing looser: true is no 1, "yes" is no true.
Int = Annotated[int, Strict(), BeforeValidator(_whole_number)]
Float = Annotated[float, Strict(), BeforeValidator(_number_text)]
Bool = Annotated[bool, Strict()]
PositiveInt = Annotated[Int, Field(gt=0)]
PositiveFloat = Annotated[Float, Field(gt=0)]
NonNegativeInt = Annotated[Int, Field(ge=0)]
NonNegativeFloat = Annotated[Float, Field(ge=0)]
Probability = Annotated[Float, Field(ge=0, le=1)]

_CONFIG = ConfigDict(extra="forbid", allow_inf_nan=False)


@dataclass_transform(frozen_default=True)
def config_dataclass(cls: type[T]) -> type[T]:
    """A frozen pydantic dataclass whose construction errors are one ``ConfigError`` line."""
    cls = dataclass(frozen=True, config=_CONFIG)(cls)
    validate = cls.__init__

    @functools.wraps(validate)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        try:
            validate(self, *args, **kwargs)
        except ValidationError as e:
            raise ConfigError(describe(e)) from None

    cls.__init__ = __init__  # type: ignore[method-assign]  # (pydantic builds nested configs without it)
    return cls


def parse(cls: type[T], raw: Any, *, key_path: Callable[[Loc], Loc] = tuple, unused_keys: Collection[str] = ()) -> T:
    """Validate plain data into ``cls``. ``key_path`` maps a location in ``cls`` to the key the user
    wrote (the reverse of a layout translation); an unknown key in ``unused_keys`` is named as such."""
    try:
        return TypeAdapter(cls).validate_python(raw)
    except ValidationError as e:
        raise ConfigError(describe(e, key_path, unused_keys)) from None


def describe(error: ValidationError, key_path: Callable[[Loc], Loc] = tuple, unused_keys: Collection[str] = ()) -> str:
    """The first failure of ``error`` as ``key.path: reason``."""
    loc: Loc = ()
    while True:
        errors = error.errors(include_url=False)
        first = errors[0]
        loc += first["loc"]
        cause = first.get("ctx", {}).get("error")
        if not isinstance(cause, ValidationError):
            break
        error = cause  # a validator that checked a part with its own model: its report, below this location
    kind, message = first["type"], first["msg"].replace("valid tuple", "list").replace("Tuple", "List")
    tag = next((i for i, part in enumerate(first["loc"]) if str(part).startswith("literal[")), None)
    if tag is not None:  # "auto" or a value: pydantic adds the union member to the path; list every choice instead
        loc = loc[: len(loc) - len(first["loc"]) + tag]
        message = "Input should be " + " or ".join(
            e["msg"].removeprefix("Input should be ") for e in errors if e["loc"][:tag] == first["loc"][:tag]
        )
    if isinstance(cause, Invalid):
        loc, reason = (*loc, *cause.key.split(".")), cause.reason
    elif isinstance(cause, Exception):
        reason = str(cause)
    elif kind in ("extra_forbidden", "unexpected_keyword_argument"):
        unused = bool(loc) and loc[-1] in unused_keys
        reason = "unknown key" + (" (an official key soccersr does not use; remove it)" if unused else "")
    elif kind == "missing" and loc and isinstance(loc[-1], int):
        loc, reason = loc[:-1], f"too few values, got {loc[-1]}"
    elif kind == "missing":
        reason = "missing required key"
    elif kind in ("dataclass_type", "model_type", "dict_type"):
        reason = f"expected a mapping, got {first['input']!r}"
    else:  # (YAML users write lists, not tuples)
        reason = f"{message[0].lower()}{message[1:]}, got {first['input']!r}"
    path = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in key_path(loc)).lstrip(".")
    return f"{path or '<top level>'}: {reason}"
