"""The pieces of `soccersr video`: decoding timestamps over segments, the work folder, settings, sizes."""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import pytest

from soccersr.commands.video import _seconds, output_paths
from soccersr.errors import UsageError
from soccersr.video.convert import even_size, guessed_matrix
from soccersr.video.encode import choose_settings, container_for
from soccersr.video.mux import packet_times
from soccersr.video.parts import Segment, WorkFolder, parts_dir


def _b_pyramid(display: list[int]) -> list[int]:
    """Decoding order of an x264-like GOP: I, then for each run of 3 B-frames the next P first."""
    order = [display[0]]
    rest = display[1:]
    while rest:
        group, rest = rest[:4], rest[4:]
        order += [group[-1], *group[:-1]] if len(group) > 1 else group
    return order


def _segments(gaps: list[int], sizes: list[int], start: int = 1000) -> list[Segment]:
    pts, segments, index = start, [], 0
    times = []
    for gap in gaps:
        times.append(pts)
        pts += gap
    end = pts
    for size in sizes:
        chunk = times[index : index + size]
        index += size
        seg_end = times[index] if index < len(times) else end
        segments.append(Segment(Path(f"{len(segments)}.mkv"), tuple(_b_pyramid(chunk)), seg_end))
    return segments


@pytest.mark.parametrize("seed", range(6))
def test_packet_times_are_valid_and_keep_the_length(seed: int) -> None:
    rng = random.Random(seed)
    gaps = [rng.choice([40, 80, 33, 120, 1, 3003]) for _ in range(60)]
    sizes = [rng.randint(1, 12) for _ in range(12)]
    sizes.append(60 - sum(sizes[:-1]) if sum(sizes) < 60 else 0)
    while sum(sizes) > 60:
        sizes[sizes.index(max(sizes))] -= 1
    sizes = [s for s in sizes if s > 0]
    segments = _segments(gaps, sizes)
    rows = [row for times in packet_times(segments) for row in times]
    assert [pts for pts, _, _ in rows] == [p for s in segments for p in s.pts]
    dts = [d for _, d, _ in rows]
    assert all(a < b for a, b in zip(dts, dts[1:], strict=False))  # strictly increasing across segment joins too
    assert all(d <= p for p, d, _ in rows)  # never decoded after it is shown
    # MP4's track length (last dts + its duration - first dts) is the clip's length; durations are
    # the gap to the next frame shown.
    assert rows[-1][1] + rows[-1][2] - rows[0][1] == segments[-1].end_pts - 1000
    assert all(duration > 0 for _, _, duration in rows)
    shown = sorted(pts for pts, _, _ in rows) + [segments[-1].end_pts]
    gap = {a: b - a for a, b in zip(shown, shown[1:], strict=False)}
    assert all(duration == gap[pts] for pts, _, duration in rows[:-1])
    assert rows[-1][2] == gap[shown[-2]]  # the last packet decoded lasts as long as the last frame


def test_reorder_depth() -> None:
    assert Segment(Path("a"), (0, 1, 2, 3), 4).reorder_depth == 0
    assert Segment(Path("a"), tuple(_b_pyramid(list(range(9)))), 9).reorder_depth == 1  # I P b b b
    assert Segment(Path("a"), (0, 4, 2, 1, 3), 5).reorder_depth == 2  # x264's b-pyramid: I P B b b
    segments = _segments([40] * 4, [4])
    # Depth 1: the first dts is one frame gap (the clip's last one) before the first pts.
    assert [row[1] for row in next(packet_times(segments))] == [960, 1000, 1040, 1080]


def test_work_folder_resumes_only_the_same_job(tmp_path: Path) -> None:
    output = tmp_path / "match_x4.mp4"
    job = {"input": {"size": 10}, "encode": {"crf": 18}}
    work = WorkFolder(output, job)
    assert work.open(restart=False) == []
    assert work.path == parts_dir(output) == tmp_path / ".match_x4.mp4.parts"

    def encode(tmp: Path) -> tuple[list[int], int]:
        tmp.write_bytes(b"video")
        return [0, 2, 1], 3

    segment = work.add(0, encode)
    assert segment == Segment(work.path / "000000.mkv", (0, 2, 1), 3)
    (work.path / "000001.mkv").write_bytes(b"half a segment, no record")
    assert WorkFolder(output, job).open(restart=False) == [segment]
    with pytest.raises(UsageError, match=r"other settings \(encode\); rerun with those, or --overwrite"):
        WorkFolder(output, {**job, "encode": {"crf": 20}}).open(restart=False)
    assert WorkFolder(output, {**job, "encode": {"crf": 20}}).open(restart=True) == []
    assert json.loads((work.path / "job.json").read_text())["encode"] == {"crf": 20}
    work.remove()
    assert not work.path.exists()


def test_settings_defaults_and_errors() -> None:
    settings, warnings = choose_settings("mp4", source_bits=8, hdr=None)
    assert (settings.codec, settings.crf, settings.preset, settings.pix_fmt, warnings) == (
        "libx264",
        18,
        "medium",
        "yuv420p",
        [],
    )
    assert choose_settings("webm", source_bits=8, hdr=None)[0].codec == "libsvtav1"
    assert choose_settings("mkv", source_bits=10, hdr=None, codec="libx265")[0].pix_fmt == "yuv420p10le"
    settings, warnings = choose_settings("mp4", source_bits=10, hdr="PQ (HDR10)")
    assert settings.pix_fmt == "yuv420p"
    assert warnings == [
        "the input is 10-bit PQ (HDR10) HDR; the output will be 8-bit yuv420p (banding likely): use --codec libx265 "
        "(or --pix-fmt yuv420p10le) to keep 10 bits"
    ]
    with pytest.raises(UsageError, match="--preset for libx264 must be one of"):
        choose_settings("mp4", source_bits=8, hdr=None, preset="quick")
    with pytest.raises(UsageError, match="--preset for libsvtav1 must be a number 0..13"):
        choose_settings("mp4", source_bits=8, hdr=None, codec="libsvtav1", preset="medium")
    with pytest.raises(UsageError, match=r"\.mp4, \.mkv, \.mov, \.webm"):
        container_for(Path("clip.avi"))
    assert container_for(Path("CLIP.MKV")) == "matroska"


def test_sizes_and_colours() -> None:
    assert even_size(135, 189, "yuv420p") == (134, 188)
    assert even_size(135, 189, "yuv422p") == (135, 188)
    assert even_size(135, 189, "yuv444p") == (135, 189)
    assert guessed_matrix(1920, 1080) == guessed_matrix(1280, 720) == "ITU709"
    assert guessed_matrix(720, 576) == guessed_matrix(480, 270) == "ITU601"


def test_time_arguments_and_output_names(tmp_path: Path) -> None:
    assert [_seconds(t) for t in ("90", "1:30", "01:01:30.5", "0.25")] == [90, 90, 3690.5, 0.25]
    for bad in ("1:xx", "-3", "1:2:3:4", "nan"):
        with pytest.raises(argparse.ArgumentTypeError):
            _seconds(bad)
    assert output_paths([Path("a/m.mp4")], tmp_path / "o.mkv", 4) == [tmp_path / "o.mkv"]
    assert output_paths([Path("a/m.mp4"), Path("b/n.avi")], tmp_path / "out", 2.5) == [
        tmp_path / "out" / "m_x2.5.mp4",
        tmp_path / "out" / "n_x2.5.mkv",
    ]
