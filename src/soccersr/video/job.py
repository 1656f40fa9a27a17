"""One clip through the model: decode, restore every frame, encode in segments, assemble.

    engine = open_upscaler("animevideov3", EngineOptions(device="cpu"))
    result = restore_video(Path("match.mp4"), Path("match_x4.mp4"), engine, VideoOptions())

The job is resumable: segments of about ``segment_seconds`` are finished one by one in the
work folder (``parts``), and a rerun with the same settings decodes from the end of the last
finished segment (seeking to the key frame before it) instead of from the start. The output
appears under its name only when complete.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from soccersr.errors import UsageError
from soccersr.infer.pipeline import SupportsUpscale, output_size, resize
from soccersr.io.atomic import atomic_write
from soccersr.video.convert import Color, even_size, from_rgb, to_rgb
from soccersr.video.encode import EncodeSettings, VideoSpec, choose_settings, container_for, encode_segment
from soccersr.video.mux import Timeline, assemble, plan_side_streams
from soccersr.video.parts import Segment, WorkFolder
from soccersr.video.source import FrameReader, SourceFrame, VideoError, VideoInfo, open_input, probe, video_stream

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VideoOptions:
    """How ``restore_video`` runs (the ``soccersr video`` options besides the engine's)."""

    outscale: float | None = None
    """Output size / input size; None: the model's scale. Others resize the model output (Lanczos)."""
    codec: str | None = None
    """libx264, libx265 or libsvtav1; None: libx264 (libsvtav1 for .webm)."""
    crf: int | None = None
    preset: str | None = None
    pix_fmt: str | None = None
    """None: yuv420p, or yuv420p10le for 10-bit input with libx265/libsvtav1."""
    start: float | None = None
    """Restore from this many seconds into the clip."""
    duration: float | None = None
    """Restore this many seconds."""
    frames_per_call: int | str = "auto"
    """Frames per engine call; auto: 1 on the CPU (batching was slower there, bench/README.md), 4 on a GPU."""
    segment_seconds: float = 10.0
    """Length of a segment: the most a kill can lose."""
    restart: bool = False
    """Discard unfinished work of this output made with other settings (else that is an error)."""
    progress: bool = True

    def __post_init__(self) -> None:
        if self.outscale is not None and not self.outscale > 0:
            raise UsageError(f"--outscale must be positive, got {self.outscale}")
        if self.start is not None and self.start < 0:
            raise UsageError(f"--start must not be negative, got {self.start}")
        if self.duration is not None and not self.duration > 0:
            raise UsageError(f"--duration must be positive, got {self.duration}")
        if not (
            self.frames_per_call == "auto" or (isinstance(self.frames_per_call, int) and self.frames_per_call >= 1)
        ):
            raise UsageError(f"--frames-per-call must be 'auto' or an integer >= 1, got {self.frames_per_call!r}")
        if not self.segment_seconds > 0:
            raise UsageError(f"--segment must be positive seconds, got {self.segment_seconds}")


@dataclass
class VideoResult:
    """What one clip's job did."""

    source: Path
    output: Path
    frames: int
    """Frames in the output."""
    resumed_frames: int
    """Of those, frames finished by an earlier, interrupted run."""
    seconds: float
    """Length of the output's video."""
    run_seconds: float
    """Video seconds restored by this run."""
    elapsed: float
    """Wall-clock seconds of this run."""
    truncation: str | None = None
    """Where and why decoding stopped early (a cut or damaged input); the output holds what came before."""
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        speed = self.run_seconds / self.elapsed if self.elapsed > 0 else float("inf")
        resumed = f", {self.resumed_frames} of them from an earlier run" if self.resumed_frames else ""
        return (
            f"{self.output}: {self.frames} frames, {_clock(self.seconds)} of video{resumed}; "
            f"{_clock(self.elapsed)} for this run = {speed:.3g}x real time"
        )


def _clock(seconds: float) -> str:
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(int(minutes), 60)
    return f"{hours}:{minutes:02d}:{secs:04.1f}" if hours else f"{minutes}:{secs:04.1f}"


@dataclass(frozen=True)
class _Plan:
    """Everything the frame loop needs, fixed at the start of a job."""

    info: VideoInfo
    settings: EncodeSettings
    spec: VideoSpec
    model_size: tuple[int, int]
    """(height, width) the engine returns."""
    target: tuple[int, int]
    """(height, width) encoded."""
    resize: bool
    """Lanczos from model_size to target (``--outscale``); else a crop of at most one row/column."""
    high_bit: bool
    """Frames go through 16-bit RGB (10-bit input or output)."""


def restore_video(source: Path, output: Path, engine: SupportsUpscale, options: VideoOptions) -> VideoResult:
    """Restore every frame of ``source`` (or its ``start``/``duration`` part) into ``output``.

    Raises:
        VideoError: the input is not a readable video (nothing is written).
        UsageError: bad options for this clip, or unfinished work of other settings.
    """
    started = time.perf_counter()
    container = container_for(output)
    info = probe(source)
    plan, warnings = _plan(info, container, engine, options)
    for warning in warnings:
        log.warning("%s: %s", source, warning)
    notes = _side_notes(info, container)
    for note in notes:
        log.info("%s: %s", source, note)
    part = _Part.of(info, options)

    work = WorkFolder(output, _job_description(source, engine, plan, options))
    segments = work.open(restart=options.restart)
    resumed = sum(s.frames for s in segments)
    if segments:
        log.info("%s: continuing after %d finished frames (%d segments)", source, resumed, len(segments))
    resume_pts = segments[-1].end_pts if segments else part.first_pts
    reader = FrameReader(info, first_pts=resume_pts, end_pts=part.end_pts)
    segments += _encode(reader, engine, plan, options, work, first_index=len(segments), done=resumed)
    if not segments:
        why = f": {reader.truncation}" if reader.truncation else ""
        raise VideoError(f"{source}: no frames to restore in the chosen part of the clip{why}")

    frames = sum(s.frames for s in segments)
    tb = info.time_base
    end_seconds = part.end_seconds
    truncation = None
    if reader.truncation is not None:
        truncation = f"{reader.truncation}; the {frames} frames before are restored in {output}"
        video_end = segments[-1].end_pts * tb  # the sound stops where the picture does
        end_seconds = video_end if end_seconds is None else min(end_seconds, video_end)
    timeline = Timeline(shift=part.cut or Fraction(0), start=part.cut, end=end_seconds)
    atomic_write(output, lambda tmp: assemble(tmp, container, segments, info, timeline))
    work.remove()

    first = min(segments[0].pts)
    run_start = first if resume_pts is None else max(first, resume_pts)
    return VideoResult(
        source=source,
        output=output,
        frames=frames,
        resumed_frames=resumed,
        seconds=float((segments[-1].end_pts - first) * tb),
        run_seconds=float((segments[-1].end_pts - run_start) * tb),
        elapsed=time.perf_counter() - started,
        truncation=truncation,
        notes=notes,
    )


@dataclass(frozen=True)
class _Part:
    """The part of the clip to restore (``--start``/``--duration``), in the video's timestamps."""

    first_pts: int | None
    """Frames from this pts on (None: from the first)."""
    end_pts: int | None
    """Frames before this pts (None: to the end)."""
    cut: Fraction | None
    """Input time (seconds) of the ``--start`` point, where the output's time 0 goes."""
    end_seconds: Fraction | None
    """Input time where the part ends (sound and subtitles stop there too)."""

    @staticmethod
    def of(info: VideoInfo, options: VideoOptions) -> _Part:
        tb = info.time_base
        origin = info.start_pts * tb  # --start counts from the video's first timestamp, as ffmpeg -ss
        cut = origin + Fraction(str(options.start)) if options.start else None
        end = (origin if cut is None else cut) + Fraction(str(options.duration)) if options.duration else None
        return _Part(
            first_pts=math.ceil(cut / tb) if cut is not None else None,
            end_pts=math.ceil(end / tb) if end is not None else None,
            cut=cut,
            end_seconds=end,
        )


def _encode(
    reader: FrameReader,
    engine: SupportsUpscale,
    plan: _Plan,
    options: VideoOptions,
    work: WorkFolder,
    *,
    first_index: int,
    done: int,
) -> list[Segment]:
    """Restore and encode the reader's frames into new segments of the work folder."""
    segment_frames = max(1, round(options.segment_seconds * float(plan.spec.rate)))
    batch = options.frames_per_call
    if batch == "auto":
        device = getattr(engine, "device", None)
        batch = 1 if device is None or device.type == "cpu" else 4
    segments: list[Segment] = []
    total = _expected_frames(plan.info, options)
    progress = None if options.progress else True
    with tqdm(total=total, initial=done, unit="frame", desc=plan.info.path.name, disable=progress) as bar:
        restored = _restore(reader, engine, plan, batch, bar)
        while first := list(itertools.islice(restored, 1)):  # restore a frame before opening a file
            frames = itertools.chain(first, itertools.islice(restored, segment_frames - 1))
            segments.append(_write_segment(work, first_index + len(segments), frames, plan))
    return segments


def _plan(info: VideoInfo, container: str, engine: SupportsUpscale, options: VideoOptions) -> tuple[_Plan, list[str]]:
    """The job's fixed facts, and warnings for the user."""
    settings, warnings = choose_settings(
        container,
        source_bits=info.bit_depth,
        hdr=info.hdr,
        codec=options.codec,
        crf=options.crf,
        preset=options.preset,
        pix_fmt=options.pix_fmt,
    )
    model_size = output_size(info.height, info.width, engine.scale)
    resized = options.outscale is not None and options.outscale != engine.scale
    wanted = output_size(info.height, info.width, options.outscale) if resized else model_size
    target = even_size(*wanted, settings.pix_fmt)
    if min(target) < 2:
        raise UsageError(f"{info.path}: --outscale {options.outscale:g} leaves nothing of {info.width}x{info.height}")
    if target != wanted:
        warnings.append(
            f"{wanted[1]}x{wanted[0]} has an odd side and {settings.pix_fmt} needs even ones: "
            f"the output is {target[1]}x{target[0]}" + ("" if resized else " (the last row/column is cropped)")
        )
    if info.interlaced:
        warnings.append(
            "interlaced video: frames are restored as whole pictures, so combing stays; "
            "deinterlace first (ffmpeg -vf bwdif) for clean motion"
        )
    rate = info.rate if info.rate else Fraction(25)
    spec = VideoSpec(width=target[1], height=target[0], time_base=info.time_base, rate=rate, color=info.color)
    high_bit = info.bit_depth > 8 or settings.bit_depth > 8
    return _Plan(info, settings, spec, model_size, target, resized, high_bit), warnings


def _side_notes(info: VideoInfo, container: str) -> list[str]:
    source = open_input(info.path)
    with source:
        plans = plan_side_streams(source, video_stream(source, info.path).index, container)
    return [p.note for p in plans if p.note]


def _job_description(source: Path, engine: SupportsUpscale, plan: _Plan, options: VideoOptions) -> dict:
    """What makes two runs the same job (the device, engine and precision do not count)."""
    import av

    stat = source.stat()
    job = {
        "input": {"name": source.name, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns},
        "model": getattr(engine, "name", type(engine).__name__),
        "scale": engine.scale,
        "size": list(plan.target),
        "resize": plan.resize,
        "encode": asdict(plan.settings),
        "start": options.start,
        "duration": options.duration,
        "libavcodec": list(av.library_versions["libavcodec"]),
    }
    return json.loads(json.dumps(job))  # as read back from job.json: lists, not tuples


def _expected_frames(info: VideoInfo, options: VideoOptions) -> int | None:
    """Frames the job will restore, from the header (for the progress bar; may be off)."""
    if info.frame_count is None or not info.rate:
        return info.frame_count
    left = max(0.0, float(info.frame_count / info.rate) - (options.start or 0))
    seconds = left if options.duration is None else min(options.duration, left)
    return math.ceil(seconds * info.rate)


def _batches(frames: Iterable[SourceFrame], size: int) -> Iterator[list[SourceFrame]]:
    iterator = iter(frames)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


def _restore(reader: FrameReader, engine: SupportsUpscale, plan: _Plan, batch: int, bar) -> Iterator[tuple]:
    """(encoder-ready frame, pts, duration) of every frame, restored, ``batch`` per engine call."""
    peak = 65535.0 if plan.high_bit else 255.0
    dtype = np.uint16 if plan.high_bit else np.uint8
    color: Color = plan.info.color
    height, width = plan.target
    for group in _batches(reader, batch):
        arrays = [to_rgb(item.frame, color, high_bit=plan.high_bit) for item in group]
        # NHWC -> NCHW view: the channels_last layout the runners compute in anyway.
        images = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float().div_(peak)
        with torch.inference_mode():
            restored = engine.upscale(images).permute(0, 2, 3, 1).numpy()
        for item, rgb in zip(group, restored, strict=True):
            if plan.resize:
                rgb = resize(np.ascontiguousarray(rgb), plan.target)
            rgb = rgb[:height, :width]
            quantized = np.clip(rgb * peak + 0.5, 0, peak).astype(dtype)
            frame = from_rgb(np.ascontiguousarray(quantized), plan.settings.pix_fmt, color)
            frame.pts = item.pts
            bar.update(1)
            yield frame, item.pts, item.duration


def _write_segment(work: WorkFolder, index: int, frames: Iterator[tuple], plan: _Plan) -> Segment:
    end = [0]

    def pictures() -> Iterator:
        for frame, pts, duration in frames:
            end[0] = pts + duration
            yield frame

    return work.add(index, lambda tmp: (encode_segment(tmp, pictures(), plan.spec, plan.settings), end[0]))
