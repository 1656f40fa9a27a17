"""The one base class of every error soccersr reports to a user.

A ``SoccersrError``'s message is one line that names the file (or option) and the reason, and
its ``exit_code`` is what the command line returns for it, so commands catch this one class
instead of listing every module's errors.
"""

from __future__ import annotations


class SoccersrError(Exception):
    """An error with a one-line message meant for the user."""

    exit_code: int = 1
    """Process exit status when a command stops on this error: 1 for bad data, 2 for bad usage."""


class UsageError(SoccersrError):
    """Bad options or a bad setup (an unknown model, an unusable device, a missing extra)."""

    exit_code = 2


class MissingExtraError(UsageError):
    """A feature needs an optional dependency that is not installed."""

    def __init__(self, feature: str, extra: str, module: str) -> None:
        super().__init__(f"{feature} needs the optional package {module!r}: pip install 'soccersr[{extra}]'")
        self.extra = extra
        self.module = module
