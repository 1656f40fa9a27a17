"""Upscaling many files: finding the inputs, naming the outputs, and going on past bad files.

``discover`` turns command-line inputs (files, folders, globs) into ``Job``s; ``run_batch``
reads, upscales and writes each one with ``pipeline.upscale_image`` and returns a
``BatchSummary``. A bad input or an unwritable output costs that one image, never the batch:
the reason is logged once, as one line naming the file, and counted in the summary.

The pieces are shared with the cluster driver (``soccersr.cluster``), so both follow one set of
rules: ``plan_batch`` applies the rules that need the whole list, ``upscale_job`` is the one
"read, upscale, write atomically" step of a file (run here in a loop, there on Ray actors),
``report`` logs its ``Outcome`` and ``Tally`` adds outcomes up into the summary.

Outputs are written atomically. An existing output is skipped unless ``overwrite`` is set, and
the write itself never replaces a file (another run's output that appeared meanwhile is that
image's failure). Two inputs with one output name fail before anything is read, so a rerun
cannot count the one that was never upscaled as done. Ctrl-C raises ``BatchInterrupted`` (a
KeyboardInterrupt) carrying the summary so far.

Images are processed one after another: decoding and writing take milliseconds next to the
network's seconds, so overlapping them would add threads for no measurable gain.
"""

from __future__ import annotations

import glob
import logging
import os
import time
from collections.abc import Container, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import cv2
from tqdm import tqdm

from soccersr.infer.pipeline import ALPHA_MODES, AlphaMode, ProgressFn, SupportsUpscale, upscale_image
from soccersr.io.images import EXTENSIONS, ImageReadError, ImageWriteError, OutputExistsError, read_image, write_image
from soccersr.io.listing import SUFFIX_FORMATS, glob_base, glob_paths, is_image_name, walk_images
from soccersr.options import DEFAULT_MAX_PIXELS, OUTPUT_FORMATS

logger = logging.getLogger(__name__)

OutputFormat = Literal["auto", "png", "jpeg", "webp", "tiff"]
Status = Literal["done", "skipped", "failed"]


@dataclass(frozen=True)
class Job:
    """One input file and where its output goes, relative to the output folder."""

    source: Path
    relative: Path
    """The source's path relative to the folder or glob it was found in (just its name for a file)."""


@dataclass(frozen=True)
class Failure:
    path: Path
    message: str
    """One line naming the file and the reason."""


@dataclass(frozen=True)
class BatchOptions:
    """How ``run_batch`` names, converts and writes outputs."""

    output_dir: Path
    suffix: str = "out"
    """Added to each output name as ``<stem>_<suffix>``; empty keeps the input's name."""
    format: OutputFormat = "auto"
    """'auto' keeps the input's format (BMP becomes PNG); alpha turns JPEG into PNG."""
    quality: int = 95
    """JPEG / WebP quality, 1..100."""
    outscale: float | None = None
    """Output size / input size; None: the model's scale."""
    alpha: AlphaMode = "model"
    overwrite: bool = False
    """Replace existing outputs; else they are skipped, each with a note naming ``--overwrite``."""
    skip_existing: bool = False
    """Skip existing outputs quietly (resuming a batch)."""
    max_pixels: int | None = DEFAULT_MAX_PIXELS
    progress: bool = True
    """Show progress bars (on a terminal)."""

    def __post_init__(self) -> None:
        if self.format not in OUTPUT_FORMATS:
            raise ValueError(f"format must be one of {OUTPUT_FORMATS}, got {self.format!r}")
        if self.alpha not in ALPHA_MODES:
            raise ValueError(f"alpha must be one of {ALPHA_MODES}, got {self.alpha!r}")
        if not 1 <= self.quality <= 100:
            raise ValueError(f"quality must be in 1..100, got {self.quality}")
        if self.outscale is not None and not self.outscale > 0:
            raise ValueError(f"outscale must be positive, got {self.outscale}")
        if self.overwrite and self.skip_existing:
            raise ValueError("overwrite and skip_existing exclude each other")
        if "/" in self.suffix or os.sep in self.suffix:
            raise ValueError(f"suffix must not contain a path separator, got {self.suffix!r}")


@dataclass(frozen=True)
class BatchSummary:
    done: int = 0
    skipped: int = 0
    failures: tuple[Failure, ...] = ()
    input_megapixels: float = 0.0
    output_megapixels: float = 0.0
    seconds: float = 0.0
    interrupted: bool = False

    @property
    def failed(self) -> int:
        return len(self.failures)

    def line(self) -> str:
        """A human summary: counts, megapixels and time (each failure was logged when it happened)."""
        head = (
            f"upscaled {self.done} image{'s' if self.done != 1 else ''} "
            f"({self.input_megapixels:.3g} MP -> {self.output_megapixels:.3g} MP) in {self.seconds:.1f} s; "
            f"skipped {self.skipped}; failed {self.failed}"
        )
        return ("interrupted: " if self.interrupted else "") + head


class BatchInterrupted(KeyboardInterrupt):
    """Ctrl-C during ``run_batch``; ``summary`` covers the images finished before it."""

    def __init__(self, summary: BatchSummary) -> None:
        super().__init__("interrupted")
        self.summary = summary


# --- Finding the inputs --------------------------------------------------------------------


def discover(
    inputs: Sequence[str | Path], *, recursive: bool = False, exclude: Path | None = None
) -> tuple[list[Job], list[Failure]]:
    """Jobs for command-line inputs, and a Failure for each input that yields nothing.

    A file is taken whatever its name (a bad one is reported when read); folders and globs
    contribute only files with an image extension, quietly ignoring the rest. ``recursive``
    descends into subfolders (and lets ``**`` in globs match across folders); ``exclude`` is a
    folder never descended into (the output folder, so reruns do not pick up their outputs).
    """
    excluded = real_path(exclude) if exclude is not None else None
    jobs: list[Job] = []
    failures: list[Failure] = []
    seen: set[Path] = set()  # real paths: a file named twice (or through a link) is upscaled once
    for raw in inputs:
        pairs, problem = _expand_input(raw, recursive=recursive, exclude=excluded)
        if problem is not None:
            failures.append(Failure(Path(raw), problem))
        for source, relative in pairs:
            key = real_path(source)
            if key not in seen:
                seen.add(key)
                jobs.append(Job(source, relative))
    return jobs, failures


def _expand_input(
    raw: str | Path, *, recursive: bool, exclude: Path | None
) -> tuple[list[tuple[Path, Path]], str | None]:
    """(source, output-relative path) of each image one command-line input names, and why it names
    none (or None)."""
    path = Path(raw)
    if path.is_dir():
        files = walk_images(path, recursive=recursive, exclude=exclude)
        hint = "" if recursive else " (add --recursive to look in subfolders)"
        problem = None if files else f"{path}: no images found in this folder{hint}"
        return [(file, file.relative_to(path)) for file in files], problem
    if path.exists() or path.is_symlink():
        return [(path, Path(path.name))], None
    if not glob.has_magic(str(raw)):
        return [], f"{path}: no such file or folder"
    base, files = _glob_images(str(raw), recursive=recursive, exclude=exclude)
    pairs = [(file, file.relative_to(base) if file.is_relative_to(base) else Path(file.name)) for file in files]
    return pairs, None if files else f"{raw}: no image files match"


def _glob_images(pattern: str, *, recursive: bool, exclude: Path | None) -> tuple[Path, list[Path]]:
    """The folder a glob starts from, and the image files it matches (folders it matches are walked)."""
    base = glob_base(pattern)
    matches = glob_paths(pattern, recursive=recursive)
    if exclude is not None and exclude != real_path(base):
        # The output folder inside the globbed folder: never read earlier outputs back in.
        matches = [m for m in matches if not real_path(m).is_relative_to(exclude)]
    files = [m for m in matches if m.is_file() and is_image_name(m)]
    for folder in (m for m in matches if m.is_dir()):
        files += walk_images(folder, recursive=recursive, exclude=exclude)
    return base, files


def real_path(path: Path) -> Path:
    """The path with every symlink resolved, as far as it resolves: unlike ``Path.resolve``,
    a symlink loop (``l1.png -> l2.png -> l1.png``) is no exception; reading it reports it."""
    return Path(os.path.realpath(path))


# --- Naming the outputs --------------------------------------------------------------------


def output_format(source: Path, requested: OutputFormat, *, has_alpha: bool) -> str:
    """The format an output is written in: the requested one, the source's for 'auto' (BMP -> PNG),
    and PNG when the image has alpha and the choice was JPEG."""
    source_format = SUFFIX_FORMATS.get(source.suffix.lower(), "png")
    fmt = source_format if requested == "auto" else requested
    if fmt == "bmp" or (fmt == "jpeg" and has_alpha):
        fmt = "png"
    return fmt


def output_path(job: Job, options: BatchOptions, *, has_alpha: bool) -> Path:
    """``<output_dir>/<relative folder>/<stem>_<suffix>.<ext>``; 'auto' keeps the source's extension."""
    fmt = output_format(job.source, options.format, has_alpha=has_alpha)
    keep_suffix = SUFFIX_FORMATS.get(job.source.suffix.lower()) == fmt
    extension = job.source.suffix if keep_suffix else EXTENSIONS[fmt]
    stem = job.relative.stem + (f"_{options.suffix}" if options.suffix else "")
    return options.output_dir / job.relative.parent / (stem + extension)


def _alpha_may_change_name(job: Job, options: BatchOptions) -> bool:
    """True when the output name depends on whether the image turns out to have alpha."""
    return output_path(job, options, has_alpha=False) != output_path(job, options, has_alpha=True)


# --- One job -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """What became of one job: upscaled ('done'), left alone ('skipped') or 'failed'."""

    source: Path
    status: Status
    output: Path | None = None
    """The file written (done) or found in the way (skipped); None when it failed."""
    message: str = ""
    """When failed: one line naming the file and the reason."""
    input_megapixels: float = 0.0
    output_megapixels: float = 0.0
    seconds: float = 0.0


class _Skip(Exception):
    """This job's output already exists and overwrite is not set."""

    def __init__(self, output: Path) -> None:
        super().__init__(str(output))
        self.output = output


def prepare_folder(folder: Path) -> None:
    """Create an output folder, or raise ImageWriteError saying why it cannot be written to."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise ImageWriteError(f"{folder}: cannot create the output folder (a file has that name)") from None
    except PermissionError:
        raise ImageWriteError(f"{folder}: cannot create the output folder (permission denied)") from None
    except OSError as error:
        raise ImageWriteError(f"{folder}: cannot create the output folder ({error.strerror or error})") from None
    # Fail before spending minutes on the network, not after.
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ImageWriteError(f"{folder}: cannot write to the output folder (permission denied)")


def existing_output(job: Job, options: BatchOptions, inputs: Container[Path]) -> Path | None:
    """The job's output when it exists and is to be skipped, known without reading the input:
    None with ``overwrite``, or when the output name depends on the image (alpha may turn a
    JPEG output into PNG), or when that file is another input of the batch (an error, not a skip)."""
    if options.overwrite or _alpha_may_change_name(job, options):
        return None
    target = output_path(job, options, has_alpha=False)
    if os.path.lexists(target) and real_path(target) not in inputs:
        return target
    return None


def upscale_job(
    job: Job,
    upscaler: SupportsUpscale,
    options: BatchOptions,
    *,
    inputs: Container[Path],
    progress: ProgressFn | None = None,
) -> Outcome:
    """Read, upscale and write one job, the output atomically: the one step of every batch, local
    or on a cluster worker.

    ``inputs`` holds the real paths of the batch's inputs that an output could land on (all of
    them, or just those of this job's output names): an output never replaces an input. A bad
    input, an unwritable output or an engine error is a failed ``Outcome`` with one line naming
    the file; nothing half-written is left under the output name. Ctrl-C is not caught.
    """
    start = time.perf_counter()

    def failed(message: str) -> Outcome:
        return Outcome(job.source, "failed", message=message, seconds=time.perf_counter() - start)

    try:
        target, megapixels_in, megapixels_out = _read_upscale_write(job, upscaler, options, inputs, progress)
    except _Skip as skip:
        return Outcome(job.source, "skipped", skip.output, seconds=time.perf_counter() - start)
    except (ImageReadError, ImageWriteError) as error:
        return failed(str(error))
    except (RuntimeError, MemoryError) as error:
        # Out of memory, a CUDA error...: this image fails, the next may be smaller.
        return failed(f"{job.source}: upscaling failed ({_first_line(error)}); try a smaller --tile")
    except (ValueError, cv2.error) as error:
        # e.g. an --outscale that leaves no pixel, or a resize OpenCV cannot allocate.
        return failed(f"{job.source}: upscaling failed ({_first_line(error)})")
    return Outcome(job.source, "done", target, "", megapixels_in, megapixels_out, time.perf_counter() - start)


def report(outcome: Outcome, options: BatchOptions) -> None:
    """Log what the user should hear about one outcome: each failure once, as its one line, and
    a note for a skipped output (a debug line only with ``skip_existing``)."""
    if outcome.status == "failed":
        logger.error("%s", outcome.message)
    elif outcome.status == "skipped":
        if options.skip_existing:
            logger.debug("%s: skipped, %s exists", outcome.source, outcome.output)
        else:
            logger.info("%s: exists, skipped (--overwrite replaces it)", outcome.output)


def _read_upscale_write(
    job: Job, upscaler: SupportsUpscale, options: BatchOptions, inputs: Container[Path], progress: ProgressFn | None
) -> tuple[Path, float, float]:
    """Returns (output, input megapixels, output megapixels). Raises _Skip or a one-line error."""
    early = existing_output(job, options, inputs)  # skip without decoding when the name is known
    if early is not None:
        raise _Skip(early)
    image = read_image(job.source, max_pixels=options.max_pixels)
    target = output_path(job, options, has_alpha=image.alpha is not None)
    key = real_path(target)
    if key == real_path(job.source):
        raise ImageWriteError(
            f"{job.source}: the output would replace the input (set a suffix or another output folder)"
        )
    if key in inputs:
        # Another input of this batch, not yet (or already) upscaled: never destroy a source.
        raise ImageWriteError(f"{job.source}: its output {target} would replace another input of this batch")
    if os.path.lexists(target) and not options.overwrite:
        raise _Skip(target)
    prepare_folder(target.parent)
    result = upscale_image(image, upscaler, outscale=options.outscale, alpha=options.alpha, progress=progress)
    fmt = output_format(job.source, options.format, has_alpha=image.alpha is not None)
    try:
        write_image(target, result, quality=options.quality, format=fmt, replace=options.overwrite)
    except OutputExistsError:
        raise ImageWriteError(
            f"{target}: appeared while {job.source} was being upscaled (another run writing here?); "
            "kept it, not replaced (--overwrite replaces it)"
        ) from None
    logger.debug("%s -> %s (%dx%d)", job.source, target, result.width, result.height)
    return target, image.megapixels, result.megapixels


# --- Planning ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class BatchPlan:
    """The jobs of a batch that are to run, after the rules that need the whole list."""

    jobs: tuple[Job, ...]
    inputs: frozenset[Path]
    """Real paths of the inputs: no output may replace one."""
    refused: tuple[Failure, ...]
    """Jobs whose output name an earlier job has: they fail before anything is read."""
    earlier_outputs: int
    """Inputs left out as this batch's own outputs from an earlier run (counted as skipped)."""


def plan_batch(jobs: Iterable[Job], options: BatchOptions) -> BatchPlan:
    """Apply the whole-batch rules: leave out earlier outputs, refuse shared output names."""
    kept, earlier_outputs = _drop_earlier_outputs(list(jobs), options)
    inputs = frozenset(real_path(job.source) for job in kept)
    kept, refused = _refuse_shared_names(kept, options)
    return BatchPlan(tuple(kept), inputs, tuple(refused), earlier_outputs)


def _refuse_shared_names(jobs: list[Job], options: BatchOptions) -> tuple[list[Job], list[Failure]]:
    """Jobs whose output name an earlier job of the batch has (``a/photo.png`` and ``b/photo.png``
    into one folder): the first keeps the name, the others fail now, before anything is read.
    Either output name counts (with and without alpha), so the answer never depends on what is
    already on disk, and a rerun with ``--skip-existing`` reports them again."""
    owners: dict[Path, Job] = {}
    kept, refused = [], []
    for job in jobs:
        names = [real_path(output_path(job, options, has_alpha=has_alpha)) for has_alpha in (False, True)]
        owner = next((owners[name] for name in names if name in owners), None)
        if owner is None:
            kept.append(job)
            owners.update(dict.fromkeys(names, job))
        else:
            target = output_path(job, options, has_alpha=False)
            refused.append(
                Failure(job.source, f"{job.source}: same output name as {owner.source} ({target}); rename one of them")
            )
    return kept, refused


def _drop_earlier_outputs(jobs: list[Job], options: BatchOptions) -> tuple[list[Job], int]:
    """Leave out inputs that are this batch's own outputs from an earlier run (``photo_x4.png``
    next to ``photo.png`` when the output folder is the input folder), so reruns never upscale
    their outputs again. Only with a suffix: without one, an output name is an input's name and
    cannot be told apart from a source photo."""
    if not options.suffix:
        return jobs, 0
    produced: dict[Path, Path] = {}
    for job in jobs:
        for has_alpha in (False, True):
            produced[real_path(output_path(job, options, has_alpha=has_alpha))] = job.source
    kept = []
    for job in jobs:
        source = produced.get(real_path(job.source))
        if source is not None and source != job.source:
            logger.info("%s: not upscaled, it is the output of %s from an earlier run", job.source, source)
        else:
            kept.append(job)
    return kept, len(jobs) - len(kept)


# --- Running the batch -------------------------------------------------------------------


@dataclass
class Tally:
    """Adds up outcomes into a ``BatchSummary`` (the local loop and the cluster driver both use it)."""

    done: int = 0
    skipped: int = 0
    failures: list[Failure] = field(default_factory=list)
    input_megapixels: float = 0.0
    output_megapixels: float = 0.0

    def add(self, outcome: Outcome) -> None:
        if outcome.status == "done":
            self.done += 1
            self.input_megapixels += outcome.input_megapixels
            self.output_megapixels += outcome.output_megapixels
        elif outcome.status == "skipped":
            self.skipped += 1
        else:
            self.failures.append(Failure(outcome.source, outcome.message))

    def freeze(self, seconds: float, interrupted: bool = False) -> BatchSummary:
        return BatchSummary(
            self.done,
            self.skipped,
            tuple(self.failures),
            self.input_megapixels,
            self.output_megapixels,
            seconds,
            interrupted,
        )


class _TileBar:
    """A nested progress bar over tiles, opened only when an image is cut into several tiles."""

    def __init__(self, enabled: bool, label: str) -> None:
        self.enabled = enabled
        self.label = label
        self.bar: tqdm | None = None

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled or total <= 1:
            return
        if self.bar is None:
            self.bar = tqdm(total=total, desc=self.label, unit="tile", leave=False, position=1, disable=None)
        self.bar.total = total  # grows when the engine splits tiles after running out of memory
        self.bar.n = done
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def run_batch(
    jobs: Iterable[Job], upscaler: SupportsUpscale, options: BatchOptions, *, failures: Sequence[Failure] = ()
) -> BatchSummary:
    """Upscale every job, one after another; ``failures`` (from ``discover``) go into the summary.

    Raises:
        BatchInterrupted: on Ctrl-C, with the summary of what finished (no partial file is left).
    """
    plan = plan_batch(jobs, options)
    for failure in plan.refused:
        logger.error("%s", failure.message)
    tally = Tally(failures=[*failures, *plan.refused], skipped=plan.earlier_outputs)
    start = time.perf_counter()
    disable = None if options.progress else True  # tqdm: None = show on a terminal only
    try:
        with tqdm(total=len(plan.jobs), unit="img", desc="upscale", disable=disable) as bar:
            for job in plan.jobs:
                bar.set_postfix_str(job.source.name, refresh=False)
                tiles = _TileBar(options.progress, job.source.name)
                try:
                    outcome = upscale_job(job, upscaler, options, inputs=plan.inputs, progress=tiles)
                finally:
                    tiles.close()
                report(outcome, options)
                tally.add(outcome)
                bar.update(1)
    except KeyboardInterrupt:
        raise BatchInterrupted(tally.freeze(time.perf_counter() - start, interrupted=True)) from None
    return tally.freeze(time.perf_counter() - start)


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
