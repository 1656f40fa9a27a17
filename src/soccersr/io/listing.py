"""Finding image files: which names are images, and the walks over folders and globs.

Standard library only. Hidden names (a leading dot: our own temporary files among them) are
never images, and hidden folders are never entered. Walks follow symlinked folders but visit
each real folder once, so a link back up the tree is not an endless loop.
"""

from __future__ import annotations

import fnmatch
import glob
import os
from collections.abc import Iterator
from pathlib import Path

SUFFIX_FORMATS = {
    ".jpg": "jpeg",
    ".jpeg": "jpeg",
    ".jpe": "jpeg",
    ".png": "png",
    ".webp": "webp",
    ".tif": "tiff",
    ".tiff": "tiff",
    ".bmp": "bmp",
}
"""Format of each image file extension we read (lower case)."""
IMAGE_SUFFIXES = frozenset(SUFFIX_FORMATS)
"""The file extensions every command treats as images (one list for upscale, data, degrade, eval)."""


def is_image_name(path: str | os.PathLike[str]) -> bool:
    """True for a visible name with an image extension (case-insensitive); looks at the name only."""
    path = Path(path)
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def list_images(folder: str | os.PathLike[str]) -> list[Path]:
    """The image files directly inside ``folder``, sorted by name (not recursive).

    Raises:
        NotADirectoryError: ``folder`` does not exist or is not a directory.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise NotADirectoryError(f"{folder}: not a directory")
    return sorted((p for p in folder.iterdir() if is_image_name(p) and p.is_file()), key=lambda p: p.name)


def walk_images(
    folder: str | os.PathLike[str], *, recursive: bool = True, exclude: str | os.PathLike[str] | None = None
) -> list[Path]:
    """Image files in ``folder`` (and below, if ``recursive``): each folder's files sorted by name,
    then its subfolders in name order. ``exclude`` is a folder never entered (an output folder).

    Names are taken as they are listed: a broken link or a link loop named ``x.png`` is included,
    and reading it gives the reason.
    """
    found = []
    for root, files in _walk(Path(folder), recursive=recursive, exclude=exclude):
        found += [root / name for name in files if is_image_name(name)]
    return found


def glob_paths(pattern: str, *, recursive: bool) -> list[Path]:
    """The paths matching a glob, sorted. With ``recursive``, ``**`` matches any number of folders.

    Unlike ``glob.glob``, a recursive ``**`` walks each real folder once: ``glob.glob`` follows a
    symlinked folder that points back up the tree again and again, and never ends.
    """
    if not (recursive and "**" in pattern):
        return [Path(p) for p in sorted(glob.glob(pattern, recursive=recursive))]
    base = glob_base(pattern)
    rest = Path(pattern).parts[len(base.parts) :]
    matches = []
    for root, files in _walk(base, recursive=True, exclude=None):
        relative = root.relative_to(base).parts
        if _matches(relative, rest):
            matches.append(root)
        matches += [root / name for name in files if _matches((*relative, name), rest)]
    return sorted(matches, key=str)


def glob_base(pattern: str) -> Path:
    """The folder part of a glob before its first wildcard (outputs keep paths relative to it)."""
    fixed = []
    for part in Path(pattern).parts[:-1]:
        if glob.has_magic(part):
            break
        fixed.append(part)
    return Path(*fixed) if fixed else Path(".")


def _walk(folder: Path, *, recursive: bool, exclude: str | os.PathLike[str] | None) -> Iterator[tuple[Path, list[str]]]:
    """(folder, its sorted visible file names) for ``folder`` and, if ``recursive``, every visible
    folder below it, each real folder once."""
    excluded = os.path.realpath(exclude) if exclude is not None else None
    seen = {_identity(folder)}
    for root, dirs, files in os.walk(folder, followlinks=True):
        root_path = Path(root)
        kept = []
        for name in sorted(dirs):
            path = root_path / name
            key = _identity(path)
            if name.startswith(".") or key is None or key in seen or os.path.realpath(path) == excluded:
                continue
            seen.add(key)
            kept.append(name)
        dirs[:] = kept if recursive else []
        yield root_path, sorted(name for name in files if not name.startswith("."))


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_dev, stat.st_ino


def _matches(parts: tuple[str, ...], pattern: tuple[str, ...]) -> bool:
    """Whether path parts match glob parts, ``**`` standing for any number of visible parts."""
    if not pattern:
        return not parts
    head, rest = pattern[0], pattern[1:]
    if head == "**":
        return any(_matches(parts[i:], rest) for i in range(len(parts) + 1))
    if not parts or (parts[0].startswith(".") and not head.startswith(".")):
        return False  # like glob: wildcards do not match hidden names
    return fnmatch.fnmatchcase(parts[0], head) and _matches(parts[1:], rest)
