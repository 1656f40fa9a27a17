"""The manifest of a cluster run: one CSV row per input, kept in the output folder.

    input,output,status,error,seconds
    /archive/2019/a.jpg,/out/2019/a_x4.jpg,done,,3.412
    /archive/2019/b.jpg,,failed,/archive/2019/b.jpg: not an image (...),0.004

``status`` is done, skipped or failed; ``error`` is the failure's one line; ``seconds`` is the
time the worker spent on the file. The driver rewrites the whole file atomically as results
come in (at most every few seconds) and once at the end, so a reader never sees half a file,
and a driver that is killed leaves the manifest of a moment before. Rows of inputs that are not
part of this run (an earlier run over another folder into the same output) are kept.

A missing or unreadable manifest never stops a run: the files on disk still say what is done.
"""

from __future__ import annotations

import csv
import io
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from soccersr.infer.batch import Failure, Outcome
from soccersr.io.atomic import atomic_write_bytes

logger = logging.getLogger(__name__)

MANIFEST_NAME = "soccersr-manifest.csv"
COLUMNS = ("input", "output", "status", "error", "seconds")
STATUSES = ("done", "skipped", "failed")


@dataclass(frozen=True)
class ManifestRow:
    input: str
    output: str
    """The output file; empty when the input failed."""
    status: str
    error: str
    seconds: float

    @classmethod
    def of(cls, outcome: Outcome) -> ManifestRow:
        output = "" if outcome.output is None else str(outcome.output)
        return cls(str(outcome.source), output, outcome.status, outcome.message, round(outcome.seconds, 3))

    @classmethod
    def of_failure(cls, failure: Failure) -> ManifestRow:
        return cls(str(failure.path), "", "failed", failure.message, 0.0)


class Manifest:
    """The rows of one manifest file, by input path."""

    def __init__(self, path: Path, rows: Iterable[ManifestRow] = ()) -> None:
        self.path = path
        self.rows = {row.input: row for row in rows}
        self._saved_at = time.monotonic()
        self._save_seconds = 0.0

    @classmethod
    def load(cls, path: Path) -> Manifest:
        """The manifest at ``path``; an empty one when there is none or it cannot be read (logged)."""
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return cls(path)
        except (OSError, UnicodeDecodeError) as error:
            logger.warning("%s: cannot read the manifest (%s); going by the files on disk", path, error)
            return cls(path)
        try:
            return cls(path, _parse(text))
        except ValueError as error:
            logger.warning("%s: not a soccersr manifest (%s); going by the files on disk", path, error)
            return cls(path)

    def get(self, source: Path) -> ManifestRow | None:
        return self.rows.get(str(source))

    def record(self, row: ManifestRow) -> None:
        self.rows.pop(row.input, None)  # a row that changes moves to the end: the file reads in time order
        self.rows[row.input] = row

    def save(self) -> None:
        """Write the whole manifest atomically."""
        start = time.monotonic()
        atomic_write_bytes(self.path, _format(self.rows.values()).encode("utf-8"))
        self._saved_at = time.monotonic()
        self._save_seconds = self._saved_at - start

    def save_now_and_then(self, interval: float = 5.0) -> None:
        """``save`` when ``interval`` seconds have passed since the last one (longer for a manifest
        that takes long to write, so rewriting it never takes more than a few percent of the run)."""
        if time.monotonic() - self._saved_at >= max(interval, 20 * self._save_seconds):
            self.save()


def _format(rows: Iterable[ManifestRow]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow((row.input, row.output, row.status, row.error, f"{row.seconds:.3f}"))
    return out.getvalue()


def _parse(text: str) -> list[ManifestRow]:
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if header is None or tuple(header) != COLUMNS:
        raise ValueError(f"the header is {header}, expected {','.join(COLUMNS)}")
    rows = []
    for number, values in enumerate(reader, start=2):
        if len(values) != len(COLUMNS):
            raise ValueError(f"row {number} has {len(values)} fields, expected {len(COLUMNS)}")
        source, output, status, error, seconds = values
        if status not in STATUSES:
            raise ValueError(f"row {number}: unknown status {status!r}")
        try:
            rows.append(ManifestRow(source, output, status, error, float(seconds)))
        except ValueError:
            raise ValueError(f"row {number}: seconds is {seconds!r}, not a number") from None
    return rows
