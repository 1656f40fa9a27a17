"""The settings of one ``soccersr serve`` server: limits, storage, model and engine. Standard library only."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from soccersr.options import DEFAULT_MAX_PIXELS, EngineOptions

DEFAULT_PORT = 8000
DEFAULT_MAX_UPLOAD_MB = 50.0
DEFAULT_QUEUE_SIZE = 32
DEFAULT_MAX_FILES = 50
DEFAULT_KEEP_HOURS = 24.0
MAX_OUTSCALE = 8.0
"""Largest output scale the API accepts: beyond it a photo turns into gigapixels, not detail."""


@dataclass(frozen=True)
class ServeConfig:
    """Everything the app, the store and the worker need to know; the command builds it from flags."""

    jobs_dir: Path
    """One folder per job: uploads, results and ``job.json``."""
    model: str
    """The default model: a built-in name or a weights file (shown on the page by its file name)."""
    engine: EngineOptions = field(default_factory=EngineOptions)
    token: str | None = None
    """When set, every ``/api`` request needs ``Authorization: Bearer <token>``."""
    local_only: bool = True
    """The server listens on a loopback address: requests must name a local Host (no DNS rebinding)."""
    max_upload_bytes: int = int(DEFAULT_MAX_UPLOAD_MB * 2**20)
    """Largest request body of ``POST /api/jobs`` (all its files together)."""
    max_pixels: int | None = DEFAULT_MAX_PIXELS
    """Largest input image, as ``soccersr upscale --max-pixels``; None: no limit."""
    max_files: int = DEFAULT_MAX_FILES
    """Most files in one job."""
    queue_size: int = DEFAULT_QUEUE_SIZE
    """Most jobs waiting to run; one more gets 429."""
    keep_seconds: float = DEFAULT_KEEP_HOURS * 3600
    """Finished jobs are deleted this long after they finish."""

    def __post_init__(self) -> None:
        if not self.model:
            raise ValueError("model must not be empty")
        if self.token is not None and not self.token.strip():
            raise ValueError("token must not be empty (leave it unset for no token)")
        checks = {
            "max_upload_bytes": self.max_upload_bytes >= 1,
            "max_pixels": self.max_pixels is None or self.max_pixels >= 1,
            "max_files": self.max_files >= 1,
            "queue_size": self.queue_size >= 1,
            "keep_seconds": self.keep_seconds > 0,
        }
        for key, ok in checks.items():
            if not ok:
                raise ValueError(f"{key} must be positive, got {getattr(self, key)!r}")
