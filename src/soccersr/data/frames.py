"""Still frames from match videos, for training: keyframes (or one frame every N seconds), no duplicates.

By default only key frames are decoded (``skip_frame = NONKEY``, like ``ffmpeg -skip_frame nokey``):
they are the sharpest frames of a stream and decoding them is cheap. With ``every`` set, the whole
stream is decoded and the first frame at or after each multiple of ``every`` seconds is a candidate.

A candidate is skipped when it is

- *blank*: a black or fade frame (mean luma below ``black_level``) or a flat one (luma standard
  deviation below ``flat_std``: slates, fades to white), or
- a *near-duplicate*: the mean absolute difference between its small grayscale thumbnail and that of
  the last kept frame is below ``min_diff``. By default that is 0.01 for key frames and 0 (off)
  with ``every``: asking for one frame every N seconds means one frame every N seconds, and on
  fixed-camera footage (SoccerTrack) consecutive thumbnails barely differ, so the filter kept
  only about one frame per 10 s whatever ``every`` said.

A video that ends before the length its header declares, or fails to decode, is read up to that
point; ``FrameStats.truncation`` says where and why (the frames before are kept). A frame is never
made from a packet the file ends in the middle of, and frames the decoder flags as damaged are
dropped: a training frame must be what the camera saw.

Kept frames are written at the source resolution as lossless PNG named ``<video stem>_<frame index>.png``
(6-digit, 0-based index computed from the timestamp). Writes are atomic, and a frame whose file already
exists is counted and not rewritten; because the decisions depend only on the decoded pixels, a rerun
after an interruption ends with exactly the files an uninterrupted run would have written.

Colours: the frame's own colour matrix is used; untagged streams get swscale's default (BT.601), the
same as ``ffmpeg -i video.mp4 frame.png``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from soccersr.io.images import DecodedImage, write_image
from soccersr.video.source import VideoError, VideoReader, open_input, video_stream

if TYPE_CHECKING:
    import av
    import av.container
    import av.video

log = logging.getLogger(__name__)

# ITU-R BT.601 luma weights; the thumbnail only feeds thresholds, so the exact matrix hardly matters.
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


__all__ = ["FrameConfig", "FrameStats", "VideoError", "extract_frames", "frame_name"]

DEFAULT_MIN_DIFF = 0.01
"""Near-duplicate threshold for key frames (``every`` not set)."""


@dataclass(frozen=True)
class FrameConfig:
    """How ``soccersr frames`` picks frames."""

    every: float | None = None
    """Seconds between candidates; ``None`` = every key frame."""
    min_diff: float | None = None
    """Thumbnail mean absolute difference (0-1 scale) below which a frame is a near-duplicate; 0 disables;
    None: 0.01 for key frames, 0 with ``every``."""
    max_frames: int | None = None
    """Stop a video after this many kept frames (written or already there); ``None`` = no limit."""
    black_level: float = 0.06
    """Mean luma (0-1) below which a frame counts as black (about 15/255)."""
    flat_std: float = 0.02
    """Luma standard deviation (0-1) below which a frame counts as flat (about 5/255)."""
    thumb_width: int = 64
    """Width of the grayscale thumbnail used for the blank and duplicate tests."""
    compression_level: int = 3
    """PNG compression level 0-9 (lossless either way)."""

    def __post_init__(self) -> None:
        if self.every is not None and not self.every > 0:
            raise ValueError(f"every must be > 0 seconds, got {self.every}")
        if self.min_diff is not None and not 0 <= self.min_diff <= 1:
            raise ValueError(f"min_diff must be in [0, 1], got {self.min_diff}")
        if self.max_frames is not None and self.max_frames < 1:
            raise ValueError(f"max_frames must be >= 1, got {self.max_frames}")
        if not 0 <= self.black_level <= 1:
            raise ValueError(f"black_level must be in [0, 1], got {self.black_level}")
        if not 0 <= self.flat_std <= 1:
            raise ValueError(f"flat_std must be in [0, 1], got {self.flat_std}")
        if self.thumb_width < 1:
            raise ValueError(f"thumb_width must be >= 1, got {self.thumb_width}")
        if not 0 <= self.compression_level <= 9:
            raise ValueError(f"compression_level must be in 0..9, got {self.compression_level}")

    @property
    def duplicate_threshold(self) -> float:
        """``min_diff``, or its default for the mode."""
        if self.min_diff is not None:
            return self.min_diff
        return 0.0 if self.every is not None else DEFAULT_MIN_DIFF


@dataclass
class FrameStats:
    """Counts for one video."""

    video: Path
    candidates: int = 0
    """Frames considered (key frames, or one per ``every`` seconds)."""
    written: int = 0
    existing: int = 0
    """Kept frames whose file was already there (an earlier, interrupted run)."""
    duplicates: int = 0
    blank: int = 0
    damaged: int = 0
    """Frames the decoder flagged as damaged (concealed errors): never candidates."""
    truncation: str | None = None
    """Where and why decoding stopped before the end the header declares (None: read to the end)."""

    @property
    def kept(self) -> int:
        return self.written + self.existing


def frame_name(stem: str, index: int) -> str:
    """``<stem>_<index>.png`` with a 6-digit, 0-based frame index."""
    return f"{stem}_{index:06d}.png"


def luma_thumbnail(frame: av.VideoFrame, width: int) -> np.ndarray:
    """A small grayscale copy of a frame (area-averaged, never enlarged), float32 in [0, 1]."""
    w = min(width, frame.width)
    h = max(1, round(frame.height * w / frame.width))
    small = frame.reformat(width=w, height=h, format="rgb24", interpolation="AREA").to_ndarray()
    return small.astype(np.float32) @ (_LUMA / 255.0)


def blank_reason(thumb: np.ndarray, cfg: FrameConfig) -> str | None:
    """``"black"`` or ``"flat"`` when the thumbnail is a blank frame, else ``None``."""
    if float(thumb.mean()) < cfg.black_level:
        return "black"
    if float(thumb.std()) < cfg.flat_std:
        return "flat"
    return None


def mean_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of two thumbnails (1.0 when their shapes differ)."""
    if a.shape != b.shape:
        return 1.0
    return float(np.abs(a - b).mean())


def extract_frames(
    video: Path,
    out_dir: Path,
    cfg: FrameConfig,
    *,
    progress: Callable[[float, float | None], None] | None = None,
) -> FrameStats:
    """Write the kept frames of ``video`` into ``out_dir`` (created if needed).

    ``progress(seconds_done, duration_or_None)`` is called after every decoded frame.

    A video that is cut or fails to decode part way is read up to there: ``stats.truncation``
    says where and why, and the frames before stay, complete.

    Raises:
        VideoError: the video cannot be opened or has no video stream.
        OSError: a frame cannot be written.
    """
    video = Path(video)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stats = FrameStats(video)
    container = open_input(video)
    with container:
        stream = video_stream(container, video)
        if cfg.every is None:
            stream.codec_context.skip_frame = "NONKEY"
            # Frame threads hold key frames back until the end, and lose them if a cut file's
            # last packet fails; slice threads hand each over at once (and key frames are few).
            stream.thread_type = "SLICE"
        else:
            stream.thread_type = "AUTO"
        duration = _duration(container, stream)
        reader = VideoReader(container, stream)
        reference: np.ndarray | None = None
        used: set[int] = set()
        seconds = 0.0
        stopped_early = False
        for index, seconds, frame in _candidates(reader, stream, cfg, progress, duration):
            stats.candidates += 1
            thumb = luma_thumbnail(frame, cfg.thumb_width)
            reason = blank_reason(thumb, cfg)
            if reason is not None:
                stats.blank += 1
                log.debug("%s: frame %d (%.2fs) skipped: %s", video.name, index, seconds, reason)
                continue
            if index in used or (reference is not None and mean_abs_diff(thumb, reference) < cfg.duplicate_threshold):
                stats.duplicates += 1
                continue
            reference = thumb
            used.add(index)
            path = out_dir / frame_name(video.stem, index)
            if path.exists():
                stats.existing += 1
            else:
                image = DecodedImage.from_pixels(frame.to_ndarray(format="rgb24"))
                write_image(path, image, png_compression=cfg.compression_level)
                stats.written += 1
            if cfg.max_frames is not None and stats.kept >= cfg.max_frames:
                stopped_early = True
                break
        stats.damaged = reader.damaged_frames
        if not stopped_early:
            stats.truncation = reader.truncation()
    return stats


def _duration(container: av.container.InputContainer, stream: av.video.VideoStream) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / 1_000_000  # AV_TIME_BASE
    return None


def _candidates(
    reader: VideoReader,
    stream: av.video.VideoStream,
    cfg: FrameConfig,
    progress: Callable[[float, float | None], None] | None,
    duration: float | None,
) -> Iterator[tuple[int, float, av.VideoFrame]]:
    """``(frame index, seconds from the start, frame)`` of the frames to consider, in decoding order."""
    rate: Fraction | None = stream.average_rate or stream.guessed_rate
    time_base: Fraction = stream.time_base
    start = stream.start_time or 0
    next_slot = 0  # in ``every`` mode: the next multiple of ``every`` seconds still without a frame
    for count, frame in enumerate(reader.frames()):
        if frame.pts is not None:
            seconds = float((frame.pts - start) * time_base)
            index = round((frame.pts - start) * time_base * rate) if rate else int(frame.pts - start)
        else:  # no timestamps: count frames (only meaningful when every frame is decoded)
            index = count
            seconds = float(count / rate) if rate else float(count)
        if progress is not None:
            progress(seconds, duration)
        if index < 0 or frame.is_corrupt:  # pre-roll (never shown), or damaged (counted by the reader)
            continue
        if cfg.every is None:
            yield index, seconds, frame
        elif seconds >= next_slot * cfg.every - 1e-6:
            yield index, seconds, frame
            # Integer slots, not a running sum, so 0.1 s steps do not drift.
            next_slot = math.floor(seconds / cfg.every + 1e-6) + 1
