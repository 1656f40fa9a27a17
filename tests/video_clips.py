"""Small test clips made with PyAV: a pan across a SoccerTrack sample photo, a tone, subtitles.

Nothing outside the repository is read: the pictures come from ``samples/`` (crops of the
SoccerTrack demo clips, MIT), the sound is a generated 440 Hz tone.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "samples" / "01_players_ball.jpg"
FORMATS = {".mp4": "mp4", ".mkv": "matroska", ".mov": "mov", ".webm": "webm", ".nut": "nut"}


def pan_frames(count: int, height: int = 48, width: int = 64) -> list[np.ndarray]:
    """``count`` RGB frames: a window moving across the sample photo (players, ball, turf)."""
    photo = cv2.imread(str(SAMPLE))[..., ::-1]
    span_y, span_x = photo.shape[0] - height, photo.shape[1] - width
    frames = []
    for i in range(count):
        t = i / max(1, count - 1)
        y, x = int(t * span_y * 0.5), int(t * span_x)
        frames.append(np.ascontiguousarray(photo[y : y + height, x : x + width]))
    return frames


@dataclass(frozen=True)
class Clip:
    path: Path
    frames: int


def make_clip(
    path: Path,
    *,
    frames: int = 20,
    size: tuple[int, int] = (48, 64),
    rate: int = 25,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    gaps_ms: list[int] | None = None,
    audio: str | None = "aac",
    audio_rate: int = 48000,
    subtitles: bool = False,
    rotation: int = 0,
    faststart: bool = False,
) -> Clip:
    """Write a clip; ``gaps_ms`` (repeated) makes it variable-frame-rate with a 1/1000 time base."""
    fmt = FORMATS[path.suffix]
    options = {"movflags": "+faststart"} if faststart else {}
    with av.open(str(path), "w", format=fmt, container_options=options) as out:
        video = _add_video(out, codec, rate, size, pix_fmt, vfr=gaps_ms is not None, rotation=rotation)
        sound = _add_audio(out, audio, audio_rate) if audio is not None else None
        text = _add_subtitles(out) if subtitles else None
        seconds = _write_video(out, video, frames, size, rate, gaps_ms)
        if sound is not None:
            _tone(out, sound, seconds, audio_rate)
        if text is not None:
            _write_subtitles(out, text, seconds)
    return Clip(path, frames)


def _add_video(
    out: av.container.OutputContainer,
    codec: str,
    rate: int,
    size: tuple[int, int],
    pix_fmt: str,
    *,
    vfr: bool,
    rotation: int,
) -> av.video.stream.VideoStream:
    video = out.add_stream(codec, rate=rate, options={"preset": "fast"} if codec.startswith("libx26") else {})
    video.width, video.height = size[1], size[0]
    video.pix_fmt = pix_fmt
    if vfr:
        video.codec_context.time_base = Fraction(1, 1000)
    if rotation:
        video.set_display_rotation(rotation)
    video.metadata["language"] = "eng"
    return video


def _add_audio(out: av.container.OutputContainer, codec: str, rate: int) -> av.audio.stream.AudioStream:
    sound = out.add_stream(codec, rate=rate)
    sound.codec_context.layout = "stereo"
    sound.metadata["language"] = "jpn"
    sound.metadata["title"] = "stadium"
    return sound


def _add_subtitles(out: av.container.OutputContainer) -> av.stream.Stream:
    text = out.add_mux_stream("subrip")
    text.time_base = Fraction(1, 1000)
    text.metadata["language"] = "ger"
    return text


def _write_video(
    out: av.container.OutputContainer,
    video: av.video.stream.VideoStream,
    frames: int,
    size: tuple[int, int],
    rate: int,
    gaps_ms: list[int] | None,
) -> float:
    """Encode the pan frames (at ``rate``, or ``gaps_ms`` apart); the clip's length in seconds."""
    pts = 0
    for i, rgb in enumerate(pan_frames(frames, *size)):
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
        if gaps_ms is not None:
            frame.pts, frame.time_base = pts, Fraction(1, 1000)
            pts += gaps_ms[i % len(gaps_ms)]
        else:
            frame.pts = i
        for packet in video.encode(frame):
            out.mux(packet)
    for packet in video.encode():
        out.mux(packet)
    return pts / 1000 if gaps_ms is not None else frames / rate


def _write_subtitles(out: av.container.OutputContainer, text: av.stream.Stream, seconds: float) -> None:
    """One half-second line per whole second of the clip."""
    for k in range(int(seconds)):
        packet = av.Packet(f"minute {k}".encode())
        packet.pts = packet.dts = k * 1000
        packet.duration = 500
        packet.time_base = Fraction(1, 1000)
        packet.stream = text
        out.mux(packet)


def _tone(out: av.container.OutputContainer, stream: av.stream.Stream, seconds: float, rate: int) -> None:
    """A 440 Hz stereo tone of ``seconds``."""
    chunk = 1024
    total = int(seconds * rate)
    fmt = stream.codec_context.format.name if stream.codec_context.format else "fltp"
    for start in range(0, total, chunk):
        n = min(chunk, total - start)
        t = (np.arange(start, start + n) / rate).astype(np.float32)
        wave = 0.3 * np.sin(2 * np.pi * 440 * t)
        planar = np.stack([wave, wave])
        if fmt == "s16":
            data = (planar.T.reshape(1, -1) * 32767).astype(np.int16)
            frame = av.AudioFrame.from_ndarray(data, format="s16", layout="stereo")
        else:
            frame = av.AudioFrame.from_ndarray(planar.astype(np.float32), format="fltp", layout="stereo")
        frame.sample_rate = rate
        frame.pts = start
        frame.time_base = Fraction(1, rate)
        for packet in stream.encode(frame):
            out.mux(packet)
    for packet in stream.encode():
        out.mux(packet)


def video_timestamps(path: Path) -> list[float]:
    """Presentation time in seconds of every decoded video frame."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return [float(frame.pts * stream.time_base) for frame in container.decode(stream)]


def packets(path: Path, kind: str) -> list[bytes]:
    """The payloads of every packet of the first ``kind`` ("audio", "subtitle") stream."""
    with av.open(str(path)) as container:
        stream = getattr(container.streams, kind)[0]
        return [bytes(p) for p in container.demux(stream) if p.size]
