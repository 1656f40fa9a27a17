"""The work folder of one job: its finished segments, so that a killed job continues.

``.NAME.parts/`` beside the output ``NAME`` holds

- ``job.json``: what the job is (the input file's size and time, the model, scale, encoder
  settings, the part of the clip); a rerun with other settings does not mix its segments in;
- ``000000.mkv`` + ``000000.json``, ...: segment files and their records (the frames'
  exact timestamps in decoding order, and where the segment ends).

Every file is written atomically, the record after its segment, so a segment counts only
when both are there: a kill at any moment loses at most the segment being encoded. The
folder is removed once the output is complete.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from soccersr.errors import UsageError
from soccersr.io.atomic import atomic_write, atomic_write_bytes

log = logging.getLogger(__name__)


def parts_dir(output: Path) -> Path:
    """The hidden work folder of ``output``."""
    return output.with_name(f".{output.name}.parts")


@dataclass(frozen=True)
class Segment:
    """A finished segment: its file and its frames' exact timestamps (video time base)."""

    path: Path
    pts: tuple[int, ...]
    """Presentation timestamps of the packets, in decoding order."""
    end_pts: int
    """Where the segment ends: its last frame's pts plus that frame's duration."""

    @property
    def frames(self) -> int:
        return len(self.pts)

    @property
    def reorder_depth(self) -> int:
        """How many packets a frame can come before its display turn (B-frames; 0 for none)."""
        rank = {pts: i for i, pts in enumerate(sorted(self.pts))}
        return max((i - rank[pts] for i, pts in enumerate(self.pts)), default=0)


class WorkFolder:
    """The segments of the job ``job`` (a JSON-able description) for ``output``."""

    def __init__(self, output: Path, job: dict) -> None:
        self.path = parts_dir(output)
        self.job = job

    def open(self, *, restart: bool) -> list[Segment]:
        """The segments finished by earlier runs of this same job (none for a new job).

        Raises:
            UsageError: the folder holds a different job's segments and ``restart`` is False.
        """
        job_file = self.path / "job.json"
        if job_file.is_file():
            try:
                earlier = json.loads(job_file.read_text())
            except (OSError, ValueError):
                earlier = None
            if earlier != self.job:
                if not restart:
                    changed = sorted(
                        k for k in self.job if not isinstance(earlier, dict) or earlier.get(k) != self.job[k]
                    )
                    raise UsageError(
                        f"{self.path}: unfinished work of this output with other settings "
                        f"({', '.join(changed) or 'unreadable'}); rerun with those, or --overwrite to start over"
                    )
                log.info("%s: discarding the unfinished work of earlier settings", self.path)
                self.remove()
        self.path.mkdir(parents=True, exist_ok=True)
        if not job_file.is_file():
            atomic_write_bytes(job_file, json.dumps(self.job, indent=1, sort_keys=True).encode())
        return self._finished()

    def _finished(self) -> list[Segment]:
        segments: list[Segment] = []
        while True:
            video, record = self._names(len(segments))
            if not (video.is_file() and record.is_file()):
                return segments
            try:
                data = json.loads(record.read_text())
                segments.append(Segment(video, tuple(int(p) for p in data["pts"]), int(data["end_pts"])))
            except (OSError, ValueError, KeyError, TypeError):
                log.warning("%s: unreadable; it and the segments after it are redone", record)
                return segments

    def _names(self, index: int) -> tuple[Path, Path]:
        return self.path / f"{index:06d}.mkv", self.path / f"{index:06d}.json"

    def add(self, index: int, encode: Callable[[Path], tuple[list[int], int]]) -> Segment:
        """Write segment ``index``: ``encode(tmp_path)`` writes the file and returns the packets'
        pts (decoding order) and the segment's end; then the record is written."""
        video, record = self._names(index)
        result: list[tuple[list[int], int]] = []
        atomic_write(video, lambda tmp: result.append(encode(tmp)))
        pts, end_pts = result[0]
        atomic_write_bytes(record, json.dumps({"pts": pts, "end_pts": end_pts}).encode())
        return Segment(video, tuple(pts), end_pts)

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
