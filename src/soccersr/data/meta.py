"""The meta_info file: one ground-truth image path per line, relative to its root.

Same format as Real-ESRGAN's ``scripts/generate_meta_info.py`` and the earlier Paddle tool: for each
(input folder, root) pair, the images of the folder sorted by name, each written as its path relative
to the root (``DF2K_HR_sub/000001_s001.png``). The training dataset joins each line to its
``dataroot_gt``. Paths are written with ``/`` on every OS so a file made on Windows works on Linux.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from soccersr.io.atomic import atomic_write_bytes
from soccersr.io.images import ImageReadError, read_image
from soccersr.io.listing import list_images


def relative_lines(inputs: Sequence[Path], roots: Sequence[Path]) -> list[tuple[Path, str]]:
    """``(image path, meta line)`` for every image of every input folder, folder by folder, sorted by name.

    Raises:
        ValueError: ``inputs`` and ``roots`` differ in length.
        NotADirectoryError: an input folder does not exist.
    """
    if len(inputs) != len(roots):
        raise ValueError(f"--input and --root need the same number of folders, got {len(inputs)} and {len(roots)}")
    pairs: list[tuple[Path, str]] = []
    for folder, root in zip(inputs, roots, strict=True):
        for image in list_images(Path(folder)):
            pairs.append((image, Path(os.path.relpath(image, root)).as_posix()))
    return pairs


def check_readable(
    paths: Iterable[Path], *, threads: int = 4, progress: Callable[[], None] | None = None
) -> dict[Path, str]:
    """Decode every image; return ``{path: reason}`` for those that cannot be read.

    The decoders release the GIL, so a few threads make this several times faster.
    """

    def reason(path: Path) -> str | None:
        try:
            read_image(path, max_pixels=None)
        except ImageReadError as exc:
            return str(exc)
        return None

    bad: dict[Path, str] = {}
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        paths = list(paths)
        for path, why in zip(paths, pool.map(reason, paths), strict=True):
            if why is not None:
                bad[path] = why
            if progress is not None:
                progress()
    return bad


def write_meta_info(lines: Iterable[str], meta_file: Path) -> None:
    """Atomically write the meta_info file (one line each, ``\\n`` endings), creating its folder."""
    meta_file = Path(meta_file)
    meta_file.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(meta_file, "".join(f"{line}\n" for line in lines).encode("utf-8"))


def read_meta_info(meta_file: Path) -> list[str]:
    """The non-empty lines of a meta_info file, stripped (as the official dataset reads them).

    Raises:
        FileNotFoundError: the file does not exist (the message names it).
    """
    meta_file = Path(meta_file)
    if not meta_file.is_file():
        raise FileNotFoundError(f"{meta_file}: meta_info file not found")
    with meta_file.open(encoding="utf-8") as f:
        return [line.strip() for line in f if line.strip()]
