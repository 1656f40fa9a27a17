"""Still frames from match videos, for training: keyframes (or one frame every N seconds), no duplicates.

By default only key frames are decoded (``skip_frame = NONKEY``, like ``ffmpeg -skip_frame nokey``):
they are the sharpest frames of a stream and decoding them is cheap. With ``every`` set, the whole
stream is decoded and the first frame at or after each multiple of ``every`` seconds is a candidate.

A candidate is skipped when it is

- *blank*: a black or fade frame (mean luma below ``black_level``) or a flat one (luma standard
  deviation below ``flat_std``: slates, fades to white), or
- a *near-duplicate*: the mean absolute difference between its small grayscale thumbnail and that of
  the last kept frame is below ``min_diff`` (0 keeps everything that is not blank).

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

from soccersr.errors import SoccersrError
from soccersr.io.images import DecodedImage, write_image

if TYPE_CHECKING:
    import av
    import av.container
    import av.video

log = logging.getLogger(__name__)

# ITU-R BT.601 luma weights; the thumbnail only feeds thresholds, so the exact matrix hardly matters.
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


class VideoError(SoccersrError, ValueError):
    """A video that cannot be opened or decoded; the message names the file and the reason."""


@dataclass(frozen=True)
class FrameConfig:
    """How ``soccersr frames`` picks frames."""

    every: float | None = None
    """Seconds between candidates; ``None`` = every key frame."""
    min_diff: float = 0.01
    """Thumbnail mean absolute difference (0-1 scale) below which a frame is a near-duplicate; 0 disables."""
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
        if not 0 <= self.min_diff <= 1:
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

    Raises:
        VideoError: the video cannot be opened, has no video stream, or fails to decode (frames
            written before the failure stay, complete).
        OSError: a frame cannot be written.
    """
    import av  # PyAV: the "train" extra

    video = Path(video)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stats = FrameStats(video)
    try:
        container = av.open(str(video))
    except (av.error.FFmpegError, OSError) as exc:
        raise VideoError(f"{video}: cannot open: {exc}") from exc
    with container:
        if not container.streams.video:
            raise VideoError(f"{video}: no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        if cfg.every is None:
            stream.codec_context.skip_frame = "NONKEY"
        duration = _duration(container, stream)
        reference: np.ndarray | None = None
        used: set[int] = set()
        seconds = 0.0
        try:
            for index, seconds, frame in _candidates(container, stream, cfg, progress, duration):
                stats.candidates += 1
                thumb = luma_thumbnail(frame, cfg.thumb_width)
                reason = blank_reason(thumb, cfg)
                if reason is not None:
                    stats.blank += 1
                    log.debug("%s: frame %d (%.2fs) skipped: %s", video.name, index, seconds, reason)
                    continue
                if index in used or (reference is not None and mean_abs_diff(thumb, reference) < cfg.min_diff):
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
                    break
        except av.error.FFmpegError as exc:
            raise VideoError(f"{video}: decoding failed near {seconds:.2f}s: {exc}") from exc
    return stats


def _duration(container: av.container.InputContainer, stream: av.video.VideoStream) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / 1_000_000  # AV_TIME_BASE
    return None


def _candidates(
    container: av.container.InputContainer,
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
    for count, frame in enumerate(container.decode(stream)):
        if frame.pts is not None:
            seconds = float((frame.pts - start) * time_base)
            index = round((frame.pts - start) * time_base * rate) if rate else int(frame.pts - start)
        else:  # no timestamps: count frames (only meaningful when every frame is decoded)
            index = count
            seconds = float(count / rate) if rate else float(count)
        if progress is not None:
            progress(seconds, duration)
        if index < 0:  # pre-roll before the stream start; never shown
            continue
        if cfg.every is None:
            yield index, seconds, frame
        elif seconds >= next_slot * cfg.every - 1e-6:
            yield index, seconds, frame
            # Integer slots, not a running sum, so 0.1 s steps do not drift.
            next_slot = math.floor(seconds / cfg.every + 1e-6) + 1
