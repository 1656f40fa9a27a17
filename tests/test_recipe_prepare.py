"""recipes/soccer_x4plus/prepare.py: the game id that splits the DFL frames into train, val and eval games."""

from __future__ import annotations

from pathlib import Path

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
