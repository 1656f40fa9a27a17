"""Jobs on disk: one folder per job, so a restart keeps finished results.

    <jobs_dir>/<id>/job.json        the job (status, settings, one entry per file)
    <jobs_dir>/<id>/in/000          the uploaded bytes, named by index (no client name on disk)
    <jobs_dir>/<id>/out/000.png     the results
    <jobs_dir>/<id>/results.zip     every result of the job, made on the first request for it

A job folder is filled under a hidden temporary name and renamed into place, so a crash never
leaves half a job; ``job.json`` is replaced atomically on every change of state. On start,
``load`` reads every job back and marks the ones that were queued or running as failed: their
worker is gone. ``cleanup`` deletes finished jobs after the configured time.

The store keeps the current ``Job`` of every id in memory (the API reads it there, progress
included) and is safe to use from the API threads and the worker thread at once.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import threading
import time
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from soccersr.io.atomic import atomic_write, atomic_write_bytes
from soccersr.serve.security import is_job_id, new_job_id

logger = logging.getLogger(__name__)

Status = Literal["queued", "running", "done", "failed"]
FINISHED: tuple[Status, ...] = ("done", "failed")
_JOB_FILE = "job.json"
_FORMAT_VERSION = 1
STOPPED_MESSAGE = "the server stopped before this job finished; upload the photo again"


@dataclass(frozen=True)
class JobFile:
    """One uploaded photo of a job and what became of it."""

    name: str
    """The upload's name, made safe (``security.safe_name``)."""
    format: str
    """Its container format, from its bytes: 'jpeg', 'png', 'webp', 'tiff' or 'bmp'."""
    width: int
    height: int
    status: Status = "queued"
    progress: float = 0.0
    """0..1 while it runs (tiles done / tiles)."""
    error: str | None = None
    output_name: str | None = None
    """Download name of the result, e.g. ``photo_x4.png``; set when it is done."""
    output_width: int | None = None
    output_height: int | None = None


@dataclass(frozen=True)
class Job:
    """A request to upscale one or more photos with one model, scale and format."""

    id: str
    model: str
    outscale: float | None
    """Output size / input size; None: the model's own scale."""
    format: str
    """Requested output format: one of ``options.OUTPUT_FORMATS``."""
    files: tuple[JobFile, ...]
    created: float
    """Unix time."""
    status: Status = "queued"
    error: str | None = None
    finished: float | None = None

    @property
    def progress(self) -> float:
        """0..1 over the whole job; a finished file (done or failed) counts as complete."""
        if not self.files:
            return 1.0
        return sum(1.0 if f.status in FINISHED else f.progress for f in self.files) / len(self.files)

    def to_json(self) -> dict[str, Any]:
        return {"version": _FORMAT_VERSION, **dataclasses.asdict(self)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Job:
        """Raises ValueError (naming the key) for a record this version cannot read."""
        if data.get("version") != _FORMAT_VERSION:
            raise ValueError(f"unknown job.json version {data.get('version')!r}")
        fields = {f.name for f in dataclasses.fields(cls)}
        file_fields = {f.name for f in dataclasses.fields(JobFile)}
        record = {key: value for key, value in data.items() if key != "version"}
        unknown = set(record) - fields
        if unknown:
            raise ValueError(f"unknown key {sorted(unknown)[0]!r}")
        try:
            files = []
            for entry in record.pop("files"):
                extra = set(entry) - file_fields
                if extra:
                    raise ValueError(f"unknown key files.{sorted(extra)[0]!r}")
                files.append(JobFile(**entry))
            job = cls(files=tuple(files), **record)
        except (TypeError, KeyError) as error:
            raise ValueError(f"bad job record ({error})") from None
        if not is_job_id(job.id) or job.status not in ("queued", "running", *FINISHED):
            raise ValueError(f"bad id or status ({job.id!r}, {job.status!r})")
        return job


@dataclass(frozen=True)
class Upload:
    """A checked upload, ready to be stored."""

    name: str
    data: bytes
    format: str
    width: int
    height: int


class JobStore:
    """The jobs of one server, in memory and in ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()

    # --- paths: ids are checked by the caller (``get`` returns None for anything else) ----------

    def job_dir(self, job_id: str) -> Path:
        return self.root / job_id

    def input_path(self, job_id: str, index: int) -> Path:
        return self.job_dir(job_id) / "in" / f"{index:03d}"

    def output_path(self, job_id: str, index: int, output_name: str) -> Path:
        return self.job_dir(job_id) / "out" / f"{index:03d}{Path(output_name).suffix}"

    # --- reading and writing jobs -------------------------------------------------------------

    def load(self) -> int:
        """Read the jobs found in ``root``; unfinished ones become failed. Returns how many were read."""
        now = time.time()
        for entry in sorted(self.root.iterdir()):
            if entry.name.startswith(".") and entry.name.endswith(".tmp") and entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)  # a job that was being created when we stopped
                continue
            if not (entry.is_dir() and is_job_id(entry.name)):
                continue  # not ours: never touched
            try:
                job = Job.from_json(json.loads((entry / _JOB_FILE).read_text(encoding="utf-8")))
                if job.id != entry.name:
                    raise ValueError(f"its id is {job.id!r}")
            except (OSError, ValueError) as error:
                logger.warning("%s: unreadable job, removed (%s)", entry, error)
                shutil.rmtree(entry, ignore_errors=True)
                continue
            if job.status not in FINISHED:
                files = tuple(
                    f if f.status in FINISHED else dataclasses.replace(f, status="failed", error=STOPPED_MESSAGE)
                    for f in job.files
                )
                job = dataclasses.replace(job, status="failed", error=STOPPED_MESSAGE, files=files, finished=now)
                self._save(job)
            with self._lock:
                self._jobs[job.id] = job
        return len(self._jobs)

    def create(self, uploads: Sequence[Upload], *, model: str, outscale: float | None, format: str) -> Job:
        """Store the uploads as a new queued job (the folder appears whole or not at all)."""
        job_id = new_job_id()
        files = tuple(JobFile(name=u.name, format=u.format, width=u.width, height=u.height) for u in uploads)
        job = Job(id=job_id, model=model, outscale=outscale, format=format, files=files, created=time.time())
        staging = self.root / f".{job_id}.tmp"
        try:
            (staging / "in").mkdir(parents=True)
            (staging / "out").mkdir()
            for index, upload in enumerate(uploads):
                (staging / "in" / f"{index:03d}").write_bytes(upload.data)
            (staging / _JOB_FILE).write_text(json.dumps(job.to_json()), encoding="utf-8")
            os.replace(staging, self.job_dir(job_id))
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        with self._lock:
            self._jobs[job_id] = job
        return job

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def update(self, job_id: str, *, persist: bool = True, **changes: Any) -> Job:
        """Replace fields of a job; ``persist=False`` for progress, which only lives in memory."""
        with self._lock:
            job = dataclasses.replace(self._jobs[job_id], **changes)
            self._jobs[job_id] = job
        if persist:
            self._save(job)
        return job

    def update_file(self, job_id: str, index: int, *, persist: bool = True, **changes: Any) -> Job:
        with self._lock:
            job = self._jobs[job_id]
            files = list(job.files)
            files[index] = dataclasses.replace(files[index], **changes)
            job = dataclasses.replace(job, files=tuple(files))
            self._jobs[job_id] = job
        if persist:
            self._save(job)
        return job

    def _save(self, job: Job) -> None:
        data = json.dumps(job.to_json(), indent=1).encode()
        atomic_write_bytes(self.job_dir(job.id) / _JOB_FILE, data, durable=job.status in FINISHED)

    # --- results and housekeeping -------------------------------------------------------------

    def results_zip(self, job: Job) -> Path:
        """A zip of the job's results (stored, not compressed: images are compressed already),
        made once; entries are the download names, made unique."""
        path = self.job_dir(job.id) / "results.zip"
        if path.exists():
            return path
        used: set[str] = set()

        def write(tmp: Path) -> None:
            with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as archive:
                for index, file in enumerate(job.files):
                    if file.status == "done" and file.output_name:
                        source = self.output_path(job.id, index, file.output_name)
                        archive.write(source, _unique(file.output_name, used))

        atomic_write(path, write, durable=False)
        return path

    def remove(self, job_id: str) -> None:
        """Forget a job and delete its folder."""
        with self._lock:
            self._jobs.pop(job_id, None)
        shutil.rmtree(self.job_dir(job_id), ignore_errors=True)

    def fail_unfinished(self, reason: str = STOPPED_MESSAGE) -> None:
        """Mark queued and running jobs failed (the server is stopping)."""
        with self._lock:
            unfinished = [job.id for job in self._jobs.values() if job.status not in FINISHED]
        for job_id in unfinished:
            job = self.get(job_id)
            files = tuple(
                f if f.status in FINISHED else dataclasses.replace(f, status="failed", error=reason) for f in job.files
            )
            self.update(job_id, status="failed", error=reason, files=files, finished=time.time())

    def cleanup(self, keep_seconds: float, *, now: float | None = None) -> list[str]:
        """Delete jobs that finished more than ``keep_seconds`` ago; returns their ids."""
        now = time.time() if now is None else now
        with self._lock:
            old = [
                job.id
                for job in self._jobs.values()
                if job.status in FINISHED and job.finished is not None and now - job.finished > keep_seconds
            ]
            for job_id in old:
                del self._jobs[job_id]
        for job_id in old:
            shutil.rmtree(self.job_dir(job_id), ignore_errors=True)
        if old:
            logger.info(
                "removed %d finished job%s older than %.3g h", len(old), "s" * (len(old) != 1), keep_seconds / 3600
            )
        return old


def _unique(name: str, used: set[str]) -> str:
    """``name``, or ``stem (2).ext``, ``stem (3).ext``... when a job has two files of one name."""
    candidate, number = name, 1
    stem, dot, ext = name.rpartition(".")
    if not dot:
        stem, ext = name, ""
    while candidate.lower() in used:
        number += 1
        candidate = f"{stem} ({number}){dot}{ext}"
    used.add(candidate.lower())
    return candidate
