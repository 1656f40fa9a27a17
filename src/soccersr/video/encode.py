"""Encoder settings, the output container, and the encoding of one segment.

A *segment* is a run of restored frames encoded on its own: a fresh encoder, so it starts
with a key frame and needs nothing before it, written as a small Matroska file. The final
file is the segments' packets one after the other (``mux``); the encoder's timestamps are
not used there (Matroska rounds them to milliseconds), the frames' exact ones are.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

from soccersr.errors import UsageError
from soccersr.video.convert import Color

if TYPE_CHECKING:
    import av

log = logging.getLogger(__name__)

CODECS: tuple[str, ...] = ("libx264", "libx265", "libsvtav1")
CONTAINERS = {".mp4": "mp4", ".mkv": "matroska", ".mov": "mov", ".webm": "webm"}
"""Output extension -> FFmpeg muxer."""
X26X_PRESETS = (
    "ultrafast",
    "superfast",
    "veryfast",
    "faster",
    "fast",
    "medium",
    "slow",
    "slower",
    "veryslow",
    "placebo",
)
DEFAULT_CRF = {"libx264": 18, "libx265": 18, "libsvtav1": 24}
"""CRF 18 is x264's "visually lossless" point; SVT-AV1's scale (0-63) reaches it near 24."""
MAX_CRF = {"libx264": 51, "libx265": 51, "libsvtav1": 63}
DEFAULT_PRESET = {"libx264": "medium", "libx265": "medium", "libsvtav1": "8"}
"""SVT-AV1 presets are numbers, 0 (slowest) to 13; 8 is its own default."""
SEGMENT_FORMAT = "matroska"


def container_for(output: Path) -> str:
    """The FFmpeg muxer for an output file name; UsageError for an extension we do not write."""
    fmt = CONTAINERS.get(output.suffix.lower())
    if fmt is None:
        raise UsageError(f"{output}: the output must end in {', '.join(CONTAINERS)}")
    return fmt


@dataclass(frozen=True)
class EncodeSettings:
    """How the restored frames are encoded (``--codec``, ``--crf``, ``--preset``, ``--pix-fmt``)."""

    codec: str = "libx264"
    crf: int = 18
    preset: str = "medium"
    pix_fmt: str = "yuv420p"

    def __post_init__(self) -> None:
        import av

        if self.codec not in CODECS:
            raise UsageError(f"--codec must be one of {', '.join(CODECS)}, got {self.codec!r}")
        if not 0 <= self.crf <= MAX_CRF[self.codec]:
            raise UsageError(f"--crf for {self.codec} must be in 0..{MAX_CRF[self.codec]}, got {self.crf}")
        if self.codec == "libsvtav1":
            if not (self.preset.isdigit() and 0 <= int(self.preset) <= 13):
                raise UsageError(f"--preset for libsvtav1 must be a number 0..13, got {self.preset!r}")
        elif self.preset not in X26X_PRESETS:
            raise UsageError(f"--preset for {self.codec} must be one of {', '.join(X26X_PRESETS)}, got {self.preset!r}")
        try:
            formats = {f.name for f in av.codec.Codec(self.codec, "w").video_formats or ()}
        except av.error.FFmpegError as exc:  # an FFmpeg build without this encoder
            raise UsageError(f"--codec {self.codec}: not in this FFmpeg build ({exc})") from exc
        if self.pix_fmt not in formats:
            raise UsageError(f"--pix-fmt {self.pix_fmt}: {self.codec} takes {', '.join(sorted(formats))}")

    @property
    def bit_depth(self) -> int:
        import av

        return max(c.bits for c in av.VideoFormat(self.pix_fmt).components)

    def encoder_options(self) -> dict[str, str]:
        options = {"crf": str(self.crf), "preset": self.preset}
        if self.codec == "libx265":
            options["x265-params"] = "log-level=error"  # else x265 prints a dozen lines per segment
        return options


def choose_settings(
    container: str,
    *,
    source_bits: int,
    hdr: str | None,
    codec: str | None = None,
    crf: int | None = None,
    preset: str | None = None,
    pix_fmt: str | None = None,
) -> tuple[EncodeSettings, list[str]]:
    """Settings for the options given (None: the default), and warnings to show the user.

    Defaults: libx264 (libsvtav1 for WebM, which holds none of the others), CRF 18, preset
    medium, yuv420p; 10-bit input keeps 10 bits (yuv420p10le) with libx265 and libsvtav1 and
    gets a warning with libx264.
    """
    warnings: list[str] = []
    codec = codec or ("libsvtav1" if container == "webm" else "libx264")
    if container == "webm" and codec != "libsvtav1":
        raise UsageError(f"WebM holds AV1 (--codec libsvtav1), not {codec}: use .mkv or .mp4 for {codec}")
    if pix_fmt is None:
        pix_fmt = "yuv420p10le" if source_bits > 8 and codec != "libx264" else "yuv420p"
    settings = EncodeSettings(
        codec=codec,
        crf=DEFAULT_CRF[codec] if crf is None else crf,
        preset=DEFAULT_PRESET[codec] if preset is None else preset,
        pix_fmt=pix_fmt,
    )
    if source_bits > 8 and settings.bit_depth <= 8:
        what = f"{source_bits}-bit {hdr} HDR" if hdr else f"{source_bits}-bit"
        warnings.append(
            f"the input is {what}; the output will be 8-bit {settings.pix_fmt}"
            + (" (banding likely)" if hdr else "")
            + ": use --codec libx265 (or --pix-fmt yuv420p10le) to keep 10 bits"
        )
    return settings, warnings


@dataclass(frozen=True)
class VideoSpec:
    """What every segment of one job shares besides the encoder settings."""

    width: int
    height: int
    time_base: Fraction
    rate: Fraction
    """Nominal frame rate for the encoder's rate control; the timestamps say when frames show."""
    color: Color


def encode_segment(path: Path, frames: Iterable[av.VideoFrame], spec: VideoSpec, settings: EncodeSettings) -> list[int]:
    """Encode ``frames`` (already in ``settings.pix_fmt`` at the spec's size, ``pts`` in
    ``spec.time_base``) into a new Matroska file at ``path``.

    Returns the pts of the packets in decoding order, exact (the file's are rounded).
    """
    import av

    if settings.codec == "libsvtav1":
        os.environ.setdefault("SVT_LOG", "1")  # errors only: SVT-AV1 prints its whole configuration per encoder
    pts: list[int] = []
    with av.open(str(path), "w", format=SEGMENT_FORMAT) as out:
        stream = out.add_stream(settings.codec, rate=spec.rate, options=settings.encoder_options())
        ctx = stream.codec_context
        ctx.width, ctx.height, ctx.pix_fmt = spec.width, spec.height, settings.pix_fmt
        ctx.time_base = spec.time_base
        ctx.colorspace = spec.color.colorspace
        ctx.color_range = 2 if spec.color.full_range else 1
        ctx.color_primaries = spec.color.primaries
        ctx.color_trc = spec.color.trc
        for frame in frames:
            frame.time_base = spec.time_base
            for packet in stream.encode(frame):
                pts.append(packet.pts)
                out.mux(packet)
        for packet in stream.encode(None):
            pts.append(packet.pts)
            out.mux(packet)
    return pts
