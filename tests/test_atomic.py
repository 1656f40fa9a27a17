"""soccersr.io.atomic: the one atomic-write helper every writer uses."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from soccersr.io import atomic
from soccersr.io.atomic import atomic_write, atomic_write_bytes, remove_stale_temporaries


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def test_writes_replace_and_use_normal_permissions(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"new"
    assert target.stat().st_mode & 0o777 == 0o666 & ~_umask()
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_a_writer_that_makes_private_files_still_gets_the_umask_mode(tmp_path: Path, umask: int) -> None:
    """safetensors' save_file writes 0600; every atomic write must end like a normal new file."""
    safetensors_torch = pytest.importorskip("safetensors.torch")
    import torch

    old = os.umask(umask)
    try:
        atomic_write(tmp_path / "w.safetensors", lambda tmp: safetensors_torch.save_file({"a": torch.zeros(2)}, tmp))
        atomic_write(tmp_path / "private.bin", lambda tmp: (tmp.write_bytes(b"x"), tmp.chmod(0o600)))
    finally:
        os.umask(old)
    assert (tmp_path / "w.safetensors").stat().st_mode & 0o777 == 0o666 & ~umask
    assert (tmp_path / "private.bin").stat().st_mode & 0o777 == 0o666 & ~umask


@pytest.mark.parametrize("error", [OSError("disk full"), KeyboardInterrupt()])
def test_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path, error: BaseException) -> None:
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")

    def half_then_fail(tmp: Path) -> None:
        tmp.write_bytes(b"ha")
        raise error

    with pytest.raises(type(error)):
        atomic_write(target, half_then_fail)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


# --- replace=False ---------------------------------------------------------------------------------


@pytest.fixture(params=["renameat2", "link", "check-then-rename"])
def no_replace_method(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each way of renaming without replacing: renameat2, its hard-link fallback, and the last resort."""
    if request.param == "renameat2" and atomic._renameat2() is None:
        pytest.skip("no renameat2 on this system")
    if request.param != "renameat2":
        monkeypatch.setattr(atomic, "_renameat2", lambda: None)
    if request.param == "check-then-rename":

        def no_links(src: object, dst: object) -> None:
            raise PermissionError(1, "Operation not permitted")  # what FAT says

        monkeypatch.setattr(atomic.os, "link", no_links)
    return request.param


def test_no_replace_writes_a_new_file(tmp_path: Path, no_replace_method: str) -> None:
    atomic_write_bytes(tmp_path / "new.bin", b"mine", replace=False)
    assert (tmp_path / "new.bin").read_bytes() == b"mine"
    assert [p.name for p in tmp_path.iterdir()] == ["new.bin"]


def test_no_replace_refuses_a_file_created_while_writing(tmp_path: Path, no_replace_method: str) -> None:
    """The race of issue 13: the target did not exist when the write began, another process made it."""
    target = tmp_path / "out.png"

    def write_while_someone_else_creates_the_target(tmp: Path) -> None:
        tmp.write_bytes(b"mine")
        target.write_bytes(b"theirs")

    with pytest.raises(FileExistsError):
        atomic_write(target, write_while_someone_else_creates_the_target, replace=False)
    assert target.read_bytes() == b"theirs"
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]  # no temporary left


def test_no_replace_refuses_a_dangling_symlink(tmp_path: Path, no_replace_method: str) -> None:
    (tmp_path / "out.png").symlink_to(tmp_path / "elsewhere.png")
    with pytest.raises(FileExistsError):
        atomic_write_bytes(tmp_path / "out.png", b"mine", replace=False)
    assert not (tmp_path / "elsewhere.png").exists()


# --- temporaries of killed processes ----------------------------------------------------------------


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_stale_temporaries_of_dead_processes_are_removed_on_the_next_write(tmp_path: Path) -> None:
    dead = tmp_path / f".photo_x4.png.{_dead_pid()}.0123abcd.tmp"
    dead.write_bytes(b"half a png")
    live_child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        live = tmp_path / f".other.png.{live_child.pid}.89abcdef.tmp"
        mine = tmp_path / f".mine.png.{os.getpid()}.00000000.tmp"
        unrelated = [tmp_path / ".notes.tmp", tmp_path / f".x.{_dead_pid()}.tmp", tmp_path / "a.1.0123abcd.tmp"]
        for path in [live, mine, *unrelated]:
            path.write_bytes(b"keep")
        atomic_write_bytes(tmp_path / "new.png", b"png")
        assert not dead.exists()
        assert all(path.read_bytes() == b"keep" for path in [live, mine, *unrelated])
    finally:
        live_child.kill()
        live_child.wait()


def test_temporaries_written_on_another_machine_are_never_swept(tmp_path: Path) -> None:
    # Cluster workers on several machines write into one shared folder: a PID that is dead here
    # may be a live writer there. This used to be removed by the first write on this machine.
    other_machine = "0" * 8 if atomic.pid_space() != "0" * 8 else "1" * 8
    theirs = tmp_path / f".photo_x4.png.{_dead_pid()}-{other_machine}.0123abcd.tmp"
    ours = tmp_path / f".other_x4.png.{_dead_pid()}-{atomic.pid_space()}.0123abcd.tmp"
    for path in (theirs, ours):
        path.write_bytes(b"half a png")
    assert remove_stale_temporaries(tmp_path) == [ours]
    assert theirs.exists()

    seen = []
    atomic_write(tmp_path / "new.png", lambda tmp: seen.append(tmp.name) or tmp.write_bytes(b"png"))
    assert seen[0].startswith(f".new.png.{os.getpid()}-{atomic.pid_space()}.")  # this machine's name


def test_a_folder_is_swept_once_per_process(tmp_path: Path) -> None:
    atomic_write_bytes(tmp_path / "first.bin", b"1")
    later = tmp_path / f".first.bin.{_dead_pid()}.0123abcd.tmp"
    later.write_bytes(b"left while this process writes here")
    atomic_write_bytes(tmp_path / "second.bin", b"2")
    assert later.exists()  # not listed again on every write (crops write thousands of files)
    assert remove_stale_temporaries(tmp_path) == [later]
    assert not later.exists()


def test_sweeping_never_follows_or_removes_folders(tmp_path: Path) -> None:
    folder = tmp_path / f".dir.{_dead_pid()}.0123abcd.tmp"
    folder.mkdir()
    assert remove_stale_temporaries(tmp_path) == []
    assert folder.is_dir()
    assert remove_stale_temporaries(tmp_path / "missing") == []
