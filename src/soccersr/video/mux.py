"""The final file: the segments' video packets, and the input's sound and subtitles, interleaved.

Nothing is re-encoded here except audio the container cannot hold:

- Video: every segment's packets in order, each given its frame's exact pts. Decoding
  timestamps are recomputed over the whole clip (``packet_times``: a segment's encoder only
  knew its own), and durations are set so that the output lasts exactly as long as the input.
- Audio and subtitles: copied packet for packet with their own timestamps when the
  container takes the codec (``copyable``); otherwise audio is transcoded (AAC for MP4/MOV,
  Opus for WebM) and a note says so, and subtitles are left out with a note. Language, title
  and disposition (default, forced, ...) are kept.
- With ``--start`` every stream's timestamps move back by the same amount, so the sound
  stays in sync.

Packets from the two sources are merged by time, so memory holds about one segment.
"""

from __future__ import annotations

import heapq
import io
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

from soccersr.video.parts import Segment
from soccersr.video.source import VideoError, VideoInfo, open_input, video_stream

if TYPE_CHECKING:
    import av
    import av.container

log = logging.getLogger(__name__)

# Audio a container plays widely when copied; FFmpeg would accept more (PCM in MP4 as 'ipcm',
# which few players read), so copying is limited to these. Matroska takes anything FFmpeg writes.
PLAYABLE_AUDIO: dict[str, frozenset[str] | None] = {
    "mp4": frozenset({"aac", "mp3", "ac3", "eac3", "alac", "opus", "flac"}),
    "mov": frozenset(
        {
            "aac",
            "mp3",
            "ac3",
            "eac3",
            "alac",
            "pcm_s16le",
            "pcm_s16be",
            "pcm_s24le",
            "pcm_s24be",
            "pcm_s32le",
            "pcm_s32be",
            "pcm_f32le",
            "pcm_f32be",
        }
    ),
    "webm": frozenset({"opus", "vorbis"}),
    "matroska": None,
}
TRANSCODE_TO = {"mp4": "aac", "mov": "aac", "matroska": "aac", "webm": "libopus"}
OPUS_RATES = (48000, 24000, 16000, 12000, 8000)
USUAL_LAYOUTS = {1: "mono", 2: "stereo", 3: "2.1", 4: "quad", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}
KEPT_TAGS = ("language", "title", "handler_name")
"""Stream metadata carried over; others (encoder, DURATION, ...) describe the input's encoding."""
KEPT_FILE_TAGS = ("title", "artist", "album", "date", "comment", "description", "copyright")


@dataclass(frozen=True)
class Timeline:
    """Which part of the input's sound and subtitles goes out, and how timestamps move."""

    shift: Fraction = Fraction(0)
    """Seconds subtracted from every timestamp (the ``--start`` point; 0 without it)."""
    start: Fraction | None = None
    """Packets before this time (seconds, input timeline) are left out."""
    end: Fraction | None = None
    """Packets at or after this time are left out."""

    def keeps(self, seconds: Fraction) -> bool:
        return (self.start is None or seconds >= self.start) and (self.end is None or seconds < self.end)


def copyable(container: str, stream: av.stream.Stream) -> bool:
    """Whether ``stream``'s packets can go into a ``container`` file as they are."""
    import av

    name = stream.codec_context.name if stream.codec_context is not None else ""
    allowed = PLAYABLE_AUDIO.get(container) if stream.type == "audio" else None
    if allowed is not None and name not in allowed:
        return False
    with av.open(io.BytesIO(), "w", format=container) as probe:
        try:
            probe.add_stream_from_template(stream)
        except ValueError:  # "format does not support codec"
            return False
    return True


@dataclass(frozen=True)
class SideStream:
    """What happens to one audio or subtitle stream of the input."""

    index: int
    action: str
    """"copy", "transcode" (audio the container cannot hold) or "drop" (such subtitles)."""
    note: str | None = None
    """The line that tells the user, for a transcode or a drop."""


def plan_side_streams(source: av.container.InputContainer, video_index: int, container: str) -> list[SideStream]:
    """The fate of every audio and subtitle stream of ``source`` in a ``container`` file (cover
    pictures, data streams and attachments are not carried over; other video streams are
    left out with a note)."""
    from av.stream import Disposition

    plans = []
    for stream in source.streams:
        if stream.type == "video" and stream.index != video_index and not stream.disposition & Disposition.attached_pic:
            note = f"video stream #{stream.index} is left out: only the first video stream is restored"
            plans.append(SideStream(stream.index, "drop", note))
        if stream.index == video_index or stream.type not in ("audio", "subtitle"):
            continue
        codec = stream.codec_context.name if stream.codec_context is not None else "unknown codec"
        where = container.upper() if container != "matroska" else "MKV"
        if copyable(container, stream):
            plans.append(SideStream(stream.index, "copy"))
        elif stream.type == "audio" and stream.codec_context is not None:
            target = "Opus" if TRANSCODE_TO[container] == "libopus" else TRANSCODE_TO[container].upper()
            note = f"audio stream #{stream.index} ({codec}) cannot be copied into {where}: transcoded to {target}"
            plans.append(SideStream(stream.index, "transcode", note))
        else:
            keeper = " (.mkv keeps it)" if container != "matroska" else ""
            note = f"{stream.type} stream #{stream.index} ({codec}) cannot go into {where}: left out{keeper}"
            plans.append(SideStream(stream.index, "drop", note))
    return plans


def assemble(
    path: Path,
    container: str,
    segments: Sequence[Segment],
    info: VideoInfo,
    timeline: Timeline,
) -> None:
    """Write the output to ``path`` (a temporary name: the format comes from ``container``)."""
    import av

    options = {}
    if container in ("mp4", "mov"):
        # The index first (plays while downloading); edit lists (a start time other than 0) in a
        # multiple of the video's time base, at least 1/1000 s: the default 1/1000 s rounds the
        # video's start, a coarse 1/25 s would round the sound's.
        den = info.time_base.denominator
        options = {"movflags": "+faststart", "movie_timescale": str(den * -(-1000 // den))}
    source = open_input(info.path)
    with source, av.open(str(path), "w", format=container, container_options=options) as out:
        in_video = video_stream(source, info.path)
        out.metadata.update({k: v for k, v in source.metadata.items() if k in KEPT_FILE_TAGS})
        with av.open(str(segments[0].path)) as first:
            template = first.streams.video[0]
            video = out.add_stream_from_template(template, opaque=True)
            extradata = template.codec_context.extradata
            codec = template.codec_context.name
        video.time_base = info.time_base
        _keep_tags(in_video, video)
        if info.rotation:
            video.set_display_rotation(info.rotation)
        if container in ("mp4", "mov") and codec == "hevc":
            video.codec_context.codec_tag = "hvc1"  # the tag Apple players need; FFmpeg defaults to hev1
        side = _side_streams(source, out, plan_side_streams(source, in_video.index, container), container)
        video_packets = _video_packets(segments, video, info.time_base, timeline.shift, extradata)
        side_packets = _side_packets(source, side, timeline)
        for _, packet in heapq.merge(video_packets, side_packets, key=lambda item: item[0]):
            out.mux(packet)
        for _, transcoder in side.values():
            if transcoder is not None:
                for packet in transcoder.encode(None):
                    out.mux(packet)


def _keep_tags(source: av.stream.Stream, target: av.stream.Stream) -> None:
    tags = dict(source.metadata)
    if "name" in tags and "title" not in tags:
        tags["title"] = tags["name"]  # MP4/MOV store a track's title as 'name'; muxers write 'title'
    target.metadata.update({k: v for k, v in tags.items() if k in KEPT_TAGS})
    target.disposition = source.disposition


def _side_streams(
    source: av.container.InputContainer,
    out: av.container.OutputContainer,
    plans: Sequence[SideStream],
    container: str,
) -> dict[int, tuple[av.stream.Stream, av.audio.stream.AudioStream | None]]:
    """Input stream index -> (output stream, its encoder, or None for a copy)."""
    side: dict[int, tuple[av.stream.Stream, av.audio.stream.AudioStream | None]] = {}
    for plan in plans:
        stream = source.streams[plan.index]
        if plan.action == "copy":
            copy = out.add_stream_from_template(stream)
            copy.time_base = stream.time_base
            _keep_tags(stream, copy)
            side[plan.index] = (copy, None)
        elif plan.action == "transcode":
            encoder = _transcoder(out, stream, container)
            _keep_tags(stream, encoder)
            side[plan.index] = (encoder, encoder)
    return side


def _transcoder(
    out: av.container.OutputContainer, stream: av.audio.stream.AudioStream, container: str
) -> av.audio.stream.AudioStream:
    """An encoder stream for ``stream``'s audio in ``container`` (PyAV resamples frames for it)."""
    import av

    codec = TRANSCODE_TO[container]
    rate = stream.codec_context.sample_rate
    if codec == "libopus" and rate not in OPUS_RATES:
        rate = 48000  # Opus runs at 48 kHz (and a few lower rates)
    layout = stream.codec_context.layout
    channels = max(1, layout.nb_channels)
    encoder = out.add_stream(codec, rate=rate)
    if layout.name.endswith("channels"):  # "2 channels": PCM without a channel order; encoders want one
        layout = av.AudioLayout(USUAL_LAYOUTS.get(channels, layout.name))
    encoder.codec_context.layout = layout
    encoder.codec_context.bit_rate = 96_000 * min(channels, 6)
    return encoder


def packet_times(segments: Sequence[Segment]) -> Iterator[list[tuple[int, int, int]]]:
    """For each segment, (pts, dts, duration) of its packets in decoding order.

    ``dts[i] = sorted_pts[i - depth]`` over the whole clip, ``depth`` being the largest B-frame
    reordering of any segment: increasing, and never after the packet's pts. MP4 takes a
    track's length as (last dts + its duration - first dts), so the first ``depth`` dts are
    spread over the clip's last ``depth`` frame gaps before the first pts, and the very last
    packet lasts as long as the last frame: the track is then exactly as long as the frames.
    ``duration`` is otherwise the gap to the next frame in presentation order.
    """
    depth = max(segment.reorder_depth for segment in segments)
    last = _last_presentations(segments, depth + 1)
    lead = max(last[-1] - last[0], depth)
    tail: list[int] | None = None  # the last `depth` entries of sorted_pts so far
    for number, segment in enumerate(segments):
        display = sorted(segment.pts)
        if tail is None:
            tail = [display[0] - lead + (j * lead) // depth for j in range(depth)]
        decode_times = tail + display  # dts of packet j is decode_times[j]
        gap = {pts: nxt - pts for pts, nxt in zip(display, display[1:] + [segment.end_pts], strict=True)}
        times = [(pts, decode_times[j], gap[pts]) for j, pts in enumerate(segment.pts)]
        if number == len(segments) - 1:
            pts, dts, _ = times[-1]
            times[-1] = (pts, dts, gap[display[-1]])  # the clip ends after its last frame, whatever comes last
        yield times
        tail = decode_times[len(decode_times) - depth :] if depth else []


def _last_presentations(segments: Sequence[Segment], count: int) -> list[int]:
    """The last ``count`` presentation times of the clip (fewer if it has fewer frames)."""
    values: list[int] = []
    for segment in reversed(segments):
        values = sorted(segment.pts) + values
        if len(values) >= count:
            break
    return values[-count:]


def _video_packets(
    segments: Sequence[Segment],
    out_stream: av.stream.Stream,
    time_base: Fraction,
    shift: Fraction,
    extradata: bytes | None,
) -> Iterator[tuple[Fraction, av.Packet]]:
    """(decoding time in seconds, packet) of every segment, in order, with exact timestamps."""
    import av

    offset = round(shift / time_base)
    for segment, times in zip(segments, packet_times(segments), strict=True):
        with av.open(str(segment.path)) as part:
            stream = part.streams.video[0]
            if stream.codec_context.extradata != extradata:
                raise VideoError(f"{segment.path}: encoded with other settings than the first segment")
            packets = [packet for packet in part.demux(stream) if packet.size]
        if len(packets) != segment.frames:
            raise VideoError(f"{segment.path}: {len(packets)} packets where its record lists {segment.frames}")
        for packet, (pts, dts, duration) in zip(packets, times, strict=True):
            packet.stream = out_stream
            packet.time_base = time_base
            packet.pts, packet.dts, packet.duration = pts - offset, dts - offset, duration
            yield packet.dts * time_base, packet


def _side_packets(
    source: av.container.InputContainer,
    side: dict[int, tuple[av.stream.Stream, av.audio.stream.AudioStream | None]],
    timeline: Timeline,
) -> Iterator[tuple[Fraction, av.Packet]]:
    """(time in seconds, packet) of the copied and transcoded streams, in file order."""
    if not side:
        return
    streams = [s for s in source.streams if s.index in side]
    for packet in source.demux(*streams):
        if packet.pts is None or packet.stream.time_base is None:
            continue
        tb = packet.stream.time_base
        if not timeline.keeps(packet.pts * tb):
            continue
        offset = round(timeline.shift / tb)
        out_stream, transcoder = side[packet.stream.index]
        if transcoder is None:
            packet.pts -= offset
            if packet.dts is not None:
                packet.dts -= offset
            packet.stream = out_stream
            time = (packet.dts if packet.dts is not None else packet.pts) * tb
            yield time, packet
            continue
        for frame in packet.decode():
            if frame.pts is None:
                continue
            frame.pts -= offset
            for encoded in transcoder.encode(frame):
                yield encoded.pts * encoded.time_base, encoded
