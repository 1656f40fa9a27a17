"""`soccersr frames`: keyframes, every-N-seconds, black/duplicate skipping, resume, bad videos."""

from __future__ import annotations

import os
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from script_modules import load_script
from soccersr.cli import main
from soccersr.data.frames import FrameConfig, blank_reason, extract_frames, frame_name
from soccersr.video.source import VideoReader

H, W = 48, 64


def _patterns() -> list[np.ndarray]:
    """Ten RGB frames with a known fate (see EXPECTED_*)."""
    y, x = np.mgrid[0:H, 0:W]
    a = np.stack([x * 4, y * 5, np.full_like(x, 128)], axis=2).astype(np.uint8)  # gradients
    b = np.where(((y // 8) + (x // 8)) % 2 == 0, 40, 220).astype(np.uint8)[..., None].repeat(3, axis=2)  # checkers
    c = b.copy()
    c[: H // 2, : W // 2] = 255  # a quarter of B turned white: far from B
    near_black = np.random.default_rng(0).integers(0, 17, (H, W, 3), dtype=np.uint8)
    flat = (128 + np.random.default_rng(1).integers(0, 3, (H, W, 3))).astype(np.uint8)
    a_plus_one = (a.astype(np.int16) + 1).clip(0, 255).astype(np.uint8)  # 1/255 away from A: a near-duplicate
    black = np.zeros_like(a)
    #       0  1  2           3      4           5  6  7     8  9
    return [a, a, a_plus_one, black, near_black, a, b, flat, c, c]


EXPECTED_DEFAULT = [0, 6, 8]  # 1, 2, 5 and 9 are near-duplicates, 3 and 4 black, 7 flat
EXPECTED_NO_DEDUP = [0, 1, 2, 5, 6, 8, 9]  # --min-diff 0: only blank frames go


@pytest.fixture(scope="module")
def synthetic_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """10 fps lossless FFV1, every frame a key frame, so decoded pixels equal the patterns exactly."""
    path = tmp_path_factory.mktemp("video") / "synth.mkv"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("ffv1", rate=10)
        stream.width, stream.height, stream.pix_fmt = W, H, "bgr0"
        stream.codec_context.gop_size = 1
        for pattern in _patterns():
            for packet in stream.encode(av.VideoFrame.from_ndarray(pattern, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@pytest.fixture(scope="module")
def gop4_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 frames of H.264 noise with a key frame every 4 frames (0, 4, 8)."""
    path = tmp_path_factory.mktemp("video") / "gop4.mp4"
    with av.open(str(path), "w") as container:
        options = {"x264-params": "keyint=4:min-keyint=4:scenecut=0:bframes=0"}
        stream = container.add_stream("libx264", rate=10, options=options)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        for i in range(12):
            noise = np.random.default_rng(i).integers(30, 226, (H, W, 3), dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(noise, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def _indices(folder: Path, stem: str) -> list[int]:
    return sorted(int(p.stem.rsplit("_", 1)[1]) for p in folder.glob(f"{stem}_*.png"))


def test_keyframes_skip_black_flat_and_duplicates(synthetic_video: Path, tmp_path: Path, capsys) -> None:
    assert main(["frames", str(synthetic_video), "-o", str(tmp_path)]) == 0
    assert _indices(tmp_path, "synth") == EXPECTED_DEFAULT
    assert (
        "3 written, 0 already there, 4 near-duplicates and 3 black/flat skipped (10 candidates)"
        in capsys.readouterr().out
    )
    # Lossless, at the source resolution, and the right frame under each name.
    patterns = _patterns()
    for index in EXPECTED_DEFAULT:
        written = cv2.imread(str(tmp_path / frame_name("synth", index)), cv2.IMREAD_UNCHANGED)
        np.testing.assert_array_equal(written[..., ::-1], patterns[index])


def test_min_diff_zero_keeps_duplicates_but_not_blank(synthetic_video: Path, tmp_path: Path) -> None:
    assert main(["frames", str(synthetic_video), "-o", str(tmp_path), "--min-diff", "0"]) == 0
    assert _indices(tmp_path, "synth") == EXPECTED_NO_DEDUP


def test_every_seconds_and_max_frames(synthetic_video: Path, tmp_path: Path) -> None:
    # Candidates every 0.2 s at 10 fps: frames 0, 2, 4, 6, 8 (4 is black; 2 is a near-duplicate of 0).
    # --every alone keeps one frame per 0.2 s: near-duplicates are dropped only when --min-diff asks.
    assert main(["frames", str(synthetic_video), "-o", str(tmp_path / "a"), "--every", "0.2"]) == 0
    assert _indices(tmp_path / "a", "synth") == [0, 2, 6, 8]
    args = ["--every", "0.2", "--min-diff", "0.01"]
    assert main(["frames", str(synthetic_video), "-o", str(tmp_path / "b"), *args]) == 0
    assert _indices(tmp_path / "b", "synth") == [0, 6, 8]
    assert main(["frames", str(synthetic_video), "-o", str(tmp_path / "c"), "--max-frames", "2"]) == 0
    assert _indices(tmp_path / "c", "synth") == [0, 6]


def test_only_key_frames_are_decoded(gop4_video: Path, tmp_path: Path) -> None:
    stats = extract_frames(gop4_video, tmp_path, FrameConfig(min_diff=0))
    assert stats.candidates == 3
    assert _indices(tmp_path, "gop4") == [0, 4, 8]


def test_blank_reason_thresholds() -> None:
    cfg = FrameConfig()
    assert blank_reason(np.full((4, 4), 0.05, np.float32), cfg) == "black"
    assert blank_reason(np.full((4, 4), 0.5, np.float32), cfg) == "flat"
    assert blank_reason(np.array([[0.4, 0.6], [0.6, 0.4]], np.float32), cfg) is None


def test_real_clips_keyframes(soccer_data: Path, tmp_path: Path) -> None:
    clips = sorted((soccer_data / "soccertrack-wideview").glob("*.mp4"))
    assert [c.name for c in clips] == ["left_camera.mp4", "right_camera.mp4"]
    assert main(["frames", *map(str, clips), "-o", str(tmp_path)]) == 0
    # Each 10 s HEVC clip holds a single key frame, at the start.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["left_camera_000000.png", "right_camera_000000.png"]
    assert cv2.imread(str(tmp_path / "left_camera_000000.png")).shape == (1728, 3072, 3)


def test_real_clip_every_matches_shared_crops(
    soccer_data: Path, tiny_dir: Path, soccer_crops: Path, tmp_path: Path
) -> None:
    clip = soccer_data / "soccertrack-wideview" / "right_camera.mp4"
    args = ["frames", str(clip), "-o", str(tmp_path), "--every", "1.2", "--max-frames", "2", "--min-diff", "0"]
    assert main(args) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["right_camera_000000.png", "right_camera_000030.png"]
    # tiny/06 was cut from frame 30 of this clip with PyAV (PROVENANCE.md): same decode, same colours.
    frame = cv2.imread(str(tmp_path / "right_camera_000030.png"))
    reference = cv2.imread(str(tiny_dir / "06_wideview_painted_text_ball.png"))
    np.testing.assert_array_equal(frame[1400:1656, 2300:2556], reference)
    # The committed test crops of this clip come from the same frame (tests/data/make_soccertrack_crops.py).
    for name, (clip_name, (x0, y0)) in _soccertrack_crops_table().items():
        if clip_name == clip.name:
            region = frame[y0 : y0 + 384, x0 : x0 + 384]
            expected = cv2.imread(str(soccer_crops / name))
            np.testing.assert_array_equal(cv2.resize(region, (192, 192), interpolation=cv2.INTER_AREA), expected, name)


def _soccertrack_crops_table() -> dict[str, tuple[str, tuple[int, int]]]:
    module = load_script(Path("tests/data/make_soccertrack_crops.py"))
    assert (module.BOX, module.SIZE, module.FRAME) == (384, 192, 30)
    return module.CROPS


def test_resume_after_interruption(synthetic_video: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    clean, resumed = tmp_path / "clean", tmp_path / "resumed"
    assert main(["frames", str(synthetic_video), "-o", str(clean), "--min-diff", "0"]) == 0

    # Interrupt (Ctrl-C) the second write after its temporary file is complete, just before the rename.
    real_replace = os.replace
    calls = []

    def interrupted_replace(src, dst):
        if Path(dst).parent == resumed:
            calls.append(dst)
            if len(calls) == 2:
                raise KeyboardInterrupt
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", interrupted_replace)
    assert main(["frames", str(synthetic_video), "-o", str(resumed), "--min-diff", "0"]) == 130
    monkeypatch.setattr(os, "replace", real_replace)
    assert sorted(p.name for p in resumed.iterdir()) == ["synth_000000.png"]  # no temporary file left behind
    first_mtime = (resumed / "synth_000000.png").stat().st_mtime_ns
    capsys.readouterr()

    assert main(["frames", str(synthetic_video), "-o", str(resumed), "--min-diff", "0"]) == 0
    assert "6 written, 1 already there" in capsys.readouterr().out
    assert (resumed / "synth_000000.png").stat().st_mtime_ns == first_mtime  # not redone
    assert sorted(p.name for p in resumed.iterdir()) == sorted(p.name for p in clean.iterdir())
    for path in clean.iterdir():
        assert (resumed / path.name).read_bytes() == path.read_bytes()


def test_bad_and_missing_videos_are_reported(synthetic_video: Path, tmp_path: Path, capsys) -> None:
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"this is not a video" * 10)
    missing = tmp_path / "missing.mp4"
    assert main(["frames", str(bad), str(missing), str(synthetic_video), "-o", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert f"{bad}: not a readable video" in err
    assert f"{missing}: no such file" in err
    assert _indices(tmp_path / "out", "synth") == EXPECTED_DEFAULT  # the good video is still done


def test_bad_options_exit_2(synthetic_video: Path, tmp_path: Path, capsys) -> None:
    assert main(["frames", str(synthetic_video), "-o", str(tmp_path), "--every", "0"]) == 2
    assert "every must be > 0" in capsys.readouterr().err


def test_videos_with_the_same_stem_are_refused(synthetic_video: Path, tmp_path: Path, capsys) -> None:
    other = tmp_path / "elsewhere" / synthetic_video.name
    other.parent.mkdir()
    other.write_bytes(synthetic_video.read_bytes())
    assert main(["frames", str(synthetic_video), str(other), "-o", str(tmp_path / "out")]) == 2
    assert "have the same name stem" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.fixture(scope="module")
def fixed_camera_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """6 s at 25 fps of a fixed camera: the same pitch every frame, one small player walking
    across it and a little sensor noise (thumbnails differ by far less than 0.01), one key frame."""
    path = tmp_path_factory.mktemp("video") / "fixed.mp4"
    y, x = np.mgrid[0:H, 0:W]
    pitch = np.stack([40 + x, 120 + y, 60 + x // 2], axis=2).astype(np.uint8)
    with av.open(str(path), "w") as container:
        options = {"x264-params": "keyint=1000:scenecut=0", "crf": "10"}
        stream = container.add_stream("libx264", rate=25, options=options)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        for i in range(150):
            frame = pitch.copy()
            frame[20:22, (i // 3) % (W - 2) : (i // 3) % (W - 2) + 2] = 250  # the player
            noise = np.random.default_rng(i).integers(-1, 2, frame.shape)
            frame = np.clip(frame.astype(np.int16) + noise, 0, 255).astype(np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def test_every_means_one_frame_every_n_seconds_on_fixed_camera_footage(
    fixed_camera_video: Path, tmp_path: Path
) -> None:
    # Before: the near-duplicate filter (default 0.01) ate every candidate after the first.
    assert main(["frames", str(fixed_camera_video), "-o", str(tmp_path / "every"), "--every", "1"]) == 0
    assert _indices(tmp_path / "every", "fixed") == [0, 25, 50, 75, 100, 125]
    assert (
        main(["frames", str(fixed_camera_video), "-o", str(tmp_path / "dedup"), "--every", "1", "--min-diff", "0.01"])
        == 0
    )
    assert _indices(tmp_path / "dedup", "fixed") == [0]
    assert main(["frames", str(fixed_camera_video), "-o", str(tmp_path / "keys")]) == 0
    assert _indices(tmp_path / "keys", "fixed") == [0]  # one key frame: key-frame mode has one candidate


def _faststart_copy(video: Path, out: Path) -> Path:
    """``video`` rewritten with its MP4 index first (PyAV writes it last, where a cut would remove it)."""
    with av.open(str(video)) as src, av.open(str(out), "w", container_options={"movflags": "+faststart"}) as dst:
        stream = dst.add_stream_from_template(src.streams.video[0])
        for packet in src.demux(src.streams.video[0]):
            if packet.size:
                packet.stream = stream
                dst.mux(packet)
    return out


def _frames_by_index(video: Path) -> dict[int, np.ndarray]:
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        return {
            round(frame.pts * stream.time_base * stream.average_rate): frame.to_ndarray(format="rgb24")
            for frame in container.decode(stream)
        }


def _key_frame_end(video: Path) -> int:
    """The byte offset where the first (key) frame's packet ends: the MP4 index and that frame come before it."""
    with av.open(str(video)) as container:
        first = next(p for p in container.demux(container.streams.video[0]) if p.size)
        return first.pos + first.size


# What each cut keeps for sure: the frames well before it (25 fps; about 1.3 s survive a cut at half the bytes).
# cut_at is a fraction of the bytes after the key frame, not of the file: the key frame's size varies with
# the x264 build and CPU (on an AVX2-only EPYC, 35% of the file fell 4 bytes inside it, and nothing is intact).
@pytest.mark.parametrize(
    ("every", "cut_at", "surely_kept"),
    [(None, 0.5, [0]), ("0.5", 0.5, [0, 13, 25]), ("0.5", 0.35, [0]), ("0.5", 0.7, [0, 13, 25])],
)
def test_truncated_video_is_reported_and_keeps_only_intact_frames(
    fixed_camera_video: Path, tmp_path: Path, every: str | None, cut_at: float, surely_kept: list[int], capsys
) -> None:
    faststart = _faststart_copy(fixed_camera_video, tmp_path / "fast.mp4")
    cut = tmp_path / "cut.mp4"
    data, start = faststart.read_bytes(), _key_frame_end(faststart)
    cut.write_bytes(data[: start + int((len(data) - start) * cut_at)])
    args = ["frames", str(cut), "-o", str(tmp_path / "out")] + (["--every", every] if every else [])
    assert main(args) == 1
    err = capsys.readouterr().err
    assert f"{cut}: " in err
    assert " s of the 6.00 s its header declares" in err
    # Before: the packet the cut falls in was decoded from its first part, and with frame threads
    # whether that frame (and those held before it) came out depended on thread timing. Now every
    # kept frame is exactly the uncut video's frame, and what came before the cut is kept.
    uncut = _frames_by_index(faststart)
    kept = _indices(tmp_path / "out", "cut")
    for index in kept:
        png = cv2.cvtColor(cv2.imread(str(tmp_path / "out" / frame_name("cut", index))), cv2.COLOR_BGR2RGB)
        np.testing.assert_array_equal(png, uncut[index], err_msg=f"frame {index}")
    assert kept[: len(surely_kept)] == surely_kept
    if every is None:
        assert kept == [0]  # one key frame in the whole video


def test_the_packet_a_cut_falls_in_is_never_decoded(fixed_camera_video: Path, tmp_path: Path) -> None:
    faststart = _faststart_copy(fixed_camera_video, tmp_path / "fast.mp4")
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(faststart.read_bytes()[: int(faststart.stat().st_size * 0.5)])
    uncut = _frames_by_index(faststart)
    results = {}
    for threads in ("NONE", "FRAME"):  # the same frames whatever the threading
        with av.open(str(cut)) as container:
            stream = container.streams.video[0]
            stream.thread_type = threads
            reader = VideoReader(container, stream)
            frames = {
                round(f.pts * stream.time_base * stream.average_rate): f.to_ndarray(format="rgb24")
                for f in reader.frames()
            }
            assert reader.incomplete_packets == 1 and reader.damaged_frames == 0
        assert frames and all(np.array_equal(frame, uncut[i]) for i, frame in frames.items())
        results[threads] = sorted(frames)
    assert results["NONE"] == results["FRAME"]


def test_only_a_flagged_packet_at_the_very_end_is_dropped() -> None:
    # Some demuxers (MPEG-TS) flag packets mid-file for other reasons: those must still be decoded.
    class Packet:
        def __init__(self, name: str, size: int = 10, corrupt: bool = False) -> None:
            self.name, self.size, self.is_corrupt = name, size, corrupt

    class Container:
        def __init__(self, packets: list[Packet]) -> None:
            self.packets = packets

        def demux(self, stream: object) -> object:
            return iter(self.packets)

    def kept(*packets: Packet) -> tuple[list[str], int]:
        reader = VideoReader(Container(list(packets)), object())
        return [p.name for p in reader._packets()], reader.incomplete_packets

    flush = Packet("flush", size=0)
    assert kept(Packet("a"), Packet("b", corrupt=True), Packet("c"), flush) == (["a", "b", "c", "flush"], 0)
    assert kept(Packet("a"), Packet("b", corrupt=True), flush) == (["a", "flush"], 1)
    assert kept(Packet("a"), Packet("b", corrupt=True)) == (["a"], 1)
    assert kept(Packet("a", corrupt=True), Packet("b", corrupt=True), flush) == (["a", "flush"], 1)
