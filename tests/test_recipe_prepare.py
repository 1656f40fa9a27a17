"""recipes/soccer_x4plus/prepare.py: the game id that splits the DFL frames, and the player masks."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from script_modules import load_script


@pytest.fixture(scope="module")
def prepare():
    return load_script(Path("recipes/soccer_x4plus/prepare.py"))


def test_game_id(prepare) -> None:
    assert prepare.game_id("4b770a_1_4.jpg") == "4b770a"
    assert prepare.game_id(Path("/data/crops/4b770a_1_4T0_s001.png")) == "4b770a"
    assert prepare.game_id("08fd33_4_000123.png") == "08fd33"  # a frame of the DFL clip 08fd33_4.mp4
    with pytest.raises(ValueError, match="left_camera_000000.png: not a DFL frame name"):
        prepare.game_id("left_camera_000000.png")


def test_game_ids_of_the_shared_frames(prepare, soccer_data: Path) -> None:
    ids = {prepare.game_id(p) for p in (soccer_data / "dfl-bundesliga").glob("*/*.jpg")}
    assert len(ids) == 15  # PROVENANCE.md: 15 game ids
    assert {"08fd33", "4b770a", "cd987c"} <= ids


def test_player_masks_are_cut_like_the_frames(prepare, tmp_path: Path) -> None:
    train = tmp_path / "train"
    for folder in ("hr", "multiscale"):
        (train / folder).mkdir(parents=True)
    cv2.imwrite(str(train / "hr" / "abc123_1_2.png"), np.full((500, 640, 3), 90, np.uint8))
    cv2.imwrite(str(train / "hr" / "clip_000010.png"), np.full((500, 640, 3), 90, np.uint8))  # no boxes
    cv2.imwrite(str(train / "multiscale" / "abc123_1_2_x0.5.png"), np.full((250, 320, 3), 90, np.uint8))
    labels = tmp_path / "sources" / "train_labels"
    labels.mkdir(parents=True)
    # A player (class 2) at x 0.25-0.35, y 0.4-0.6, and the ball (0), which is no person.
    (labels / "abc123_1_2.txt").write_text("2 0.3 0.5 0.1 0.2\n0 0.8 0.8 0.05 0.05\n")
    crop_cfg = prepare.CropConfig(crop_size=400, step=200)
    prepare._player_masks(tmp_path, crop_cfg, 1, True)
    prepare.crop_folder(train / "hr", train / "crops", crop_cfg, workers=1)
    masks = train / "masks"
    assert sorted(p.name for p in (masks / "crops").iterdir()) == sorted(p.name for p in (train / "crops").iterdir())
    full = cv2.imread(str(masks / "hr" / "abc123_1_2.png"), cv2.IMREAD_GRAYSCALE)
    ys, xs = np.nonzero(full)
    # The box grown 10%: 70.4 x 110 px around (192, 250), rounded outwards.
    assert (xs.min(), xs.max(), ys.min(), ys.max()) == (156, 227, 195, 304)
    half = cv2.imread(str(masks / "multiscale" / "abc123_1_2_x0.5.png"), cv2.IMREAD_GRAYSCALE)
    assert half.shape == (250, 320) and np.nonzero(half)[1].min() == 78  # the same normalised box
    assert not cv2.imread(str(masks / "hr" / "clip_000010.png"), cv2.IMREAD_GRAYSCALE).any()
    first = cv2.imread(str(masks / "crops" / "abc123_1_2_s001.png"), cv2.IMREAD_GRAYSCALE)
    np.testing.assert_array_equal(first, full[:400, :400])


def test_box_files_of_scored_frames_are_required(prepare, tmp_path: Path) -> None:
    labels = tmp_path / "labels"
    labels.mkdir()
    (labels / "121364_9_1.txt").write_text("2 0.5 0.5 0.1 0.1\n")
    frames = [Path("orig/121364_9_1.jpg"), Path("aug/121364_9_2.jpg")]
    prepare._copy_labels(frames, labels, tmp_path / "train_labels", required=False)  # a training frame may lack boxes
    assert [p.name for p in (tmp_path / "train_labels").iterdir()] == ["121364_9_1.txt"]
    with pytest.raises(SystemExit, match=r"121364_9_2.txt: missing \(the box file of aug/121364_9_2.jpg\)"):
        prepare._copy_labels(frames, labels, tmp_path / "val_labels", required=True)
    prepare._copy_labels(frames[:1], labels, tmp_path / "val_labels", required=True)
    # build puts them beside the frames they score, for eval --boxes (choose.py, gate_candidate.py).
    prepare._place_scoring_labels(tmp_path, tmp_path / "built")
    assert [p.name for p in (tmp_path / "built" / "val" / "labels").iterdir()] == ["121364_9_1.txt"]
