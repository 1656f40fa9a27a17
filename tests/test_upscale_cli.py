"""`soccersr upscale` end to end through ``soccersr.cli.main``, plus input discovery and output naming.

The model is a real SRVGGNetCompact with every weight zero, saved to a .safetensors file and
passed with ``--model PATH``: it upscales by exact nearest-neighbour x4, so outputs are pinned
to numpy ``repeat`` of the inputs.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from soccersr.archs import SRVGGNetCompact
from soccersr.cli import main
from soccersr.infer.batch import BatchOptions, Job, discover, output_path, run_batch
from soccersr.io import images as imageio


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    net = SRVGGNetCompact(num_feat=4, num_conv=1, upscale=4)
    with torch.no_grad():
        for parameter in net.parameters():
            parameter.zero_()
    path = tmp_path_factory.mktemp("model") / "nearest_x4.safetensors"
    save_file(net.state_dict(), str(path))
    return path


def nearest4(array: np.ndarray) -> np.ndarray:
    return np.repeat(np.repeat(array, 4, axis=0), 4, axis=1)


RNG = np.random.default_rng(3)
RGB = RNG.integers(0, 256, (5, 6, 3), dtype=np.uint8)
RGBA = RNG.integers(0, 256, (4, 3, 4), dtype=np.uint8)
SUB = RNG.integers(0, 256, (3, 3, 3), dtype=np.uint8)


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    """photos/{a.png, b.jpg, c.png (RGBA), notes.txt, sub/d.png}."""
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    cv2.imwrite(str(folder / "a.png"), RGB)
    cv2.imwrite(str(folder / "b.jpg"), cv2.resize(RGB, (24, 20)))
    cv2.imwrite(str(folder / "c.png"), RGBA)
    (folder / "notes.txt").write_text("not a photo")
    cv2.imwrite(str(folder / "sub" / "d.png"), SUB)
    return folder


class Cli:
    def __init__(self, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture, model: Path) -> None:
        self.capsys, self.caplog, self.model = capsys, caplog, model

    def __call__(self, *args: str | Path) -> tuple[int, str, str]:
        """Exit code, stdout, and the error lines logged/printed."""
        self.caplog.clear()
        self.caplog.set_level("INFO")
        code = main(["upscale", *map(str, args), "--model", str(self.model), "--device", "cpu", "--no-progress"])
        out, err = self.capsys.readouterr()
        errors = err + "".join(f"{r.getMessage()}\n" for r in self.caplog.records if r.levelname == "ERROR")
        return code, out, errors

    def logged(self, level: str) -> list[str]:
        """The messages logged at ``level`` by the last call: each is one line the user sees."""
        return [r.getMessage() for r in self.caplog.records if r.levelname == level]


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture, tiny_model: Path) -> Cli:
    return Cli(capsys, caplog, tiny_model)


def files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def read_raw(path: Path) -> np.ndarray:
    return cv2.imread(str(path), cv2.IMREAD_UNCHANGED)


# --- end to end ------------------------------------------------------------------------------


def test_folder_default_names_exact_pixels_and_summary(cli: Cli, photos: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    code, stdout, errors = cli(photos, "-o", out)
    assert code == 0, errors
    assert files(out) == ["a_x4.png", "b_x4.jpg", "c_x4.png"]  # notes.txt ignored quietly, sub/ not entered
    np.testing.assert_array_equal(read_raw(out / "a_x4.png"), nearest4(RGB))
    np.testing.assert_array_equal(read_raw(out / "c_x4.png"), nearest4(RGBA))  # alpha through the model
    assert read_raw(out / "b_x4.jpg").shape == (80, 96, 3)
    assert "upscaled 3 images" in stdout and "skipped 0; failed 0" in stdout
    assert "notes.txt" not in errors


def test_recursive_keeps_subfolders(cli: Cli, photos: Path, tmp_path: Path) -> None:
    code, _, _ = cli(photos, "-o", tmp_path / "out", "--recursive")
    assert code == 0
    assert files(tmp_path / "out") == ["a_x4.png", "b_x4.jpg", "c_x4.png", "sub/d_x4.png"]
    np.testing.assert_array_equal(read_raw(tmp_path / "out" / "sub" / "d_x4.png"), nearest4(SUB))


def test_suffix_and_formats(cli: Cli, photos: Path, tmp_path: Path) -> None:
    assert cli(photos / "a.png", "-o", tmp_path / "plain", "--suffix", "")[0] == 0
    assert files(tmp_path / "plain") == ["a.png"]

    assert cli(photos, "-o", tmp_path / "webp", "--suffix", "out", "--format", "webp", "--quality", "90")[0] == 0
    assert files(tmp_path / "webp") == ["a_out.webp", "b_out.webp", "c_out.webp"]
    assert imageio.read_image(tmp_path / "webp" / "c_out.webp").alpha is not None  # WebP keeps alpha

    assert cli(photos, "-o", tmp_path / "jpg", "--format", "jpg")[0] == 0
    assert files(tmp_path / "jpg") == ["a_x4.jpg", "b_x4.jpg", "c_x4.png"]  # alpha forces PNG

    assert cli(photos / "b.jpg", "-o", tmp_path / "png", "--format", "png")[0] == 0
    assert files(tmp_path / "png") == ["b_x4.png"]


def test_outscale_resizes_and_names_the_scale(cli: Cli, photos: Path, tmp_path: Path) -> None:
    code, _, _ = cli(photos / "a.png", "-o", tmp_path / "out", "--outscale", "2")
    assert code == 0
    assert read_raw(tmp_path / "out" / "a_x2.png").shape == (10, 12, 3)


def test_existing_outputs_skip_and_overwrite(cli: Cli, photos: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert cli(photos, "-o", out)[0] == 0
    stamps = {name: (out / name).stat().st_mtime_ns for name in files(out)}

    # Issue 13.16: rerunning the quick start without --overwrite said "failed 3" and exited 1.
    code, stdout, errors = cli(photos, "-o", out)
    assert code == 0 and cli.logged("ERROR") == []
    assert "skipped 3; failed 0" in stdout
    assert f"{out / 'a_x4.png'}: exists, skipped (--overwrite replaces it)" in cli.logged("INFO")
    assert stamps == {name: (out / name).stat().st_mtime_ns for name in files(out)}

    code, stdout, _ = cli(photos, "-o", out, "--skip-existing")
    assert code == 0 and "skipped 3; failed 0" in stdout
    assert not any("skipped" in note for note in cli.logged("INFO"))  # quietly
    assert stamps == {name: (out / name).stat().st_mtime_ns for name in files(out)}

    cv2.imwrite(str(photos / "a.png"), 255 - RGB)
    code, stdout, _ = cli(photos / "a.png", "-o", out, "--overwrite")
    assert code == 0
    np.testing.assert_array_equal(read_raw(out / "a_x4.png"), nearest4(255 - RGB))


def test_bad_inputs_are_reported_and_the_batch_goes_on(cli: Cli, photos: Path, tmp_path: Path) -> None:
    (photos / "zero.jpg").write_bytes(b"")
    good = (photos / "a.png").read_bytes()
    (photos / "cut.png").write_bytes(good[: len(good) // 2])
    big = tmp_path / "big.png"
    cv2.imwrite(str(big), np.zeros((100, 100, 3), np.uint8))
    notes = photos / "notes.txt"
    missing = tmp_path / "missing.jpg"
    out = tmp_path / "out"
    code, stdout, errors = cli(photos, notes, missing, big, "-o", out, "--max-pixels", "5000")
    assert code == 1
    expected = [
        f"{photos / 'zero.jpg'}: empty file (0 bytes)",
        f"{photos / 'cut.png'}: truncated PNG",
        f"{notes}: not an image file (unknown signature); supported: JPEG, PNG, WebP, TIFF, BMP",
        f"{missing}: no such file or folder",
        f"{big}: 100x100 is 10,000 pixels, above the limit of 5,000 pixels (raise it with --max-pixels)",  # 13.14
    ]
    for line in expected:
        assert line in errors, line
        assert sum(line in message for message in cli.logged("ERROR")) == 1, line  # issue 13.16: it was twice
        assert line not in stdout, line
    assert files(out) == ["a_x4.png", "b_x4.jpg", "c_x4.png"]
    assert "upscaled 3 images" in stdout and "failed 5" in stdout


def test_unwritable_output_folder(cli: Cli, photos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "file.txt"
    blocker.write_text("")
    code, _, errors = cli(photos / "a.png", "-o", blocker / "out")
    assert code == 1
    assert f"{blocker / 'out'}: cannot create the output folder (Not a directory)" in errors

    locked = tmp_path / "locked"
    locked.mkdir()
    if os.geteuid() == 0:  # root may write anywhere: simulate the denial
        real_access = os.access
        monkeypatch.setattr(os, "access", lambda path, mode: False if Path(path) == locked else real_access(path, mode))
    else:
        locked.chmod(0o500)
    code, _, errors = cli(photos / "a.png", "-o", locked)
    assert code == 1
    assert f"{locked}: cannot write to the output folder (permission denied)" in errors
    assert files(locked) == []

    code, _, errors = cli(photos / "a.png", "-o", blocker)
    assert code == 2 and "the output folder is a file" in errors


def test_output_never_replaces_its_input(cli: Cli, photos: Path) -> None:
    before = (photos / "a.png").read_bytes()
    code, _, errors = cli(photos / "a.png", "-o", photos, "--suffix", "", "--overwrite")
    assert code == 1 and "the output would replace the input" in errors
    assert (photos / "a.png").read_bytes() == before


def test_globs(cli: Cli, photos: Path, tmp_path: Path) -> None:
    code, _, _ = cli(str(photos / "*.png"), "-o", tmp_path / "out")
    assert code == 0 and files(tmp_path / "out") == ["a_x4.png", "c_x4.png"]
    code, _, errors = cli(str(photos / "*.gif"), "-o", tmp_path / "none")
    assert code == 1 and "*.gif: no image files match" in errors


def test_empty_folder(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "empty" / "deeper").mkdir(parents=True)
    code, stdout, errors = cli(tmp_path / "empty", "-o", tmp_path / "out")
    assert code == 1 and "no images found in this folder (add --recursive to look in subfolders)" in errors
    assert "nothing to upscale" in stdout


def test_ctrl_c_stops_cleanly(cli: Cli, photos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real_fsync = os.fsync

    def fsync_then_interrupt(fd: int) -> None:
        if stat.S_ISREG(os.fstat(fd).st_mode):  # file syncs, not the folder syncs after a rename
            calls.append(fd)
        if len(calls) == 2:  # in the middle of writing the second output
            raise KeyboardInterrupt
        real_fsync(fd)

    monkeypatch.setattr(imageio.os, "fsync", fsync_then_interrupt)
    out = tmp_path / "out"
    code, stdout, _ = cli(photos, "-o", out)
    assert code == 130
    assert files(out) == ["a_x4.png"]  # finished before Ctrl-C; no partial second file, no temp file
    assert stdout.startswith("interrupted: upscaled 1 image ")


@pytest.mark.parametrize(
    "args",
    [
        ["--quality", "0"],
        ["--overwrite", "--skip-existing"],
        ["--tile", "big"],
        ["--outscale", "-1"],
        ["--format", "gif"],
        ["--max-pixels", "lots"],
    ],
)
def test_usage_errors_exit_2(cli: Cli, photos: Path, tmp_path: Path, args: list[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        cli(photos, "-o", tmp_path / "out", *args)
    assert stop.value.code == 2


def test_unknown_model_exits_2(capsys: pytest.CaptureFixture[str], photos: Path, tmp_path: Path) -> None:
    code = main(
        ["upscale", str(photos), "-o", str(tmp_path / "out"), "--model", str(tmp_path / "nope.pth"), "--no-progress"]
    )
    assert code == 2
    assert "soccersr upscale: error:" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


# --- discovery and naming (no model) -------------------------------------------------------------


def test_discover_dedupes_and_keeps_relative_paths(photos: Path, tmp_path: Path) -> None:
    jobs, failures = discover([photos, photos / "a.png", str(photos / "**" / "*.png")], recursive=True)
    assert failures == []
    assert [(j.source.name, str(j.relative)) for j in jobs] == [
        ("a.png", "a.png"),
        ("b.jpg", "b.jpg"),
        ("c.png", "c.png"),
        ("d.png", "sub/d.png"),
    ]


def test_discover_skips_the_output_folder_and_hidden_files(photos: Path) -> None:
    (photos / "results").mkdir()
    cv2.imwrite(str(photos / "results" / "a_x4.png"), RGB)
    cv2.imwrite(str(photos / ".hidden.png"), RGB)
    jobs, _ = discover([photos], recursive=True, exclude=photos / "results")
    assert sorted(str(j.relative) for j in jobs) == ["a.png", "b.jpg", "c.png", "sub/d.png"]


def test_output_path_rules(tmp_path: Path) -> None:
    def name(source: str, has_alpha: bool = False, **options: object) -> str:
        job = Job(Path("/in") / source, Path(source))
        return str(output_path(job, BatchOptions(output_dir=Path("/o"), **options), has_alpha=has_alpha))

    assert name("x/photo.JPEG") == "/o/x/photo_out.JPEG"  # auto keeps the extension as spelled
    assert name("photo.bmp") == "/o/photo_out.png"
    assert name("photo.tif", has_alpha=True) == "/o/photo_out.tif"
    assert name("photo.png", has_alpha=True, format="jpeg") == "/o/photo_out.png"
    assert name("photo.png", format="jpeg", suffix="") == "/o/photo.jpg"
    assert name("photo.jpg", format="webp", suffix="x4") == "/o/photo_x4.webp"
    with pytest.raises(ValueError, match="exclude each other"):
        BatchOptions(output_dir=Path("/o"), overwrite=True, skip_existing=True)


def test_engine_errors_fail_one_image_and_the_batch_goes_on(photos: Path, tmp_path: Path) -> None:
    class FailsOnWideImages:
        scale = 4

        def upscale(self, images: torch.Tensor, *, progress=None) -> torch.Tensor:  # noqa: ANN001
            if images.shape[-1] > 10:
                raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB\nmore details")
            return torch.nn.functional.interpolate(images, scale_factor=4, mode="nearest")

    jobs, _ = discover([photos])
    summary = run_batch(jobs, FailsOnWideImages(), BatchOptions(output_dir=tmp_path / "out", progress=False))
    assert (summary.done, summary.skipped, summary.failed) == (2, 0, 1)
    assert summary.failures[0].message == (
        f"{photos / 'b.jpg'}: upscaling failed (CUDA out of memory. Tried to allocate 2.00 GiB); try a smaller --tile"
    )
    assert files(tmp_path / "out") == ["a_out.png", "c_out.png"]
    assert summary.input_megapixels == pytest.approx((30 + 12) / 1e6)
    assert summary.output_megapixels == pytest.approx(16 * (30 + 12) / 1e6)


def test_bundled_samples_are_small_valid_photos() -> None:
    samples = Path(__file__).resolve().parents[1] / "samples"
    photos = sorted(p for p in samples.iterdir() if p.suffix in (".jpg", ".png"))
    assert [p.name for p in photos] == [
        "01_players_ball.jpg",
        "02_turf_lettering.jpg",
        "03_goal_keeper.png",
        "04_stand_and_goal.jpg",
    ]
    assert sum(p.stat().st_size for p in photos) < 300_000
    for path in photos:
        image = imageio.read_image(path)
        assert 160 <= max(image.width, image.height) <= 240 and image.exif is None
        assert path.name in (samples / "ATTRIBUTION.md").read_text()


def test_never_overwrites_another_input_of_the_batch(cli: Cli, tmp_path: Path) -> None:
    """a.bmp's output a.png would replace the source a.png: refused even with --overwrite."""
    folder = tmp_path / "same"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.bmp"), RGB)
    cv2.imwrite(str(folder / "a.png"), SUB)
    before = (folder / "a.png").read_bytes()
    code, _, errors = cli(folder, "-o", folder, "--suffix", "", "--overwrite")
    assert code == 1
    assert (folder / "a.png").read_bytes() == before
    assert "a.bmp: its output" in errors and "would replace another input of this batch" in errors


def test_rerun_into_the_input_folder_does_not_upscale_its_outputs(cli: Cli, tmp_path: Path) -> None:
    folder = tmp_path / "same"
    folder.mkdir()
    cv2.imwrite(str(folder / "plain.png"), RGB)
    assert cli(folder, "-o", folder)[0] == 0
    code, stdout, _ = cli(folder, "-o", folder, "--skip-existing")
    assert code == 0 and "skipped 2" in stdout  # plain.png (output exists) and plain_x4.png (an output)
    assert files(folder) == ["plain.png", "plain_x4.png"]


def test_glob_over_a_folder_holding_the_output_folder(cli: Cli, tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    archive.mkdir()
    cv2.imwrite(str(archive / "top.png"), RGB)
    for _ in range(2):
        cli(str(archive / "*"), "-o", archive / "out", "--skip-existing")
    assert files(archive) == ["out/top_x4.png", "top.png"]


def test_outscale_that_leaves_no_pixel_fails_that_image_only(cli: Cli, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    cv2.imwrite(str(folder / "big.png"), cv2.resize(RGB, (60, 50)))
    cv2.imwrite(str(folder / "tiny.png"), RGB[:3, :3])
    code, stdout, errors = cli(folder, "-o", tmp_path / "out", "--outscale", "0.1")
    assert code == 1 and "upscaled 1 image" in stdout
    assert "tiny.png: upscaling failed (outscale 0.1 leaves nothing of a 3x3 image)" in errors
    assert files(tmp_path / "out") == ["big_x0.1.png"]


# --- symlinks (issue 13.5, 13.6) ------------------------------------------------------------------


def test_a_file_symlink_loop_fails_that_input_only(cli: Cli, photos: Path, tmp_path: Path) -> None:
    os.symlink("l2.png", photos / "l1.png")
    os.symlink("l1.png", photos / "l2.png")
    out = tmp_path / "out"
    code, stdout, errors = cli(photos, photos / "l1.png", "-o", out)
    assert code == 1
    for name in ("l1.png", "l2.png"):
        assert f"{photos / name}: cannot read the file (Too many levels of symbolic links)" in errors
    assert "Traceback" not in errors
    assert files(out) == ["a_x4.png", "b_x4.jpg", "c_x4.png"]
    assert "upscaled 3 images" in stdout and "failed 2" in stdout


def test_recursive_glob_over_folder_symlink_loops_finds_each_image_once(cli: Cli, photos: Path, tmp_path: Path) -> None:
    (photos / "sub" / "up").symlink_to(photos, target_is_directory=True)
    (photos / "sub" / "again").symlink_to(photos / "sub", target_is_directory=True)
    by_glob, failures = discover([str(photos / "**" / "*.png")], recursive=True)
    by_folder, _ = discover([photos], recursive=True)
    assert failures == []
    assert sorted(str(j.relative) for j in by_glob) == ["a.png", "c.png", "sub/d.png"]
    assert sorted(str(j.relative) for j in by_folder) == ["a.png", "b.jpg", "c.png", "sub/d.png"]
    code, _, _ = cli(str(photos / "**" / "*.png"), "--recursive", "-o", tmp_path / "out")
    assert code == 0 and files(tmp_path / "out") == ["a_x4.png", "c_x4.png", "sub/d_x4.png"]


# --- outputs that clash (issue 13.2, 13.3) ---------------------------------------------------------


class CreatesTheOutputMeanwhile:
    """Nearest x4 that, while upscaling, lets "another process" create ``victim``."""

    scale = 4

    def __init__(self, victim: Path) -> None:
        self.victim = victim

    def upscale(self, images: torch.Tensor, *, progress=None) -> torch.Tensor:  # noqa: ANN001
        if images.shape[-1] == 6 and not self.victim.exists():  # a.png is 5x6
            self.victim.write_bytes(b"written by another run")
        return torch.nn.functional.interpolate(images, scale_factor=4, mode="nearest")


def test_an_output_created_during_the_run_is_never_replaced(photos: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    victim = out / "a_out.png"
    jobs, _ = discover([photos])
    summary = run_batch(jobs, CreatesTheOutputMeanwhile(victim), BatchOptions(output_dir=out, progress=False))
    assert victim.read_bytes() == b"written by another run"
    assert (summary.done, summary.skipped, summary.failed) == (2, 0, 1)
    assert summary.failures[0].message.startswith(f"{victim}: appeared while {photos / 'a.png'} was being upscaled")
    assert files(out) == ["a_out.png", "b_out.jpg", "c_out.png"]  # and no temporary file left

    victim.unlink()
    overwrite = BatchOptions(output_dir=out, progress=False, overwrite=True)
    summary = run_batch(jobs, CreatesTheOutputMeanwhile(victim), overwrite)
    assert summary.failed == 0 and read_raw(victim).shape == (20, 24, 3)  # --overwrite replaces it


def test_two_inputs_with_one_output_name_fail_and_a_rerun_says_so_again(cli: Cli, tmp_path: Path) -> None:
    for folder, pixels in (("a", RGB), ("b", SUB)):
        (tmp_path / folder).mkdir()
        cv2.imwrite(str(tmp_path / folder / "photo.png"), pixels)
    out = tmp_path / "out"
    message = (
        f"{tmp_path / 'b' / 'photo.png'}: same output name as {tmp_path / 'a' / 'photo.png'} "
        f"({out / 'photo_x4.png'}); rename one of them"
    )
    code, stdout, errors = cli(tmp_path / "a", tmp_path / "b", "-o", out)
    assert code == 1 and "upscaled 1 image " in stdout and "failed 1" in stdout
    assert cli.logged("ERROR") == [message]
    np.testing.assert_array_equal(read_raw(out / "photo_x4.png"), nearest4(RGB))
    # The rerun used to say "skipped 2; failed 0" and exit 0, though b/photo.png was never upscaled.
    code, stdout, errors = cli(tmp_path / "a", tmp_path / "b", "-o", out, "--skip-existing")
    assert code == 1 and "skipped 1; failed 1" in stdout and message in errors
    code, _, _ = cli(tmp_path / "a", tmp_path / "b", "-o", out, "--recursive")
    assert code == 1  # --recursive keeps folders below an input, not the inputs' own names


def test_a_temporary_file_of_a_killed_run_is_removed(cli: Cli, photos: Path, tmp_path: Path) -> None:
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    out = tmp_path / "out"
    out.mkdir()
    stale = out / f".a_x4.png.{child.pid}.0123abcd.tmp"
    stale.write_bytes(b"half a png")
    assert cli(photos / "a.png", "-o", out)[0] == 0
    assert files(out) == ["a_x4.png"]
