"""The background worker: takes queued jobs one at a time and upscales their files like ``soccersr upscale``.

One thread runs the network, so the web server's event loop never waits on it (PyTorch releases
the GIL while it computes) and one model instance serves every job. Each file is read with
``read_image`` (by content, within the pixel limit), upscaled with ``upscale_image`` and written
atomically with ``write_image``: the same steps and defaults as the command line. A bad file
fails alone, with one line naming it; nothing a job does can stop the thread. While idle, the
worker deletes jobs older than the configured time.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from pathlib import Path

from soccersr.infer.pipeline import upscale_image
from soccersr.io.images import EXTENSIONS, ImageReadError, ImageWriteError, read_image, write_image
from soccersr.serve.config import ServeConfig
from soccersr.serve.engines import Engines
from soccersr.serve.store import FINISHED, Job, JobFile, JobStore

logger = logging.getLogger(__name__)

CLEANUP_EVERY_SECONDS = 60.0
_POLL_SECONDS = 0.5  # how soon an idle worker notices stop()


def output_format(source_format: str, requested: str, *, has_alpha: bool) -> str:
    """The format a result is written in: the requested one, or the upload's for 'auto' (BMP
    becomes PNG); PNG when the photo has alpha and JPEG was asked for. The rule of
    ``infer.batch.output_format``, applied to the format found in the bytes, not a file name."""
    fmt = source_format if requested == "auto" else requested
    if fmt == "bmp" or (fmt == "jpeg" and has_alpha):
        fmt = "png"
    return fmt


def output_name(upload_name: str, scale: float, fmt: str) -> str:
    """``photo.jpg`` at x4 as PNG -> ``photo_x4.png``."""
    return f"{Path(upload_name).stem}_x{scale:g}{EXTENSIONS[fmt]}"


class Worker:
    """A bounded queue of job ids and the thread that works through it."""

    def __init__(self, store: JobStore, engines: Engines, config: ServeConfig) -> None:
        self.store = store
        self.engines = engines
        self.config = config
        self._queue: queue.Queue[str] = queue.Queue(maxsize=config.queue_size)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def full(self) -> bool:
        return self._queue.full()

    def waiting(self) -> int:
        return self._queue.qsize()

    def submit(self, job_id: str) -> bool:
        """Queue a job; False when the queue is full."""
        try:
            self._queue.put_nowait(job_id)
        except queue.Full:
            return False
        return True

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="soccersr-serve-worker", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        """Ask the thread to stop once its current job ends, waiting at most ``timeout`` seconds: a
        photo can take minutes on a CPU, so a job still running is left to ``JobStore.fail_unfinished``."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _loop(self) -> None:
        next_cleanup = 0.0
        while not self._stop.is_set():
            if time.monotonic() >= next_cleanup:
                self._cleanup()
                next_cleanup = time.monotonic() + CLEANUP_EVERY_SECONDS
            try:
                job_id = self._queue.get(timeout=_POLL_SECONDS)
            except queue.Empty:
                continue
            try:
                self.run_job(job_id)
            except Exception:  # a bug in one job must not stop the server's only worker
                logger.exception("job %s: unexpected error", job_id)
                self._finish_failed(job_id, "internal error while upscaling (see the server log)")

    def _cleanup(self) -> None:
        try:
            self.store.cleanup(self.config.keep_seconds)
        except OSError as error:
            logger.warning("cleaning old jobs failed: %s", error)

    def run_job(self, job_id: str) -> None:
        """Upscale every file of a queued job, recording progress and results in the store."""
        job = self.store.get(job_id)
        if job is None or job.status != "queued":
            return  # cleaned up or already failed (the server was stopping)
        self.store.update(job_id, status="running")
        try:
            engine = self.engines.get(job.model)
        except Exception as error:  # WeightsError, a device that fails...: every file of this job fails
            logger.error("job %s: cannot open model %s: %s", job_id, job.model, error)
            self._finish_failed(job_id, f"model {job.model}: {_first_line(error)}")
            return
        for index, file in enumerate(job.files):
            self.store.update_file(job_id, index, status="running", progress=0.0, persist=False)
            try:
                changes = self._upscale_file(job, index, file, engine)
                self.store.update_file(job_id, index, status="done", progress=1.0, **changes)
            except (ImageReadError, ImageWriteError) as error:
                self._file_failed(job_id, index, _rename(str(error), self.store.input_path(job_id, index), file.name))
            except Exception as error:  # out of memory, a backend error...: this file fails, the next may work
                logger.exception("job %s, %s: upscaling failed", job_id, file.name)
                self._file_failed(job_id, index, f"{file.name}: upscaling failed ({_first_line(error)})")
        self._finish(job_id)

    def _upscale_file(self, job: Job, index: int, file: JobFile, engine) -> dict[str, object]:
        source = self.store.input_path(job.id, index)
        image = read_image(source, max_pixels=self.config.max_pixels)
        fmt = output_format(image.format, job.format, has_alpha=image.alpha is not None)

        def progress(done: int, total: int) -> None:
            self.store.update_file(job.id, index, progress=done / max(total, 1), persist=False)

        result = upscale_image(image, engine, outscale=job.outscale, progress=progress)
        name = output_name(file.name, job.outscale or engine.scale, fmt)
        target = self.store.output_path(job.id, index, name)
        try:
            write_image(target, result, format=fmt)
        except ImageWriteError as error:
            raise ImageWriteError(_rename(str(error), target, name)) from None
        logger.info("job %s: %s -> %s (%dx%d)", job.id, file.name, name, result.width, result.height)
        return {"output_name": name, "output_width": result.width, "output_height": result.height}

    def _file_failed(self, job_id: str, index: int, message: str) -> None:
        logger.warning("job %s: %s", job_id, message)
        self.store.update_file(job_id, index, status="failed", error=message)

    def _finish(self, job_id: str) -> None:
        """Done when at least one file is; the error line says how many failed."""
        job = self.store.get(job_id)
        failed = [f for f in job.files if f.status == "failed"]
        if not failed:
            self.store.update(job_id, status="done", error=None, finished=time.time())
        elif len(failed) == len(job.files):
            error = failed[0].error if len(failed) == 1 else f"all {len(failed)} files failed; first: {failed[0].error}"
            self.store.update(job_id, status="failed", error=error, finished=time.time())
        else:
            error = f"{len(failed)} of {len(job.files)} files failed; first: {failed[0].error}"
            self.store.update(job_id, status="done", error=error, finished=time.time())

    def _finish_failed(self, job_id: str, message: str) -> None:
        job = self.store.get(job_id)
        if job is None or job.status in FINISHED:
            return
        for index, file in enumerate(job.files):
            if file.status not in FINISHED:
                self.store.update_file(job_id, index, status="failed", error=message, persist=False)
        self.store.update(job_id, status="failed", error=message, finished=time.time())


def _rename(message: str, path: Path, name: str) -> str:
    """An IO error says '<path on the server>: reason'; the user uploaded '<name>'."""
    return message.replace(str(path), name, 1)


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
