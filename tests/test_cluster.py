"""`soccersr upscale --cluster ray` end to end on a local Ray with 2 CPUs (one session for the module).

The model is a real RRDBNet with one 8-feature block, saved as a weights file and passed with
``--model``; the photos are crops of the committed SoccerTrack frames. The local command (no
``--cluster``) is the reference: same names, pixels within one level (the workers run the
network on one thread, the local run on two, so float sums may round differently).
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import cv2
import numpy as np
import pytest
from safetensors.torch import save_file

from soccersr.cli import main
from soccersr.cluster.manifest import MANIFEST_NAME
from soccersr.cluster.worker import EXIT_MARKER_ENV
from tiny_models import tiny_model

ray = pytest.importorskip("ray", reason="ray is in the dev extra: pip install -e '.[dev]'")


@pytest.fixture(scope="module")
def exit_marker(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """While this file exists, the next worker to finish a tile removes it and exits (os._exit)."""
    return tmp_path_factory.mktemp("marker") / "exit-once"


@pytest.fixture(scope="module", autouse=True)
def ray_session(exit_marker: Path):
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        logging_level=logging.ERROR,
        runtime_env={"env_vars": {EXIT_MARKER_ENV: str(exit_marker)}},
    )
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("model") / "tiny_rrdb_x4.safetensors"
    save_file(tiny_model("RRDBNet").net.state_dict(), str(path))
    return path


@pytest.fixture
def photos(tmp_path: Path, soccer_crops: Path) -> Path:
    """photos/{01_players.png, 02_grass.jpg, 03_goal_fence.png (RGBA), sub/04_lines.png}, 96x96 each."""
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    crops = [cv2.imread(str(path))[:96, :96] for path in sorted(soccer_crops.glob("0[1-4]_*.png"))]
    cv2.imwrite(str(folder / "01_players.png"), crops[0])
    cv2.imwrite(str(folder / "02_grass.jpg"), crops[1])
    alpha = np.linspace(0, 255, 96 * 96).reshape(96, 96, 1).astype(np.uint8)
    cv2.imwrite(str(folder / "03_goal_fence.png"), np.concatenate([crops[2], alpha], axis=2))
    cv2.imwrite(str(folder / "sub" / "04_lines.png"), crops[3])
    return folder


class Cli:
    def __init__(self, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture, model: Path) -> None:
        self.capsys, self.caplog, self.model = capsys, caplog, model

    def __call__(self, *args: str | Path) -> tuple[int, str]:
        """Exit code and stdout (the summary line)."""
        self.caplog.clear()
        self.caplog.set_level("INFO")
        code = main(["upscale", *map(str, args), "--model", str(self.model), "--device", "cpu", "--no-progress"])
        return code, self.capsys.readouterr().out

    def logged(self, level: str) -> list[str]:
        return [r.getMessage() for r in self.caplog.records if r.levelname == level]


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture, model_file: Path) -> Cli:
    return Cli(capsys, caplog, model_file)


def images(folder: Path) -> list[str]:
    """Every file below ``folder`` but the manifest (hidden temporaries included)."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST_NAME)


def manifest(folder: Path) -> dict[str, dict[str, str]]:
    with open(folder / MANIFEST_NAME, newline="", encoding="utf-8") as f:
        return {row["input"]: row for row in csv.DictReader(f)}


def pixels(path: Path) -> np.ndarray:
    return cv2.imread(str(path), cv2.IMREAD_UNCHANGED).astype(np.int16)


def test_outputs_match_the_local_engine(cli: Cli, photos: Path, tmp_path: Path) -> None:
    local, cluster = tmp_path / "local", tmp_path / "cluster"
    code, summary = cli(photos, "-o", local, "--recursive")
    assert code == 0 and summary.startswith("upscaled 4 images")

    code, summary = cli(photos, "-o", cluster, "--recursive", "--cluster", "ray", "--workers", "2")
    assert code == 0, cli.logged("ERROR")
    assert summary.startswith("upscaled 4 images") and summary.endswith("skipped 0; failed 0\n")
    names = ["01_players_x4.png", "02_grass_x4.jpg", "03_goal_fence_x4.png", "sub/04_lines_x4.png"]
    assert images(local) == images(cluster) == names
    for name in names:
        reference, result = pixels(local / name), pixels(cluster / name)
        assert result.shape == reference.shape
        assert np.abs(result - reference).max() <= 1, name
    rows = manifest(cluster)
    assert sorted(rows) == sorted(str(p) for p in photos.rglob("*.*"))
    assert {(row["status"], row["error"]) for row in rows.values()} == {("done", "")}
    assert rows[str(photos / "sub" / "04_lines.png")]["output"] == str(cluster / "sub" / "04_lines_x4.png")


def test_a_rerun_skips_everything(cli: Cli, photos: Path, tmp_path: Path) -> None:
    # --format jpeg: the RGBA photo becomes PNG, a name only its pixels (or the manifest) tell.
    out = tmp_path / "out"
    arguments = (photos, "-o", out, "--recursive", "--format", "jpeg", "--cluster", "ray", "--workers", "1")
    assert cli(*arguments)[0] == 0
    assert images(out) == ["01_players_x4.jpg", "02_grass_x4.jpg", "03_goal_fence_x4.png", "sub/04_lines_x4.jpg"]
    written = {name: (out / name).stat().st_mtime_ns for name in images(out)}

    code, summary = cli(*arguments, "--skip-existing")
    assert code == 0 and "upscaled 0 images" in summary and "skipped 4; failed 0" in summary
    assert not [line for line in cli.logged("INFO") if " to upscale on " in line]  # no work for a worker
    assert {row["status"] for row in manifest(out).values()} == {"skipped"}
    assert {name: (out / name).stat().st_mtime_ns for name in images(out)} == written

    # A driver lost before its manifest: the files on disk still say what is done.
    (out / MANIFEST_NAME).unlink()
    code, summary = cli(*arguments, "--skip-existing")
    assert code == 0 and "skipped 4; failed 0" in summary
    assert {name: (out / name).stat().st_mtime_ns for name in images(out)} == written


def test_a_bad_file_fails_alone_with_its_reason_in_the_manifest(cli: Cli, photos: Path, tmp_path: Path) -> None:
    good = (photos / "01_players.png").read_bytes()
    (photos / "cut.png").write_bytes(good[: len(good) // 2])
    (photos / "notes.jpg").write_text("not a photo")
    local, cluster = tmp_path / "local", tmp_path / "cluster"
    code, summary = cli(photos, "-o", local)
    local_errors = sorted(cli.logged("ERROR"))
    assert code == 1 and "upscaled 3 images" in summary and "failed 2" in summary and len(local_errors) == 2

    code, summary = cli(photos, "-o", cluster, "--cluster", "ray", "--workers", "2")
    assert code == 1 and "upscaled 3 images" in summary and "skipped 0; failed 2" in summary
    assert sorted(cli.logged("ERROR")) == local_errors  # the same lines (the inputs were given as absolute paths)
    assert images(cluster) == images(local) == ["01_players_x4.png", "02_grass_x4.jpg", "03_goal_fence_x4.png"]
    rows = manifest(cluster)
    for name in ("cut.png", "notes.jpg"):
        row = rows[str(photos / name)]
        assert row["status"] == "failed" and row["output"] == "" and row["error"] in local_errors


def test_a_worker_killed_mid_file_leaves_no_partial_file_and_the_run_completes(
    cli: Cli, photos: Path, tmp_path: Path, exit_marker: Path
) -> None:
    exit_marker.touch()
    out = tmp_path / "out"
    # 16 tiles per photo: the first worker to finish a tile exits in the middle of its photo.
    code, summary = cli(photos, "-o", out, "--tile", "24", "--cluster", "ray", "--workers", "2")
    assert not exit_marker.exists()  # a worker did exit
    assert code == 0 and "upscaled 3 images" in summary and "skipped 0; failed 0" in summary
    names = ["01_players_x4.png", "02_grass_x4.jpg", "03_goal_fence_x4.png"]
    assert images(out) == names  # no temporary file of the dead worker either
    for name in names:
        assert pixels(out / name).shape[:2] == (384, 384)
    assert {row["status"] for row in manifest(out).values()} == {"done"}


def test_refuses_a_pool_that_does_not_fit_the_local_ray(cli: Cli, photos: Path, tmp_path: Path) -> None:
    code, _ = cli(photos, "-o", tmp_path / "out", "--cluster", "ray", "--workers", "3")
    assert code == 2
    assert not (tmp_path / "out" / "01_players_x4.png").exists()
