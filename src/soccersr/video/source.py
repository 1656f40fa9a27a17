"""Reading a video: what it holds (``probe``) and its frames in order, streamed (``FrameReader``).

Memory does not grow with the clip: packets are read and decoded one at a time and each frame
is handed on. A clip that ends before the length its header declares (a cut download, a full
disk) or whose packets fail to decode is noticed (``VideoReader.truncation``) instead of ending
quietly; ``soccersr frames`` reads through the same ``VideoReader``.

Times: a frame's ``pts`` is in its stream's ``time_base``. "Seconds into the clip" (``--start``)
count from the video stream's first timestamp, as ``ffmpeg -ss`` does.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

from soccersr.errors import SoccersrError
from soccersr.video.convert import Color, color_of

if TYPE_CHECKING:
    import av
    import av.container
    import av.video.stream

log = logging.getLogger(__name__)

HDR_TRANSFERS = {16: "PQ (HDR10)", 18: "HLG"}
"""FFmpeg's AVColorTransferCharacteristic values of the HDR transfer functions."""


class VideoError(SoccersrError):
    """A file that cannot be read as a video; the message names the file and the reason."""


def one_line(exc: BaseException) -> str:
    """An FFmpeg or OS error as one short line ("Invalid data found when processing input")."""
    text = (getattr(exc, "strerror", None) or str(exc)).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def open_input(path: Path) -> av.container.InputContainer:
    """Open ``path`` for reading; VideoError (one line) when it is missing or not a media file."""
    import av

    if not path.is_file():
        raise VideoError(f"{path}: no such file" if not path.exists() else f"{path}: not a file")
    try:
        return av.open(str(path), metadata_errors="replace")
    except (av.error.FFmpegError, OSError) as exc:
        raise VideoError(f"{path}: not a readable video ({one_line(exc)})") from exc


def video_stream(container: av.container.InputContainer, path: Path) -> av.video.stream.VideoStream:
    """The clip's video stream: the first one that is not a cover picture."""
    from av.stream import Disposition

    for stream in container.streams.video:
        if not stream.disposition & Disposition.attached_pic:
            if stream.codec_context is None:
                raise VideoError(f"{path}: no decoder for its video codec")
            return stream
    raise VideoError(f"{path}: no video stream")


def declared_seconds(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> Fraction | None:
    """How long the file says the video stream is, or None when it does not say."""
    if stream.duration is not None and stream.time_base is not None:
        return stream.duration * stream.time_base
    tag = stream.metadata.get("DURATION")  # Matroska: one per stream, "00:00:10.000000000"
    if tag:
        try:
            hours, minutes, seconds = tag.split(":")
            return Fraction(int(hours) * 3600 + int(minutes) * 60) + Fraction(seconds)
        except ValueError:
            pass
    if container.duration is not None and len(container.streams) == 1:  # else it may be the audio's length
        return Fraction(container.duration, 1_000_000)  # AV_TIME_BASE
    return None


class VideoReader:
    """Decodes the video stream of an open container, remembering how far the file went and why
    it stopped, so that a cut or damaged file is reported rather than silently shorter."""

    def __init__(self, container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> None:
        self.container = container
        self.stream = stream
        self.error: str | None = None
        """The first FFmpeg error met (a damaged packet, or a read error that ended the stream)."""
        self.error_at = Fraction(0)
        """Seconds into the stream of the packet that gave ``error``."""
        self.read_to: int | None = None
        """End of the last packet read (its pts + duration), in the stream's time base."""
        self.incomplete_packets = 0
        """Packets the file ends in the middle of (at most one; never decoded)."""
        self.damaged_frames = 0
        """Frames the decoder flagged as damaged (concealed errors); they are still yielded."""
        self._read_failed = False

    def frames(self) -> Iterator[av.VideoFrame]:
        """Every decoded frame, in presentation order, to the end of the file. A damaged packet
        is skipped (the first such error is kept in ``error``); a read error ends the stream.

        A packet the file ends in the middle of is never decoded: the decoder would make a frame
        from part of its data, and with frame threads whether that frame comes out, and whether
        the ones held before it do, would depend on thread timing. Frames the decoder flags as
        damaged come out (a video keeps its timing) and are counted in ``damaged_frames``;
        ``frame.is_corrupt`` says which.
        """
        import av

        for packet in self._packets():
            if packet.pts is not None:
                end = packet.pts + (packet.duration or 0)
                self.read_to = end if self.read_to is None else max(self.read_to, end)
            try:
                frames = packet.decode()  # the last, empty packet flushes the decoder
            except av.error.FFmpegError as exc:  # a damaged packet: the decoder goes on with the next
                self._note(exc, packet.pts)
                continue
            yield from self._counted(frames)
        if self._read_failed:  # no end-of-stream packet came to flush it: the frames the decoder still holds
            try:
                held = self.stream.codec_context.decode(None)
            except av.error.FFmpegError:
                held = []
            yield from self._counted(held)

    def _packets(self) -> Iterator[av.Packet]:
        """The stream's packets up to the end or a read error, without one the file ends inside.

        Demuxers flag a packet cut short by the end of the file as corrupt (so do some for other
        reasons mid-file: those are kept), so a flagged packet is held until the next read shows
        whether the file ends there.
        """
        import av

        packets = self.container.demux(self.stream)
        flagged: av.Packet | None = None
        while True:
            try:
                packet = next(packets)
            except StopIteration:
                break
            except av.error.FFmpegError as exc:  # the file cannot be read further
                self._note(exc, None)
                self._read_failed = True
                break
            if flagged is not None and packet.size:
                yield flagged  # the file goes on: the flag meant something else
            elif flagged is not None:
                self.incomplete_packets += 1  # the end-of-stream flush follows: cut short by the end
            flagged = packet if packet.is_corrupt and packet.size else None
            if flagged is None:
                yield packet
        if flagged is not None:
            self.incomplete_packets += 1

    def _counted(self, frames: list[av.VideoFrame]) -> Iterator[av.VideoFrame]:
        for frame in frames:
            self.damaged_frames += bool(frame.is_corrupt)
            yield frame

    def _note(self, exc: Exception, pts: int | None) -> None:
        if self.error is None:
            self.error = one_line(exc)
            start = self.stream.start_time or 0
            self.error_at = self.seconds_read() if pts is None else (pts - start) * (self.stream.time_base or 1)

    def seconds_read(self) -> Fraction:
        """How far into the stream the packets read so far reach."""
        if self.read_to is None or self.stream.time_base is None:
            return Fraction(0)
        return (self.read_to - (self.stream.start_time or 0)) * self.stream.time_base

    def truncation(self) -> str | None:
        """After ``frames()`` ran out: where and why the stream ended early, or None when it was
        read to the end its header declares (or the header declares none)."""
        declared = declared_seconds(self.container, self.stream)
        read = self.seconds_read()
        of = f" of the {float(declared):.2f} s its header declares" if declared is not None else ""
        if self.error is not None:
            return f"decoding failed at {float(self.error_at):.2f} s{of}: {self.error}"
        if declared is None:
            return None
        rate = self.stream.average_rate or self.stream.guessed_rate
        # Headers round; a few frames' worth of difference is not a cut file.
        slack = max(Fraction(1, 10), 3 / rate) if rate else Fraction(1, 2)
        if read < declared - slack:
            return f"the file ends after {float(read):.2f} s{of}"
        return None


@dataclass(frozen=True)
class VideoInfo:
    """What ``probe`` found: the video stream's header facts and those of its first frame."""

    path: Path
    codec: str
    width: int
    height: int
    pix_fmt: str
    bit_depth: int
    time_base: Fraction
    rate: Fraction | None
    """Average frame rate (None when the file does not say)."""
    start_pts: int
    """First timestamp of the video stream: second 0 of ``--start``."""
    duration: Fraction | None
    """Seconds the header declares for the video stream."""
    frame_count: int | None
    """Frames the header declares, or an estimate from the duration; None when unknown."""
    color: Color
    rotation: int
    """Display rotation in degrees, counter-clockwise (metadata; the pixels are not rotated)."""
    interlaced: bool

    @property
    def hdr(self) -> str | None:
        """The HDR transfer function's name, or None for SDR."""
        return HDR_TRANSFERS.get(self.color.trc)

    def frame_ticks(self) -> int:
        """One frame's duration in the time base (for a frame whose own duration is unknown)."""
        if self.rate:
            return max(1, round(1 / (self.rate * self.time_base)))
        return 1


def probe(path: Path) -> VideoInfo:
    """The video stream's facts, decoding only its first frame.

    Raises:
        VideoError: not a media file, no video stream, an undecodable codec, or no frame at all.
    """
    import av

    container = open_input(path)
    with container:
        stream = video_stream(container, path)
        stream.thread_type = "AUTO"
        ctx = stream.codec_context
        reader = VideoReader(container, stream)
        first = next(reader.frames(), None)
        if first is None:
            reason = f" ({reader.error})" if reader.error else ""
            raise VideoError(f"{path}: its {ctx.name} video stream has no decodable frame{reason}")
        time_base = stream.time_base or Fraction(1, 90_000)
        rate = stream.average_rate or stream.guessed_rate
        duration = declared_seconds(container, stream)
        frame_count = stream.frames or None
        if frame_count is None and duration is not None and rate:
            frame_count = math.ceil(duration * rate)
        pix_fmt = first.format.name
        return VideoInfo(
            path=path,
            codec=ctx.name,
            width=first.width,
            height=first.height,
            pix_fmt=pix_fmt,
            bit_depth=max((c.bits for c in av.VideoFormat(pix_fmt).components), default=8),
            time_base=time_base,
            rate=rate,
            start_pts=stream.start_time if stream.start_time is not None else (first.pts or 0),
            duration=duration,
            frame_count=frame_count,
            color=color_of(first),
            rotation=int(first.rotation or 0),
            interlaced=bool(first.interlaced_frame) or _field_order(ctx) not in ("progressive", "unknown"),
        )


def _field_order(ctx: av.codec.context.CodecContext) -> str:
    """The stream's field order by name (PyAV gives AVFieldOrder's number)."""
    value = ctx.field_order
    names = ("unknown", "progressive", "tt", "bb", "tb", "bt")
    return names[value] if isinstance(value, int) and 0 <= value < len(names) else str(value or "unknown")


@dataclass(frozen=True)
class SourceFrame:
    """A decoded frame with its presentation time and duration, in the stream's time base."""

    frame: av.VideoFrame
    pts: int
    duration: int


class FrameReader:
    """The frames of a clip with ``first_pts <= pts < end_pts`` (either bound may be None), in
    order, each with its duration (the gap to the next frame; the last one's own).

    Iterate once. When the frames ran out before ``end_pts`` because the file is cut or damaged,
    ``truncation`` says why afterwards.
    """

    def __init__(self, info: VideoInfo, *, first_pts: int | None = None, end_pts: int | None = None) -> None:
        self.info = info
        self.first_pts = first_pts
        self.end_pts = end_pts
        self.truncation: str | None = None

    def __iter__(self) -> Iterator[SourceFrame]:
        seek = self.first_pts is not None and self.first_pts > self.info.start_pts
        for seeking in (True, False) if seek else (False,):
            container = open_input(self.info.path)
            with container:
                stream = video_stream(container, self.info.path)
                stream.thread_type = "AUTO"
                if seeking:
                    # To the key frame at or before first_pts; the frames before it are decoded and dropped.
                    container.seek(self.first_pts, stream=stream, backward=True)
                reader = VideoReader(container, stream)
                frames = reader.frames()
                first = next(frames, None)
                if seeking and first is not None and first.pts is not None and first.pts > self.first_pts:
                    log.debug("%s: seeking went past %d; decoding from the start", self.info.path, self.first_pts)
                    continue  # some files seek imprecisely: start again without seeking
                reached_end = yield from self._timed(itertools.chain([first] if first else [], frames))
                if not reached_end:
                    self.truncation = reader.truncation()
                return

    def _timed(self, frames: Iterator[av.VideoFrame]) -> Iterator[SourceFrame]:
        """Give each frame in range its duration; returns True when ``end_pts`` was reached."""
        pending: tuple[av.VideoFrame, int] | None = None
        last_pts: int | None = None
        reached_end = False
        for frame in frames:
            pts = frame.pts
            if pts is None or (last_pts is not None and pts <= last_pts):
                # No timestamp or one that does not increase (a broken file): right after the last frame.
                if pts is not None:
                    log.warning(
                        "%s: frame timestamp %d does not increase; moved after %d", self.info.path, pts, last_pts
                    )
                pts = (
                    self.info.start_pts
                    if last_pts is None
                    else last_pts + (1 if pts is not None else self.info.frame_ticks())
                )
            last_pts = pts
            if self.first_pts is not None and pts < self.first_pts:
                continue
            if self.end_pts is not None and pts >= self.end_pts:
                reached_end = True
                break
            if pending is not None:
                yield SourceFrame(pending[0], pending[1], pts - pending[1])
            pending = (frame, pts)
        if pending is not None:
            frame, pts = pending
            own = frame.duration if frame.duration and frame.duration > 0 else self.info.frame_ticks()
            duration = last_pts - pts if reached_end else own
            yield SourceFrame(frame, pts, duration)
        return reached_end
