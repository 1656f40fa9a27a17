"""Regenerate the demo photos in samples/ from the SoccerTrack wide-view demo clips (MIT).

Not product code: a one-off script kept so the samples can be rebuilt and checked. It decodes
one frame of each clip with PyAV, cuts four regions, shrinks them the way a small, soft phone
photo would be (area average), and saves them as JPEG q85 (one PNG). It also writes
ATTRIBUTION.md next to them.

    python samples/make_samples.py [--source DIR]   # DIR holds left_camera.mp4 and right_camera.mp4

The clips are data/raw/{left,right}_camera.mp4 of AtomScott/SportsLabKit (formerly SoccerTrack)
at commit ea92fbe79c68f6104a0b314fbd0119f3d263e5a0, MIT licensed at that commit.
"""

from __future__ import annotations

import argparse
import hashlib
from dataclasses import dataclass
from pathlib import Path

import av
import cv2
import numpy as np

HERE = Path(__file__).resolve().parent
DEFAULT_SOURCE = HERE.parents[1] / "shared" / "data" / "soccer-hr" / "soccertrack-wideview"
REPO = "AtomScott/SportsLabKit (formerly AtomScott/SoccerTrack)"
COMMIT = "ea92fbe79c68f6104a0b314fbd0119f3d263e5a0"
JPEG_QUALITY = 85


@dataclass(frozen=True)
class Sample:
    name: str
    clip: str
    frame: int
    """0-based index of the decoded frame."""
    box: tuple[int, int, int, int]
    """Crop (x0, y0, x1, y1) in the 3072x1728 frame."""
    size: tuple[int, int]
    """Output (width, height)."""
    content: str


SAMPLES = (
    Sample(
        "01_players_ball.jpg",
        "left_camera.mp4",
        30,
        (2240, 1120, 2880, 1480),
        (240, 135),
        "two players (white kit, blue #42) and the ball near the touchline",
    ),
    Sample(
        "02_turf_lettering.jpg",
        "right_camera.mp4",
        30,
        (1440, 1248, 2720, 1728),
        (240, 90),
        "painted 'Tsukuba' turf lettering and crest, linesman with flag, ball, concrete steps",
    ),
    Sample(
        "03_goal_keeper.png",
        "left_camera.mp4",
        30,
        (880, 720, 1360, 990),
        (240, 135),
        "goal with net, goalkeeper in yellow, a second goal and fence behind",
    ),
    Sample(
        "04_stand_and_goal.jpg",
        "right_camera.mp4",
        30,
        (2560, 640, 3072, 1100),
        (192, 172),
        "small bleacher stand, brick buildings, trees, a goal and a green screen wall",
    ),
)


def decode_frame(clip: Path, index: int) -> np.ndarray:
    """Frame ``index`` (0-based) of a video as a BGR uint8 array."""
    with av.open(str(clip)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i == index:
                return frame.to_ndarray(format="bgr24")
    raise ValueError(f"{clip}: has no frame {index}")


def make(sample: Sample, source: Path) -> np.ndarray:
    frame = decode_frame(source / sample.clip, sample.frame)
    x0, y0, x1, y1 = sample.box
    return cv2.resize(frame[y0:y1, x0:x1], sample.size, interpolation=cv2.INTER_AREA)


def attribution(rows: list[tuple[Sample, int, str]]) -> str:
    table = "\n".join(
        f"| `{s.name}` | `data/raw/{s.clip}` | {s.frame} | ({', '.join(map(str, s.box))}) | "
        f"{s.box[2] - s.box[0]}x{s.box[3] - s.box[1]} -> {s.size[0]}x{s.size[1]} (area average) | "
        f"{nbytes:,} B | {s.content} |"
        for s, nbytes, _ in rows
    )
    sums = "\n".join(f"    {digest}  {s.name}" for s, _, digest in rows)
    return f"""# Sample photos: attribution

The photos in this folder are small crops of the **SoccerTrack demo clips, Atom Scott, MIT**:
`data/raw/left_camera.mp4` and `data/raw/right_camera.mp4` of {REPO} at commit
`{COMMIT}` (an amateur match at the University of Tsukuba, two fixed wide-angle 3072x1728
HEVC cameras), whose LICENSE at that commit is MIT (notice below).

Each file is one decoded frame (PyAV {av.__version__}, 0-based frame index), cropped at the box
(x0, y0, x1, y1), shrunk with an area average to a small, soft "phone photo" and saved as
JPEG quality {JPEG_QUALITY} (PNG for one). `make_samples.py` regenerates them:
`python samples/make_samples.py --source DIR_WITH_THE_TWO_MP4S`.

| file | clip | frame | crop box | resize | size | content |
| --- | --- | --- | --- | --- | --- | --- |
{table}

sha256:

{sums}

## MIT License (SoccerTrack)

The MIT License (MIT)
Copyright (c) 2021, Atom Scott

Permission is hereby granted, free of charge, to any person obtaining a copy of this software and
associated documentation files (the "Software"), to deal in the Software without restriction,
including without limitation the rights to use, copy, modify, merge, publish, distribute,
sublicense, and/or sell copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all copies or
substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED, INCLUDING BUT
NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE AND
NONINFRINGEMENT. IN NO EVENT SHALL THE AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES
OR OTHER LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM, OUT OF OR IN
CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE SOFTWARE.
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--source", type=Path, default=DEFAULT_SOURCE, help="folder with left_camera.mp4 and right_camera.mp4"
    )
    parser.add_argument("--output", type=Path, default=HERE)
    args = parser.parse_args()
    rows = []
    for sample in SAMPLES:
        image = make(sample, args.source)
        params = (
            [cv2.IMWRITE_PNG_COMPRESSION, 9]
            if sample.name.endswith(".png")
            else [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]
        )
        ok, data = cv2.imencode(Path(sample.name).suffix, image, params)
        if not ok:
            raise RuntimeError(f"could not encode {sample.name}")
        (args.output / sample.name).write_bytes(data.tobytes())
        rows.append((sample, len(data), hashlib.sha256(data.tobytes()).hexdigest()))
        print(f"{sample.name}: {image.shape[1]}x{image.shape[0]}, {len(data):,} bytes")
    (args.output / "ATTRIBUTION.md").write_text(attribution(rows))
    print(f"total {sum(n for _, n, _ in rows):,} bytes, {sum(s.size[0] * s.size[1] for s in SAMPLES):,} pixels")


if __name__ == "__main__":
    main()
