"""Video restoration speed: frames per second for 480x270 -> 1920x1080, as a real-time factor at 25 fps.

    python bench/bench_video.py                                   # CPU: x4plus and animevideov3, fp32 and bf16
    python bench/bench_video.py --source ../shared/data/soccer-hr/soccertrack-wideview/right_camera.mp4
    python bench/bench_video.py --device cuda --precision fp16 --frames-per-call 1 4 8

The input clip is made first: ``--source``'s frames shrunk to 480x270 (INTER_AREA), or, without
it, a pan across a SoccerTrack sample photo (``samples/``), encoded as H.264 with an AAC tone,
25 fps. Each configuration then runs the whole ``soccersr video`` job (decode, model, encode in
segments, assemble with the sound) on ``--frames`` frames (fewer for x4plus, which needs
seconds per frame on a CPU), after one warm-up frame through the engine. Reported: the job's
frames per second, the model alone (``engine.upscale`` on the same frames), and the real-time
factor (fps / 25: 1.0 keeps up with a 25 fps match), with the 1-minute load average before and
after each run (other processes slow PyTorch down a lot). Numbers: bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
RATE = 25


def make_input(path: Path, frames: int, source: Path | None) -> None:
    """A 480x270, 25 fps H.264 + AAC clip of ``frames`` frames."""
    import av
    import cv2

    if source is not None:
        with av.open(str(source)) as container:
            pictures = []
            for frame in container.decode(video=0):
                rgb = frame.to_ndarray(format="rgb24")
                pictures.append(cv2.resize(rgb, (480, 270), interpolation=cv2.INTER_AREA))
                if len(pictures) == frames:
                    break
    else:
        photo = cv2.imread(str(REPO / "samples" / "03_goal_keeper.png"))[..., ::-1]
        photo = cv2.resize(photo, (photo.shape[1] * 3, photo.shape[0] * 3), interpolation=cv2.INTER_CUBIC)
        span = photo.shape[1] - 480
        pictures = [
            np.ascontiguousarray(photo[:270, int(span * i / max(1, frames - 1)) :][:, :480]) for i in range(frames)
        ]
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=RATE, options={"crf": "20"})
        video.width, video.height, video.pix_fmt = 480, 270, "yuv420p"
        audio = out.add_stream("aac", rate=48000)
        for picture in pictures:
            for packet in video.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")):
                out.mux(packet)
        for packet in video.encode():
            out.mux(packet)
        samples = len(pictures) * 48000 // RATE
        for start in range(0, samples, 1024):
            t = np.arange(start, min(samples, start + 1024)) / 48000
            wave = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
            frame = av.AudioFrame.from_ndarray(np.stack([wave, wave]), format="fltp", layout="stereo")
            frame.sample_rate, frame.pts, frame.time_base = 48000, start, Fraction(1, 48000)
            for packet in audio.encode(frame):
                out.mux(packet)
        for packet in audio.encode():
            out.mux(packet)


def model_fps(engine, clip: Path, frames: int, per_call: int) -> float:
    """Frames per second of the engine alone on the clip's first ``frames`` frames."""
    import av
    import torch

    with av.open(str(clip)) as container:
        arrays = [f.to_ndarray(format="rgb24") for _, f in zip(range(frames), container.decode(video=0), strict=False)]
    batch = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float().div(255)
    started = time.perf_counter()
    for i in range(0, len(arrays), per_call):
        engine.upscale(batch[i : i + per_call])
    return len(arrays) / (time.perf_counter() - started)


def run(args: argparse.Namespace) -> list[dict]:
    import torch

    from soccersr.infer.backends import open_upscaler
    from soccersr.options import EngineOptions
    from soccersr.video.job import VideoOptions, restore_video

    torch.set_num_threads(args.threads)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "input_480x270.mp4"
        make_input(clip, max(args.frames.values()), args.source)
        for model in args.models:
            frames = args.frames.get(model, args.frames["default"])
            for precision in args.precision:
                engine = open_upscaler(
                    model, EngineOptions(engine=args.engine, device=args.device, precision=precision)
                )
                engine.upscale(torch.rand(1, 3, 270, 480))  # warm-up: kernels, caches
                for per_call in args.frames_per_call:
                    out = Path(tmp) / f"{model}_{precision}_{per_call}.mp4"
                    options = VideoOptions(duration=frames / RATE, frames_per_call=per_call, progress=False)
                    load_before = os.getloadavg()[0]
                    started = time.perf_counter()
                    result = restore_video(clip, out, engine, options)
                    elapsed = time.perf_counter() - started
                    row = {
                        "model": model,
                        "device": str(engine.device),
                        "precision": precision,
                        "frames_per_call": per_call,
                        "frames": result.frames,
                        "job_fps": result.frames / elapsed,
                        "model_fps": model_fps(engine, clip, frames, per_call),
                        "load_average": [round(load_before, 1), round(os.getloadavg()[0], 1)],
                    }
                    row["realtime_factor"] = row["job_fps"] / RATE
                    results.append(row)
                    print(
                        f"{model:13s} {row['device']:6s} {precision:5s} x{per_call}: job {row['job_fps']:.3g} fps "
                        f"(model alone {row['model_fps']:.3g} fps) = {row['realtime_factor']:.3g}x real time "
                        f"at {RATE} fps, {result.frames} frames, load {row['load_average']}",
                        flush=True,
                    )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, default=None, help="a video whose frames (shrunk) make the input")
    parser.add_argument("--models", nargs="+", default=["animevideov3", "x4plus"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--engine", default="auto")
    parser.add_argument("--precision", nargs="+", default=["fp32", "bf16"])
    parser.add_argument("--frames-per-call", nargs="+", type=int, default=[1])
    parser.add_argument("--frames", type=int, default=50, help="frames per run (animevideov3; x4plus: --x4plus-frames)")
    parser.add_argument("--x4plus-frames", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    args.frames = {"default": args.frames, "x4plus": args.x4plus_frames, "soccer-x4plus": args.x4plus_frames}
    results = run(args)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    sys.exit(main())
