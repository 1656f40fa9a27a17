"""`soccersr degrade` end to end on tiny real crops."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import pytest

from soccersr.cli import main
from soccersr.degrade.web import image_seed


@pytest.fixture()
def hr_dir(tmp_path: Path, soccer_crops: Path) -> Path:
    hr = tmp_path / "hr"
    (hr / "sub").mkdir(parents=True)
    shutil.copy(soccer_crops / "01_players.png", hr / "a.png")
    # A JPEG copy of another crop, in a subfolder, with an odd size (cropped to a multiple of 4).
    img = cv2.imread(str(soccer_crops / "02_grass.png"))[:190, :150]
    cv2.imwrite(str(hr / "sub" / "b.jpg"), img)
    return hr


def test_degrade_writes_deterministic_pngs(hr_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "lq"
    assert main(["degrade", str(hr_dir), "-o", str(out), "--scale", "4", "--seed", "5"]) == 0
    a, b = out / "a.png", out / "sub" / "b.png"
    assert cv2.imread(str(a)).shape == (48, 48, 3)
    assert cv2.imread(str(b)).shape == (47, 37, 3)
    assert "2 LQ images written" in capsys.readouterr().out
    assert not [p for p in out.rglob("*") if p.name.startswith(".")]  # no temporary files left

    again = tmp_path / "again"
    assert main(["degrade", str(hr_dir), "-o", str(again), "--seed", "5", "--workers", "2"]) == 0
    assert (again / "a.png").read_bytes() == a.read_bytes()
    assert (again / "sub" / "b.png").read_bytes() == b.read_bytes()

    other = tmp_path / "other"
    assert main(["degrade", str(hr_dir), "-o", str(other), "--seed", "6"]) == 0
    assert (other / "a.png").read_bytes() != a.read_bytes()


def test_adding_a_file_changes_no_other_output(hr_dir: Path, tmp_path: Path, soccer_crops: Path) -> None:
    solo = tmp_path / "solo"
    solo.mkdir()
    shutil.copy(hr_dir / "a.png", solo / "a.png")
    assert main(["degrade", str(solo), "-o", str(tmp_path / "lq1"), "--seed", "1"]) == 0
    assert main(["degrade", str(hr_dir), "-o", str(tmp_path / "lq2"), "--seed", "1"]) == 0
    assert (tmp_path / "lq1" / "a.png").read_bytes() == (tmp_path / "lq2" / "a.png").read_bytes()
    assert image_seed(1, Path("a.png")) != image_seed(1, Path("sub/a.png")) != image_seed(2, Path("a.png"))


def test_bad_files_are_reported_and_the_rest_written(
    hr_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (hr_dir / "broken.png").write_bytes(b"not an image")
    shutil.copy(hr_dir / "a.png", hr_dir / "c.png")
    cv2.imwrite(str(hr_dir / "c.jpg"), cv2.imread(str(hr_dir / "a.png")))  # same output name as c.png
    out = tmp_path / "lq"
    assert main(["degrade", str(hr_dir), "-o", str(out), "--seed", "0"]) == 1
    err = capsys.readouterr().err
    assert "broken.png" in err and "c.jpg" in err and "same output" in err
    assert (out / "a.png").is_file() and (out / "sub" / "b.png").is_file()
    assert not (out / "broken.png").exists() and not (out / "c.png").exists()


def test_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["degrade", str(tmp_path / "missing"), "-o", str(tmp_path / "o")]) == 2
    (tmp_path / "empty").mkdir()
    assert main(["degrade", str(tmp_path / "empty"), "-o", str(tmp_path / "o")]) == 1
    assert "no images" in capsys.readouterr().err


@pytest.mark.parametrize("inside", ["", "lq"])
def test_lq_folder_inside_the_hr_folder_is_refused(hr_dir: Path, inside: str, capsys) -> None:
    before = {p: p.read_bytes() for p in hr_dir.rglob("*") if p.is_file()}
    assert main(["degrade", str(hr_dir), "-o", str(hr_dir / inside), "--seed", "1"]) == 2
    assert "the LQ folder must be outside the HR folder" in capsys.readouterr().err
    assert {p: p.read_bytes() for p in hr_dir.rglob("*") if p.is_file()} == before
