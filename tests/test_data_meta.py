"""`soccersr meta`: the meta_info format, relative paths, both option spellings, --check."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from soccersr.cli import main
from soccersr.data.meta import read_meta_info


@pytest.fixture()
def dataset_root(tmp_path: Path) -> Path:
    """root/{sub_a: b.png, a.png, c.jpg, notes.txt, .hidden.png, nested/x.png}, root/sub_b: z.png."""
    root = tmp_path / "root"
    image = np.full((8, 8, 3), 100, np.uint8)
    for rel in ("sub_a/b.png", "sub_a/a.png", "sub_a/c.jpg", "sub_a/.hidden.png", "sub_a/nested/x.png", "sub_b/z.png"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / rel), image)
    (root / "sub_a" / "notes.txt").write_text("not an image")
    return root


def test_lines_are_sorted_relative_paths_folder_by_folder(dataset_root: Path, tmp_path: Path, capsys) -> None:
    meta = tmp_path / "meta" / "meta_info.txt"
    args = ["meta", "--input", str(dataset_root / "sub_b"), str(dataset_root / "sub_a")]
    args += ["--root", str(dataset_root), str(dataset_root), "--meta-info", str(meta)]
    assert main(args) == 0
    # Folders in the given order, names sorted inside each; only visible image files, no recursion.
    assert meta.read_text() == "sub_b/z.png\nsub_a/a.png\nsub_a/b.png\nsub_a/c.jpg\n"
    assert "wrote 4 lines" in capsys.readouterr().out


def test_paddle_spelling_and_default_root(dataset_root: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # relative paths, as the Paddle README runs it
    assert main(["meta", "--input", "root/sub_b", "--root", "root/sub_b", "--meta_info", "m1.txt"]) == 0
    assert Path("m1.txt").read_text() == "z.png\n"
    assert main(["meta", "--input", "root/sub_b", "--meta_info", "m2.txt"]) == 0  # root defaults to the parent
    assert Path("m2.txt").read_text() == "sub_b/z.png\n"
    # The official README separates folders with ", ": the trailing comma is tolerated.
    assert (
        main(["meta", "--input", "root/sub_b,", "root/sub_a", "--root", "root,", "root", "--meta_info", "m3.txt"]) == 0
    )
    assert read_meta_info(Path("m3.txt")) == ["sub_b/z.png", "sub_a/a.png", "sub_a/b.png", "sub_a/c.jpg"]


def test_check_reports_and_leaves_out_corrupt_images(dataset_root: Path, tmp_path: Path, capsys) -> None:
    corrupt = dataset_root / "sub_a" / "broken.png"
    corrupt.write_bytes(cv2.imencode(".png", np.zeros((16, 16, 3), np.uint8))[1].tobytes()[:40])
    meta = tmp_path / "meta.txt"
    base = ["meta", "--input", str(dataset_root / "sub_a"), "--root", str(dataset_root), "--meta-info", str(meta)]
    assert main(base) == 0  # without --check, nothing is decoded
    assert "sub_a/broken.png" in meta.read_text()
    capsys.readouterr()
    assert main([*base, "--check"]) == 1
    captured = capsys.readouterr()
    assert f"{corrupt}: truncated PNG" in captured.err
    assert meta.read_text() == "sub_a/a.png\nsub_a/b.png\nsub_a/c.jpg\n"
    assert "1 unreadable left out" in captured.out


def test_errors_exit_2_without_writing(dataset_root: Path, tmp_path: Path, capsys) -> None:
    meta = tmp_path / "meta.txt"
    two_inputs = ["--input", str(dataset_root / "sub_a"), str(dataset_root / "sub_b")]
    assert main(["meta", *two_inputs, "--root", str(dataset_root), "--meta-info", str(meta)]) == 2
    assert "same number of folders, got 2 and 1" in capsys.readouterr().err
    assert main(["meta", "--input", str(tmp_path / "nope"), "--meta-info", str(meta)]) == 2
    assert f"{tmp_path / 'nope'}: not a directory" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["meta", "--input", str(tmp_path / "empty"), "--meta-info", str(meta)]) == 2
    assert "no images in" in capsys.readouterr().err
    assert not meta.exists()


def test_read_meta_info_skips_blank_lines(tmp_path: Path) -> None:
    meta = tmp_path / "m.txt"
    meta.write_text("a/x.png\n\n  b/y.png  \r\n")
    assert read_meta_info(meta) == ["a/x.png", "b/y.png"]
    with pytest.raises(FileNotFoundError, match="missing.txt: meta_info file not found"):
        read_meta_info(tmp_path / "missing.txt")
