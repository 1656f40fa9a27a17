"""The driver of ``soccersr upscale --cluster ray``: the local batch rules, the work on Ray Data.

    summary = run_on_ray(jobs, "soccer-x4plus", EngineOptions(), options, ClusterOptions(workers=8))

The driver does what the local command does before and after the network: the same listing
(``discover``), the same whole-batch rules (``plan_batch``), the same skip rule, the same log
lines (``report``) and the same ``BatchSummary``. It adds two things:

- **skipping finished work** by the manifest in the output folder as well as by the files on
  disk: a file whose output exists is never sent to a worker (``--overwrite`` sends all);
- **the pipeline**: a Ray Data dataset of the remaining files, one file per block, through
  ``map_batches(UpscaleWorker)`` on a fixed pool of actors (``--workers``), each holding
  ``--cpus-per-worker`` CPUs and ``--gpus-per-worker`` GPUs and its own engine. Results stream
  back as files finish; the manifest is rewritten every few seconds.

Faults: a bad file is a failed row like any other. A worker process that dies (killed, out of
memory) is restarted by Ray and its file is tried again, up to ``MAX_ATTEMPTS`` times; a file
that kills its worker every time then fails alone. A driver that dies leaves the outputs
written so far and a recent manifest: rerun the command (``--skip-existing`` keeps it quiet).

Without ``--ray-address`` a local Ray is started for the run and shut down after it; with one
the run joins that cluster, whose workers must see the input and output paths (a shared
filesystem) and have soccersr installed. Ray's own logs stay out of the way: worker output is
not forwarded, Ray Data prints nothing, and our one progress bar shows on a terminal only
(``-v`` lets Ray speak).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from soccersr.cluster.manifest import MANIFEST_NAME, Manifest, ManifestRow
from soccersr.cluster.worker import UpscaleWorker, job_row, outcome_from_row
from soccersr.errors import SoccersrError, UsageError
from soccersr.infer.batch import (
    BatchInterrupted,
    BatchOptions,
    BatchSummary,
    Failure,
    Job,
    Outcome,
    Tally,
    existing_output,
    output_path,
    plan_batch,
    prepare_folder,
    real_path,
    report,
)
from soccersr.options import EngineOptions

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 3
"""Tries of a file whose worker process dies on it, before the file fails (a file that always
gets its worker killed, by the out-of-memory killer say, must not stall the archive)."""


class ClusterError(SoccersrError):
    """The Ray run itself failed (workers that cannot start, a cluster that went away)."""


@dataclass(frozen=True)
class ClusterOptions:
    """Where and how wide a cluster run goes (``--ray-address``, ``--workers``, ``--*-per-worker``)."""

    address: str | None = None
    """A running cluster ('auto', 'HOST:6379', 'ray://HOST:10001'); None starts a local Ray for the run."""
    workers: int | None = None
    """Actors, each with its own engine; None: as many as the cluster's CPUs and GPUs hold now."""
    gpus_per_worker: float = 0.0
    cpus_per_worker: float = 1.0

    def __post_init__(self) -> None:
        if self.workers is not None and self.workers < 1:
            raise ValueError(f"workers must be at least 1, got {self.workers}")
        if not self.gpus_per_worker >= 0:
            raise ValueError(f"gpus_per_worker must not be negative, got {self.gpus_per_worker}")
        if not self.cpus_per_worker > 0:
            raise ValueError(f"cpus_per_worker must be positive, got {self.cpus_per_worker}")


def run_on_ray(
    jobs: Sequence[Job],
    model: str,
    engine: EngineOptions,
    options: BatchOptions,
    cluster: ClusterOptions,
    *,
    failures: Sequence[Failure] = (),
    on_outcome: Callable[[Outcome], None] | None = None,
) -> BatchSummary:
    """Upscale ``jobs`` on Ray workers; ``failures`` (from ``discover``) go into the summary and
    the manifest, as they are already reported. ``on_outcome`` is called on the driver with each
    file's outcome as it arrives (progress for callers without a terminal).

    Raises:
        UsageError: options that cannot run there (a GPU device without GPUs, too few CPUs).
        ClusterError: the workers could not start, or the cluster went away.
        BatchInterrupted: on Ctrl-C, with the summary so far (the manifest is saved).
    """
    start = time.perf_counter()
    if engine.device.startswith("cuda") and cluster.gpus_per_worker == 0:
        raise UsageError(f"--device {engine.device} needs --gpus-per-worker (workers that ask for no GPU see none)")
    # Workers do not share the driver's working folder: every path they get is absolute.
    jobs = [Job(job.source.absolute(), job.relative) for job in jobs]
    options = dataclasses.replace(options, output_dir=options.output_dir.absolute())
    plan = plan_batch(jobs, options)
    for failure in plan.refused:
        logger.error("%s", failure.message)
    prepare_folder(options.output_dir)
    manifest = Manifest.load(options.output_dir / MANIFEST_NAME)
    for failure in [*failures, *plan.refused]:
        manifest.record(ManifestRow.of_failure(dataclasses.replace(failure, path=failure.path.absolute())))
    tally = Tally(failures=[*failures, *plan.refused], skipped=plan.earlier_outputs)

    def finish(outcome: Outcome) -> None:
        report(outcome, options)
        tally.add(outcome)
        manifest.record(ManifestRow.of(outcome))
        if on_outcome is not None:
            on_outcome(outcome)

    pending, finished = _split_finished(plan.jobs, options, manifest, plan.inputs)
    for outcome in finished:
        finish(outcome)
    try:
        if pending:
            _run_pipeline(pending, plan.inputs, _shared_model(model), engine, options, cluster, finish, manifest)
    except KeyboardInterrupt:
        raise BatchInterrupted(tally.freeze(time.perf_counter() - start, interrupted=True)) from None
    finally:
        try:
            manifest.save()
        except OSError as error:
            logger.error("%s: cannot write the manifest (%s)", manifest.path, error.strerror or error)
    return tally.freeze(time.perf_counter() - start)


def _split_finished(
    jobs: Sequence[Job], options: BatchOptions, manifest: Manifest, inputs: frozenset[Path]
) -> tuple[list[Job], list[Outcome]]:
    """The jobs still to run, and a "skipped" outcome for each one already finished."""
    pending, finished = [], []
    for job in jobs:
        found = _finished_output(job, options, manifest, inputs)
        if found is None:
            pending.append(job)
        else:
            finished.append(Outcome(job.source, "skipped", found))
    return pending, finished


def _finished_output(job: Job, options: BatchOptions, manifest: Manifest, inputs: frozenset[Path]) -> Path | None:
    """The output that makes this job done already, without reading it: the local skip rule, or
    a manifest row of a finished file whose output (a name this run would give it) is on disk.
    The manifest knows names the file rule cannot (an RGBA input whose JPEG output became PNG)."""
    found = existing_output(job, options, inputs)
    if found is not None or options.overwrite:
        return found
    row = manifest.get(job.source)
    if row is None or row.status == "failed" or not row.output:
        return None
    output = Path(row.output)
    names = {output_path(job, options, has_alpha=has_alpha) for has_alpha in (False, True)}
    if output in names and os.path.lexists(output) and real_path(output) not in inputs:
        return output
    return None


def _protected(job: Job, options: BatchOptions, inputs: frozenset[Path]) -> list[Path]:
    """The inputs this job's output could replace (the worker refuses to): usually none."""
    names = {real_path(output_path(job, options, has_alpha=has_alpha)) for has_alpha in (False, True)}
    return sorted(names & inputs)


def _shared_model(model: str) -> str:
    """A weights file as an absolute path (workers have their own working folder); names as they are."""
    from soccersr.weights.zoo import find_spec

    return model if find_spec(model) is not None or not Path(model).exists() else str(Path(model).absolute())


def _run_pipeline(
    pending: list[Job],
    inputs: frozenset[Path],
    model: str,
    engine: EngineOptions,
    options: BatchOptions,
    cluster: ClusterOptions,
    finish: Callable[[Outcome], None],
    manifest: Manifest,
) -> None:
    import ray
    import ray.data

    quiet = not logger.isEnabledFor(logging.DEBUG)
    # Ray 2.60 warns about its own settings (DataContext fields) and about max_restarts /
    # max_task_retries below ("ray_remote_args", deprecated with no replacement yet).
    ray_deprecations = warnings.catch_warnings(action="ignore", category=DeprecationWarning)
    with ray_deprecations, _ray_session(cluster.address, quiet=quiet), _ray_data_settings(quiet=quiet):
        workers = _pool_size(cluster, ray.cluster_resources(), local=cluster.address is None)
        logger.info(
            "%d file%s to upscale on %d Ray worker%s (%g CPU, %g GPU each)",
            len(pending),
            "s" if len(pending) != 1 else "",
            workers,
            "s" if workers != 1 else "",
            cluster.cpus_per_worker,
            cluster.gpus_per_worker,
        )
        rows = [job_row(job, _protected(job, options, inputs)) for job in pending]
        # One file per block, so a retried task redoes one file, not the ones finished before it.
        dataset = ray.data.from_items(rows, override_num_blocks=len(rows))
        dataset = dataset.map_batches(
            UpscaleWorker,
            fn_constructor_kwargs={
                "model": model,
                "engine": engine,
                "options": options,
                "threads": max(1, int(cluster.cpus_per_worker)),
            },
            batch_size=1,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=workers),
            num_cpus=cluster.cpus_per_worker,
            num_gpus=cluster.gpus_per_worker,
            max_restarts=-1,
            max_task_retries=MAX_ATTEMPTS - 1,
        )
        seen: set[Path] = set()
        disable = None if options.progress else True  # tqdm: None = show on a terminal only
        with tqdm(total=len(pending), unit="img", desc="upscale", disable=disable) as bar:
            try:
                for row in dataset.iter_rows():
                    outcome = outcome_from_row(row)
                    seen.add(outcome.source)
                    finish(outcome)
                    manifest.save_now_and_then()
                    bar.set_postfix_str(outcome.source.name, refresh=False)
                    bar.update(1)
            except ray.exceptions.RayError as error:
                raise ClusterError(f"the Ray run failed: {_first_line(error)}") from None
    for job in pending:
        if job.source not in seen:  # dropped by Ray Data after MAX_ATTEMPTS worker deaths
            message = (
                f"{job.source}: its worker process died {MAX_ATTEMPTS} times while upscaling it "
                "(killed, or out of memory: try a smaller --tile or more memory per worker)"
            )
            finish(Outcome(job.source, "failed", message=message))


@contextlib.contextmanager
def _ray_session(address: str | None, *, quiet: bool) -> Iterator[None]:
    """Connect to ``address``, or start a local Ray; shut it down after. A session the caller
    already started (a notebook, the tests) is used as it is and left running."""
    import ray

    if ray.is_initialized():
        yield
        return
    settings: dict = {"log_to_driver": not quiet, "logging_level": logging.ERROR if quiet else logging.INFO}
    if address is None:
        settings["include_dashboard"] = False
    try:
        ray.init(address=address, **settings)
    except (ConnectionError, RuntimeError, ValueError) as error:
        where = f"the Ray cluster at {address}" if address else "a local Ray"
        raise ClusterError(f"cannot start or reach {where}: {_first_line(error)}") from None
    try:
        yield
    finally:
        ray.shutdown()


@contextlib.contextmanager
def _ray_data_settings(*, quiet: bool) -> Iterator[None]:
    """Ray Data as this driver needs it, restored afterwards."""
    from ray.data import DataContext

    context = DataContext.get_current()
    saved = context.enable_progress_bars, context.max_errored_blocks
    context.enable_progress_bars = False  # our bar counts files, on a terminal only
    context.max_errored_blocks = -1  # a file whose worker keeps dying fails alone (reported by the driver)
    # Ray Data logs to its own console handler and to a file in the Ray session's folder: mute the
    # console, keep the file. Handlers it shares with the root logger are the application's.
    shared = logging.getLogger().handlers
    consoles = [
        handler
        for handler in logging.getLogger("ray.data").handlers
        if quiet and _is_console(handler) and handler not in shared
    ]
    levels = [handler.level for handler in consoles]
    for handler in consoles:
        handler.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        context.enable_progress_bars, context.max_errored_blocks = saved
        for handler, level in zip(consoles, levels, strict=True):
            handler.setLevel(level)


def _is_console(handler: logging.Handler) -> bool:
    return isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler)


def _pool_size(cluster: ClusterOptions, resources: dict[str, float], *, local: bool) -> int:
    """``--workers``, or as many workers as the cluster's CPUs and GPUs hold now."""
    cpus, gpus = resources.get("CPU", 0.0), resources.get("GPU", 0.0)
    fits = int(cpus // cluster.cpus_per_worker)
    if cluster.gpus_per_worker > 0:
        fits = min(fits, int(gpus // cluster.gpus_per_worker))
    each = f"{cluster.cpus_per_worker:g} CPU and {cluster.gpus_per_worker:g} GPU each"
    has = f"{'the local Ray' if local else 'the Ray cluster'} has {cpus:g} CPUs and {gpus:g} GPUs"
    wanted = cluster.workers if cluster.workers is not None else 1
    if wanted > fits:
        if local or cluster.workers is None:
            raise UsageError(f"{has}: {wanted} worker{'s' if wanted != 1 else ''} of {each} do not fit")
        # An autoscaler may add nodes: wait for them rather than refuse.
        logger.warning("%s now: %d workers of %s wait until nodes join", has, wanted, each)
    return fits if cluster.workers is None else cluster.workers


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
