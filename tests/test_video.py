"""`soccersr video`: every frame restored, timestamps, sound and subtitles kept, resume, bad input.

Clips are made in the tests with PyAV (``video_clips``: a pan across a SoccerTrack sample photo
and a 440 Hz tone); the model is a tiny real compact network, run on one thread so the tests
stay fast on a busy machine.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from soccersr.cli import main
from soccersr.export.safetensors import export_safetensors
from soccersr.infer.backends import open_upscaler
from soccersr.options import EngineOptions
from soccersr.video.job import VideoOptions, restore_video
from soccersr.video.parts import parts_dir
from tiny_models import tiny_model
from video_clips import make_clip, packets, pan_frames, video_timestamps

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("model") / "tiny_compact_x4.safetensors"
    export_safetensors(tiny_model("SRVGGNetCompact"), path)
    return path


@pytest.fixture(scope="module")
def engine():
    return open_upscaler(tiny_model("SRVGGNetCompact"), EngineOptions(device="cpu"))


@pytest.fixture(scope="module")
def aac_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """30 frames at 25 fps, 64x48 H.264, AAC tone (language jpn, title stadium)."""
    return make_clip(tmp_path_factory.mktemp("clips") / "match.mp4", frames=30).path


@pytest.fixture(scope="module")
def mkv_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """60 frames, PCM audio and a SubRip subtitle stream (language ger) in Matroska."""
    return make_clip(tmp_path_factory.mktemp("clips") / "match.mkv", frames=60, audio="pcm_s16le", subtitles=True).path


def video_args(model_file: Path, *extra: str) -> list[str]:
    return ["--model", str(model_file), "--device", "cpu", "--segment", "0.2", "--no-progress", *extra]


def stream_info(path: Path) -> dict[str, object]:
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        return {
            "size": (video.codec_context.width, video.codec_context.height),
            "codec": video.codec_context.name,
            "pix_fmt": video.codec_context.pix_fmt,
            "duration": container.duration,
            "streams": [s.type for s in container.streams],
            "tags": [dict(s.metadata) for s in container.streams],
        }


def decoded_rgb(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24").astype(np.float64) for f in container.decode(video=0)]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(255.0**2 / max(np.mean((a - b) ** 2), 1e-12)))


def test_av_round_trip_x4(aac_clip: Path, model_file: Path, engine, tmp_path: Path, capsys) -> None:
    out = tmp_path / "match_x4.mp4"
    args = video_args(model_file, "--crf", "0", "--pix-fmt", "yuv444p")
    assert main(["video", str(aac_clip), "-o", str(out), *args]) == 0
    assert "30 frames, 0:01.2 of video" in capsys.readouterr().out
    assert stream_info(out)["size"] == (256, 192)
    # Same frames at the same times, the sound byte for byte, the same length, tags kept.
    assert video_timestamps(out) == video_timestamps(aac_clip)
    assert packets(out, "audio") == packets(aac_clip, "audio")
    assert stream_info(out)["duration"] == stream_info(aac_clip)["duration"]
    with av.open(str(out)) as container, av.open(str(aac_clip)) as source:
        assert container.streams.video[0].duration == source.streams.video[0].duration
        assert container.streams.video[0].metadata["language"] == "eng"
        assert container.streams.audio[0].metadata["language"] == "jpn"
        assert container.streams.audio[0].metadata["name"] == "stadium"
    assert not parts_dir(out).exists()
    # Every output frame is the model's restoration of the input frame at its time (lossless 4:4:4:
    # only the YUV conversion differs), and not of a neighbour.
    inputs = decoded_rgb(aac_clip)
    expected = []
    for rgb in inputs:
        x = torch.from_numpy(rgb.astype(np.float32) / 255).permute(2, 0, 1)[None]
        expected.append(engine.upscale(x)[0].permute(1, 2, 0).numpy() * 255)
    restored = decoded_rgb(out)
    assert len(restored) == len(expected) == 30
    for i, frame in enumerate(restored):
        own = psnr(frame, expected[i])
        assert own > 38, (i, own)
        for j in (i - 1, i + 1):
            if 0 <= j < len(expected):
                assert own > psnr(frame, expected[j]) + 3


@pytest.mark.parametrize("ext", [".mp4", ".mkv"])
def test_variable_frame_rate_is_kept(tmp_path: Path, model_file: Path, ext: str) -> None:
    clip = make_clip(tmp_path / "vfr.mp4", frames=24, gaps_ms=[40, 80, 33, 120]).path
    out = tmp_path / f"vfr_x4{ext}"
    assert main(["video", str(clip), "-o", str(out), *video_args(model_file)]) == 0
    before, after = np.array(video_timestamps(clip)), np.array(video_timestamps(out))
    assert np.allclose(np.diff(before) * 1000, [40, 80, 33, 120] * 5 + [40, 80, 33])
    assert len(after) == len(before)
    # Matroska cannot start below 0: the AAC priming moves every stream by the same ~21 ms there.
    np.testing.assert_allclose(after - after[0], before - before[0], atol=0.002)
    with av.open(str(out)) as container:
        audio_start = float(next(container.demux(audio=0)).pts * container.streams.audio[0].time_base)
    with av.open(str(clip)) as container:
        source_audio_start = float(next(container.demux(audio=0)).pts * container.streams.audio[0].time_base)
    assert abs((audio_start - after[0]) - (source_audio_start - before[0])) < 0.002  # still in sync


def test_mkv_keeps_subtitles_and_pcm_as_they_are(mkv_clip: Path, model_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "match_x4.mkv"
    assert main(["video", str(mkv_clip), "-o", str(out), *video_args(model_file)]) == 0
    assert stream_info(out)["streams"] == ["video", "audio", "subtitle"]
    assert packets(out, "subtitles") == packets(mkv_clip, "subtitles") == [b"minute 0", b"minute 1"]
    assert packets(out, "audio") == packets(mkv_clip, "audio")  # PCM copied, not transcoded
    with av.open(str(out)) as container:
        assert container.streams.audio[0].codec_context.name == "pcm_s16le"
        assert container.streams.subtitles[0].metadata["language"] == "ger"
        assert container.streams.audio[0].metadata["title"] == "stadium"
    assert video_timestamps(out) == video_timestamps(mkv_clip)


def test_pcm_into_mp4_is_transcoded_and_said(mkv_clip: Path, model_file: Path, tmp_path: Path, caplog) -> None:
    out = tmp_path / "match_x4.mp4"
    with caplog.at_level(logging.INFO):
        assert main(["video", str(mkv_clip), "-o", str(out), *video_args(model_file)]) == 0
    said = [r.getMessage() for r in caplog.records]
    assert f"{mkv_clip}: audio stream #1 (pcm_s16le) cannot be copied into MP4: transcoded to AAC" in said
    assert f"{mkv_clip}: subtitle stream #2 (srt) cannot go into MP4: left out (.mkv keeps it)" in said
    with av.open(str(out)) as container:
        audio = container.streams.audio[0]
        assert audio.codec_context.name == "aac"
        assert audio.metadata["language"] == "jpn"
        assert abs(float(audio.duration * audio.time_base) - 2.4) < 0.05
    assert stream_info(out)["streams"] == ["video", "audio"]
    assert video_timestamps(out) == video_timestamps(mkv_clip)


def test_webm_gets_av1_and_opus(mkv_clip: Path, model_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "match_x4.webm"
    assert main(["video", str(mkv_clip), "-o", str(out), *video_args(model_file, "--duration", "0.4")]) == 0
    with av.open(str(out)) as container:
        assert container.streams.video[0].codec_context.codec.id == av.codec.Codec("libsvtav1", "w").id
        assert container.streams.audio[0].codec_context.name == "opus"
    assert len(video_timestamps(out)) == 10


def test_start_and_duration_restore_part_of_the_clip(aac_clip: Path, model_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "part.mp4"
    assert (
        main(
            ["video", str(aac_clip), "-o", str(out), *video_args(model_file, "--start", "0.3", "--duration", "0:00.5")]
        )
        == 0
    )
    source = np.array(video_timestamps(aac_clip))
    kept = source[(source >= 0.3 - 1e-9) & (source < 0.8 - 1e-9)]
    np.testing.assert_allclose(video_timestamps(out), kept - 0.3, atol=1e-6)
    with av.open(str(out)) as container:
        audio = [p for p in container.demux(audio=0) if p.size]
        first_audio = float(audio[0].pts * container.streams.audio[0].time_base)
    assert -0.03 < first_audio < 0.03  # the sound moved back by the same 0.3 s
    assert len(audio) == pytest.approx(0.5 * 48000 / 1024, abs=2)


def test_resume_after_interruption_equals_an_uninterrupted_run(aac_clip: Path, engine, tmp_path: Path) -> None:
    options = VideoOptions(segment_seconds=0.2, progress=False)  # 5 frames per segment
    clean = tmp_path / "clean.mp4"
    restore_video(aac_clip, clean, engine, options)

    class Interrupting:
        """The engine, with Ctrl-C during its 18th frame (3 segments of 5 frames are done)."""

        def __init__(self, stop_at: int | None) -> None:
            self.calls, self.stop_at = 0, stop_at
            self.scale, self.name, self.device = engine.scale, engine.name, engine.device

        def upscale(self, images: torch.Tensor) -> torch.Tensor:
            self.calls += 1
            if self.calls == self.stop_at:
                raise KeyboardInterrupt
            return engine.upscale(images)

    out = tmp_path / "resumed.mp4"
    with pytest.raises(KeyboardInterrupt):
        restore_video(aac_clip, out, Interrupting(stop_at=18), options)
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".resumed.mp4.parts", "clean.mp4"]
    assert sorted(p.name for p in parts_dir(out).iterdir()) == [
        "000000.json",
        "000000.mkv",
        "000001.json",
        "000001.mkv",
        "000002.json",
        "000002.mkv",
        "job.json",
    ]
    second = Interrupting(stop_at=None)
    result = restore_video(aac_clip, out, second, options)
    assert second.calls == 15  # frames 15..29 only
    assert (result.frames, result.resumed_frames) == (30, 15)
    assert video_timestamps(out) == video_timestamps(clean) == video_timestamps(aac_clip)
    assert packets(out, "audio") == packets(clean, "audio")
    assert stream_info(out)["duration"] == stream_info(clean)["duration"]
    assert not parts_dir(out).exists()


def test_resume_after_a_real_kill(tmp_path: Path, model_file: Path) -> None:
    """SIGKILL: no cleanup runs, a half-written segment stays behind; the rerun still finishes right."""
    clip = make_clip(tmp_path / "long.mp4", frames=150, size=(96, 128)).path
    out = tmp_path / "long_x4.mp4"
    command = [sys.executable, "-m", "soccersr.cli", "video", str(clip), "-o", str(out), *video_args(model_file)]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO / "src"))
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not (parts_dir(out) / "000002.json").exists():
            assert process.poll() is None, "the job ended before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.01)
        process.send_signal(signal.SIGKILL)
        process.wait()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert not out.exists()
    assert main(["video", str(clip), "-o", str(out), *video_args(model_file)]) == 0
    assert video_timestamps(out) == video_timestamps(clip)
    assert packets(out, "audio") == packets(clip, "audio")
    assert not parts_dir(out).exists()


def test_other_settings_do_not_mix_with_unfinished_work(
    aac_clip: Path, engine, model_file: Path, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "out.mp4"

    class Failing:
        scale, name, device = engine.scale, engine.name, engine.device

        def __init__(self) -> None:
            self.calls = 0

        def upscale(self, images: torch.Tensor) -> torch.Tensor:
            self.calls += 1
            if self.calls > 12:
                raise KeyboardInterrupt
            return engine.upscale(images)

    with pytest.raises(KeyboardInterrupt):
        restore_video(aac_clip, out, Failing(), VideoOptions(segment_seconds=0.2, progress=False))
    args = ["video", str(aac_clip), "-o", str(out), *video_args(model_file, "--crf", "30")]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "unfinished work of this output with other settings (encode, model)" in err
    assert main([*args, "--overwrite"]) == 0
    assert len(video_timestamps(out)) == 30


def test_truncated_input_keeps_what_was_restored(tmp_path: Path, model_file: Path, capsys) -> None:
    full = make_clip(tmp_path / "full.mkv", frames=100).path
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size * 6 // 10])
    decodable = video_timestamps(cut)
    assert 20 < len(decodable) < 90
    out = tmp_path / "cut_x4.mp4"
    assert main(["video", str(cut), "-o", str(out), *video_args(model_file)]) == 1
    captured = capsys.readouterr()
    assert f"soccersr video: error: {cut}: the file ends after " in captured.err
    assert "s of the 4.00 s its header declares; the" in captured.err
    assert f"frames before are restored in {out}" in captured.err
    assert video_timestamps(out) == decodable
    with av.open(str(out)) as container:  # the sound stops with the picture
        assert container.duration / 1e6 < decodable[-1] + 0.1
    assert not parts_dir(out).exists()


def test_bad_inputs_are_reported_and_the_batch_goes_on(
    aac_clip: Path, model_file: Path, tmp_path: Path, capsys
) -> None:
    not_video = tmp_path / "notes.mp4"
    not_video.write_text("not a video at all\n" * 20)
    sound_only = tmp_path / "sound.m4a"
    with av.open(str(sound_only), "w", format="mp4") as container:
        stream = container.add_stream("aac", rate=48000)
        frame = av.AudioFrame.from_ndarray(np.zeros((2, 1024), np.float32), format="fltp", layout="stereo")
        frame.sample_rate, frame.pts = 48000, 0
        for packet in [*stream.encode(frame), *stream.encode()]:
            container.mux(packet)
    missing = tmp_path / "missing.mp4"
    outdir = tmp_path / "out"
    assert (
        main(
            [
                "video",
                str(not_video),
                str(sound_only),
                str(missing),
                str(aac_clip),
                "-o",
                str(outdir),
                *video_args(model_file),
            ]
        )
        == 1
    )
    err = capsys.readouterr().err.splitlines()
    assert any(line.startswith(f"soccersr video: error: {not_video}: not a readable video (") for line in err)
    assert f"soccersr video: error: {sound_only}: no video stream" in err
    assert f"soccersr video: error: {missing}: no such file" in err
    assert len(err) == 3
    assert sorted(p.name for p in outdir.iterdir()) == ["match_x4.mp4"]
    assert len(video_timestamps(outdir / "match_x4.mp4")) == 30


def test_existing_outputs_are_kept_skipped_or_replaced(
    aac_clip: Path, model_file: Path, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "out.mkv"
    out.write_bytes(b"earlier result")
    args = ["video", str(aac_clip), "-o", str(out), *video_args(model_file)]
    assert main(args) == 1
    assert "exists (--overwrite replaces it, --resume skips it)" in capsys.readouterr().err
    assert main([*args, "--resume"]) == 0
    assert "already there, skipped" in capsys.readouterr().out
    assert out.read_bytes() == b"earlier result"
    assert main([*args, "--overwrite"]) == 0
    assert len(video_timestamps(out)) == 30


def test_odd_sizes_become_even_for_420(tmp_path: Path, model_file: Path, caplog) -> None:
    clip = make_clip(tmp_path / "odd.mkv", frames=5, size=(45, 63), pix_fmt="yuv444p", audio=None).path
    with caplog.at_level(logging.WARNING):
        assert main(["video", str(clip), "-o", str(tmp_path / "x3.mp4"), *video_args(model_file, "-s", "3")]) == 0
    assert stream_info(tmp_path / "x3.mp4")["size"] == (188, 134)
    assert "189x135 has an odd side and yuv420p needs even ones: the output is 188x134" in caplog.text
    assert main(["video", str(clip), "-o", str(tmp_path / "x4.mp4"), *video_args(model_file)]) == 0
    assert stream_info(tmp_path / "x4.mp4")["size"] == (252, 180)
    assert (
        main(
            [
                "video",
                str(clip),
                "-o",
                str(tmp_path / "444.mkv"),
                *video_args(model_file, "--pix-fmt", "yuv444p", "-s", "3"),
            ]
        )
        == 0
    )
    assert stream_info(tmp_path / "444.mkv")["size"] == (189, 135)  # 4:4:4 takes odd sizes


def test_ten_bit_input_stays_ten_bit_with_x265_or_is_warned(tmp_path: Path, model_file: Path, caplog) -> None:
    clip = make_clip(tmp_path / "ten.mkv", frames=5, codec="libx265", pix_fmt="yuv420p10le", audio=None).path
    with caplog.at_level(logging.WARNING):
        assert main(["video", str(clip), "-o", str(tmp_path / "h264.mkv"), *video_args(model_file)]) == 0
    assert "the input is 10-bit; the output will be 8-bit yuv420p: use --codec libx265" in caplog.text
    assert stream_info(tmp_path / "h264.mkv")["pix_fmt"] == "yuv420p"
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert (
            main(["video", str(clip), "-o", str(tmp_path / "hevc.mkv"), *video_args(model_file, "--codec", "libx265")])
            == 0
        )
    assert "10-bit" not in caplog.text
    info = stream_info(tmp_path / "hevc.mkv")
    assert (info["codec"], info["pix_fmt"]) == ("hevc", "yuv420p10le")


def test_rotation_is_kept_and_interlacing_warned(tmp_path: Path, model_file: Path, caplog) -> None:
    clip = make_clip(tmp_path / "phone.mp4", frames=5, rotation=90, audio=None).path
    with caplog.at_level(logging.WARNING):
        assert main(["video", str(clip), "-o", str(tmp_path / "out.mp4"), *video_args(model_file)]) == 0
    assert "interlaced" not in caplog.text
    with av.open(str(tmp_path / "out.mp4")) as container:
        assert next(container.decode(video=0)).rotation == 90

    interlaced = tmp_path / "tv.mkv"
    with av.open(str(interlaced), "w") as container:
        stream = container.add_stream("libx264", rate=25, options={"x264-params": "interlaced=1"})
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.codec_context.flags |= av.codec.context.Flags.interlaced_dct
        for rgb in pan_frames(4):
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    with caplog.at_level(logging.WARNING):
        assert main(["video", str(interlaced), "-o", str(tmp_path / "tv_x4.mkv"), *video_args(model_file)]) == 0
    assert f"{interlaced}: interlaced video: frames are restored as whole pictures" in caplog.text


def test_bad_options_exit_2(aac_clip: Path, model_file: Path, tmp_path: Path, capsys) -> None:
    base = ["video", str(aac_clip), *video_args(model_file)]
    assert main([*base, "-o", str(tmp_path / "out.avi")]) == 2
    assert "the output must end in .mp4, .mkv, .mov, .webm" in capsys.readouterr().err
    assert main([*base, "-o", str(tmp_path / "out.webm"), "--codec", "libx264"]) == 1
    assert "WebM holds AV1 (--codec libsvtav1), not libx264" in capsys.readouterr().err
    assert main([*base, "-o", str(tmp_path / "out.mp4"), "--crf", "60"]) == 1
    assert "--crf for libx264 must be in 0..51, got 60" in capsys.readouterr().err
    assert main([*base, "-o", str(tmp_path / "out.mp4"), "--pix-fmt", "rgb24"]) == 1
    assert "--pix-fmt rgb24: libx264 takes" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([*base, "-o", str(tmp_path / "out.mp4"), "--start", "1:xx"])
    assert not any(p.suffix in (".mp4", ".webm") for p in tmp_path.iterdir())


def test_timestamps_survive_an_unusual_time_base(tmp_path: Path, engine) -> None:
    """NUT keeps any time base: 1/90000 with irregular gaps comes back tick for tick in MP4."""
    clip = tmp_path / "ticks.nut"
    with av.open(str(clip), "w") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.codec_context.time_base = Fraction(1, 90000)
        pts = 0
        for i, rgb in enumerate(pan_frames(12)):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts, frame.time_base = pts, Fraction(1, 90000)
            pts += (3003, 3000, 2997, 6006)[i % 4]
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    out = tmp_path / "ticks.mp4"
    restore_video(clip, out, engine, VideoOptions(segment_seconds=0.1, progress=False))
    with av.open(str(clip)) as a, av.open(str(out)) as b:
        source = [f.pts * a.streams.video[0].time_base for f in a.decode(video=0)]
        restored = [f.pts * b.streams.video[0].time_base for f in b.decode(video=0)]
    assert restored == source
