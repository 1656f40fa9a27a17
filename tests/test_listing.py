"""soccersr.io.listing: image names, folder walks and globs, with symlinked folders and loops."""

from __future__ import annotations

import glob
import os
from pathlib import Path

import pytest

from soccersr.io.listing import glob_paths, is_image_name, list_images, walk_images


@pytest.fixture
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """d/{a.png, b.JPG, notes.txt, .hidden.png, sub/{c.png, deeper/d.webp}, .cache/e.png, x.png/f.png}."""
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "d"
    for name in [
        "a.png",
        "b.JPG",
        "notes.txt",
        ".hidden.png",
        "sub/c.png",
        "sub/deeper/d.webp",
        ".cache/e.png",
        "x.png/f.png",
    ]:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"")
    return root


def names(paths: list[Path], root: Path) -> list[str]:
    return [p.relative_to(root).as_posix() for p in paths]


def test_image_names() -> None:
    assert is_image_name("a.PNG") and is_image_name(Path("dir.x/b.tiff"))
    assert not is_image_name(".a.png") and not is_image_name("a.gif") and not is_image_name("png")


def test_list_images_is_flat_and_sorted(tree: Path) -> None:
    assert names(list_images(tree), tree) == ["a.png", "b.JPG"]  # x.png is a folder
    with pytest.raises(NotADirectoryError, match="missing: not a directory"):
        list_images(tree / "missing")


def test_walk_order_and_hidden_names(tree: Path) -> None:
    assert names(walk_images(tree, recursive=False), tree) == ["a.png", "b.JPG"]
    assert names(walk_images(tree), tree) == ["a.png", "b.JPG", "sub/c.png", "sub/deeper/d.webp", "x.png/f.png"]
    assert names(walk_images(tree, exclude=tree / "sub"), tree) == ["a.png", "b.JPG", "x.png/f.png"]


@pytest.mark.parametrize(
    "pattern",
    ["d/**/*.png", "d/**", "d/**/deeper/*", "**/*.png", "d/*/*.png", "d/**/c.png", "d/s*/**/*.webp", "d/.cache/**/*"],
)
def test_recursive_glob_matches_glob_glob_on_a_tree_without_links(tree: Path, pattern: str) -> None:
    """Parity with the standard library where the standard library terminates."""
    assert glob_paths(pattern, recursive=True) == [Path(p) for p in sorted(glob.glob(pattern, recursive=True))]


def test_symlinked_folders_are_followed_and_each_real_folder_is_visited_once(tree: Path) -> None:
    (tree / "sub" / "up").symlink_to(tree, target_is_directory=True)  # d/sub/up -> d: a loop
    (tree / "sub" / "here").symlink_to(".", target_is_directory=True)  # d/sub/here -> d/sub: another
    (tree / "sub" / "deeper" / "both").symlink_to("../..", target_is_directory=True)
    outside = tree.parent / "outside"
    outside.mkdir()
    (outside / "o.png").write_bytes(b"")
    (tree / "linked").symlink_to(outside, target_is_directory=True)
    expected = ["a.png", "b.JPG", "linked/o.png", "sub/c.png", "sub/deeper/d.webp", "x.png/f.png"]
    assert names(walk_images(tree), tree) == expected
    # The glob that used to hang with memory rising (issue 13.6) now finds the same files.
    found = [p for p in glob_paths("d/**/*.png", recursive=True) if p.is_file()]
    assert sorted(names(found, Path("d"))) == [n for n in expected if n.endswith(".png")]


def test_file_symlink_loops_are_listed_for_the_reader_to_report(tree: Path) -> None:
    os.symlink("l2.png", tree / "l1.png")
    os.symlink("l1.png", tree / "l2.png")
    assert "l1.png" in names(walk_images(tree, recursive=False), tree)
    assert "l1.png" not in names(list_images(tree), tree)  # data folders hold regular files only
