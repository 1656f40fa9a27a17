"""Regenerate the test crops in tests/data/soccertrack/ from the SoccerTrack wide-view demo clips (MIT).

Not product code: a one-off script kept so the committed test fixtures can be rebuilt and checked.
It decodes frame 30 of each clip with PyAV, cuts six 384x384 regions and halves each to 192x192
with an area average (the clips are too compressed to be clean ground truth at native size), then
saves them as PNG and prints their sha256 for ATTRIBUTION.md.

    python tests/data/make_soccertrack_crops.py [--source DIR]   # DIR holds left_camera.mp4 and right_camera.mp4

The clips are data/raw/{left,right}_camera.mp4 of AtomScott/SportsLabKit (formerly SoccerTrack) at
commit ea92fbe79c68f6104a0b314fbd0119f3d263e5a0, MIT licensed at that commit.
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import av
import cv2
import numpy as np

HERE = Path(__file__).resolve().parent
OUT = HERE / "soccertrack"
DEFAULT_SOURCE = HERE.parents[2] / "shared" / "data" / "soccer-hr" / "soccertrack-wideview"
FRAME = 30  # 0-based index of the decoded frame
BOX = 384  # side of the square cut from the 3072x1728 frame
SIZE = 192  # side of the saved crop: x0.5, as PROVENANCE.md advises for these compressed clips

# name -> (clip, top-left corner (x0, y0) of the BOX x BOX region)
CROPS = {
    "01_players.png": ("left_camera.mp4", (2304, 1104)),
    "02_grass.png": ("left_camera.mp4", (1744, 1054)),
    "03_goal_fence.png": ("right_camera.mp4", (2014, 714)),
    "04_lines.png": ("right_camera.mp4", (364, 764)),
    "05_lettering.png": ("right_camera.mp4", (1764, 1280)),
    "06_stand.png": ("right_camera.mp4", (2624, 754)),
}


def decode_frame(path: Path, index: int) -> np.ndarray:
    """Frame ``index`` (0-based, decode order) of the video at ``path`` as BGR uint8."""
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i == index:
                return frame.to_ndarray(format="bgr24")
    raise SystemExit(f"{path}: fewer than {index + 1} frames")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE, help="folder with the two SoccerTrack clips")
    args = parser.parse_args()
    OUT.mkdir(exist_ok=True)
    frames = {clip: decode_frame(args.source / clip, FRAME) for clip in sorted({clip for clip, _ in CROPS.values()})}
    for name, (clip, (x0, y0)) in CROPS.items():
        region = frames[clip][y0 : y0 + BOX, x0 : x0 + BOX]
        crop = cv2.resize(region, (SIZE, SIZE), interpolation=cv2.INTER_AREA)
        path = OUT / name
        assert cv2.imwrite(str(path), crop, [cv2.IMWRITE_PNG_COMPRESSION, 9])
        print(f"{hashlib.sha256(path.read_bytes()).hexdigest()}  {name}  ({path.stat().st_size:,} B)")


if __name__ == "__main__":
    main()
