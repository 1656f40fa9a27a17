"""Training and validation datasets.

``HRImageDataset`` is the ground-truth side of Real-ESRGAN's ``RealESRGANDataset``: it reads the
images listed in a meta_info file, flips them (and rotates them with ``use_rot``), pads images smaller
than ``crop_pad_size`` with reflection at the bottom/right and random-crops them to
``crop_pad_size`` square. The degradation kernels and everything else happen in ``soccersr.degrade``.
With ``mask_root``, each image's player mask travels with it as a fourth channel through the same
flips and crop, so the two stay aligned pixel for pixel.

Randomness comes only from a numpy Generator seeded by ``(seed, epoch, index)``: an item is the same
whatever the worker count or the order in which items are asked for. Call ``set_epoch(e)`` before
iterating the loader for epoch ``e``; the epoch lives in shared memory, so it also reaches
persistent DataLoader workers.

``PairedImageDataset`` serves (LQ, HR) validation pairs matched by file stem.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

from soccersr.data.meta import read_meta_info
from soccersr.errors import SoccersrError
from soccersr.io.images import ImageReadError, read_image
from soccersr.io.listing import list_images

log = logging.getLogger(__name__)

_MAX_LISTED = 20  # file names listed in one error or warning; the rest are counted
_MAX_REPLACEMENTS = 20  # replacement images tried for one bad image before giving up


class DatasetError(SoccersrError, ValueError):
    """Bad training or validation data; the message names the files and the reason."""


def _names(paths: list[str]) -> str:
    shown = ", ".join(paths[:_MAX_LISTED])
    more = len(paths) - _MAX_LISTED
    return shown + (f" and {more} more" if more > 0 else "")


def augment(image: np.ndarray, rng: np.random.Generator, *, hflip: bool, rot: bool) -> np.ndarray:
    """Random horizontal flip, and with ``rot`` vertical flip and transpose (8 orientations), as views.

    Three uniforms are always drawn, so the crop position that follows does not depend on the flags.
    """
    draw_h, draw_v, draw_t = rng.random(3)
    if hflip and draw_h < 0.5:
        image = image[:, ::-1]
    if rot and draw_v < 0.5:
        image = image[::-1]
    if rot and draw_t < 0.5:
        image = image.transpose(1, 0, 2)
    return image


def pad_and_crop(image: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """Reflect-pad (bottom/right, OpenCV ``BORDER_REFLECT_101``) up to ``size``, then random-crop ``size`` x ``size``."""
    height, width = image.shape[:2]
    pad_h, pad_w = max(0, size - height), max(0, size - width)
    if pad_h or pad_w:
        image = np.pad(image, ((0, pad_h), (0, pad_w), (0, 0)), mode="reflect")
        height, width = image.shape[:2]
    top = int(rng.integers(0, height - size + 1))
    left = int(rng.integers(0, width - size + 1))
    return image[top : top + size, left : left + size]


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """HxWx3 float32 -> contiguous (3,H,W) tensor."""
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))


class HRImageDataset(Dataset):
    """Ground-truth crops for on-the-fly degradation: items ``{"gt": (3,S,S) float32 RGB [0,1], "gt_path": str}``.

    Args:
        meta_info: the meta_info file (one path per line, relative to ``dataroot_gt``).
        dataroot_gt: the folder the meta_info lines are relative to.
        crop_pad_size: S, the side of the returned square (400 in the official recipe).
        use_hflip: random horizontal flips.
        use_rot: also random vertical flips and transposes.
        on_bad_image: ``"skip"`` drops missing files at construction (one warning listing them) and
            replaces unreadable or too-small images at read time by another, deterministically chosen
            image (one warning each); ``"error"`` raises ``DatasetError`` naming the file.
        seed: base seed (>= 0) of the per-item generators.
        mask_root: a folder with a player mask per image, at the meta_info path with a ``.png`` suffix
            (8-bit, > 127 on players); items then also hold ``"player_mask"``: (1,S,S) float32 0/1.
            A missing or mismatched mask makes its image bad (skipped or an error, as above).
        min_size: images whose shorter side is below this are bad; default ``crop_pad_size // 2``
            (smaller images would be mostly reflection padding).

    Raises:
        DatasetError: the meta_info file is missing or lists nothing usable, or (``"error"``) lists
            missing files.
    """

    def __init__(
        self,
        meta_info: Path,
        dataroot_gt: Path,
        *,
        crop_pad_size: int = 400,
        use_hflip: bool = True,
        use_rot: bool = False,
        on_bad_image: str = "skip",
        seed: int = 0,
        min_size: int | None = None,
        mask_root: Path | None = None,
    ) -> None:
        if crop_pad_size < 1:
            raise ValueError(f"crop_pad_size must be >= 1, got {crop_pad_size}")
        if on_bad_image not in ("skip", "error"):
            raise ValueError(f"on_bad_image must be 'skip' or 'error', got {on_bad_image!r}")
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        self.crop_pad_size = crop_pad_size
        self.use_hflip = use_hflip
        self.use_rot = use_rot
        self.on_bad_image = on_bad_image
        self.seed = seed
        self.min_size = crop_pad_size // 2 if min_size is None else min_size
        try:
            lines = read_meta_info(Path(meta_info))
        except FileNotFoundError as exc:
            raise DatasetError(str(exc)) from exc
        root = Path(dataroot_gt)
        paths = [root / line for line in lines]
        self.mask_root = None if mask_root is None else Path(mask_root)
        self.root = root
        missing = [str(p) for p in paths if not p.is_file()]
        if missing and on_bad_image == "error":
            raise DatasetError(f"{meta_info}: {len(missing)} listed file(s) missing: {_names(missing)}")
        if missing:
            log.warning("%s: skipping %d missing file(s): %s", meta_info, len(missing), _names(missing))
            gone = set(missing)
            paths = [p for p in paths if str(p) not in gone]
        if not paths:
            raise DatasetError(f"{meta_info}: no usable images (the file lists {len(lines)}, root {root})")
        self.paths: list[Path] = paths
        # Shared memory, so set_epoch also reaches DataLoader workers that are already running.
        self._epoch = torch.zeros((), dtype=torch.int64).share_memory_()
        self._bad: set[int] = set()  # per process; only saves re-reading and re-warning

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def epoch(self) -> int:
        return int(self._epoch)

    def set_epoch(self, epoch: int) -> None:
        """Select the random stream of ``epoch`` (call before iterating the loader)."""
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}")
        self._epoch.fill_(epoch)

    def __getitem__(self, index: int) -> dict[str, object]:
        if not 0 <= index < len(self.paths):
            raise IndexError(f"index {index} out of range for {len(self.paths)} images")
        augment_seq, replace_seq = np.random.SeedSequence([self.seed, self.epoch, index]).spawn(2)
        replacements = np.random.default_rng(replace_seq)
        chosen = index
        image = self._load(chosen)
        tries = 0
        while image is None:
            tries += 1
            if tries > _MAX_REPLACEMENTS:
                raise DatasetError(
                    f"{self.paths[index]}: bad image, and {_MAX_REPLACEMENTS} replacement images were bad too"
                )
            chosen = int(replacements.integers(len(self.paths)))
            image = self._load(chosen)
        rng = np.random.default_rng(augment_seq)
        image = augment(image, rng, hflip=self.use_hflip, rot=self.use_rot)
        image = pad_and_crop(image, self.crop_pad_size, rng)
        item: dict[str, object] = {"gt": to_tensor(image[..., :3]), "gt_path": str(self.paths[chosen])}
        if self.mask_root is not None:
            item["player_mask"] = to_tensor(image[..., 3:])
        return item

    def mask_path(self, index: int) -> Path:
        """Where the player mask of image ``index`` is (``mask_root`` set)."""
        assert self.mask_root is not None
        return (self.mask_root / self.paths[index].relative_to(self.root)).with_suffix(".png")

    def _load(self, index: int) -> np.ndarray | None:
        """The image at ``index``, or ``None`` when it is bad and ``on_bad_image == "skip"``."""
        if index in self._bad:
            return None
        path = self.paths[index]
        try:
            image = read_image(path, max_pixels=None).rgb
        except ImageReadError as exc:
            reason = str(exc)
        else:
            height, width = image.shape[:2]
            if min(height, width) < self.min_size:
                reason = f"{path}: too small ({width}x{height}, the shorter side must be >= {self.min_size})"
            elif self.mask_root is None:
                return image
            else:
                with_mask, reason = self._with_mask(index, image)
                if with_mask is not None:
                    return with_mask
        if self.on_bad_image == "error":
            raise DatasetError(reason)
        log.warning("skipping bad training image: %s", reason)
        self._bad.add(index)
        return None

    def _with_mask(self, index: int, image: np.ndarray) -> tuple[np.ndarray | None, str]:
        """``image`` with its player mask as a fourth channel, or None and why not."""
        path = self.mask_path(index)
        try:
            mask = read_image(path, max_pixels=None).rgb
        except ImageReadError as exc:
            return None, f"{self.paths[index]}: its player mask: {exc}"
        if mask.shape[:2] != image.shape[:2]:
            size = f"{mask.shape[1]}x{mask.shape[0]}"
            return (
                None,
                f"{self.paths[index]}: its player mask {path} is {size}, the image {image.shape[1]}x{image.shape[0]}",
            )
        players = (mask.mean(axis=2, keepdims=True) > 0.5).astype(np.float32)
        return np.concatenate([image, players], axis=2), ""


class PairedImageDataset(Dataset):
    """Validation pairs ``{"lq": (3,h,w), "gt": (3,h*s,w*s), "name": stem}`` matched by file stem.

    LQ and HR may differ in format (``x.png`` pairs with ``x.jpg``). An HR image up to ``scale - 1``
    pixels larger than ``LQ * scale`` is cropped at the bottom/right (the official mod-crop); any other
    size mismatch is an error naming both files. Sizes are checked from the file headers at
    construction, so a bad pair fails before validation starts.

    Raises:
        DatasetError: a folder is missing or empty, a stem appears twice in a folder, an LQ image has no
            HR partner, or the sizes do not match.
    """

    def __init__(self, lq_dir: Path, hr_dir: Path, *, scale: int = 4) -> None:
        if scale < 1:
            raise ValueError(f"scale must be >= 1, got {scale}")
        self.scale = scale
        lq = self._by_stem(Path(lq_dir))
        hr = self._by_stem(Path(hr_dir))
        orphans = sorted(set(lq) - set(hr))
        if orphans:
            raise DatasetError(f"{lq_dir}: no HR image in {hr_dir} for: {_names([lq[s].name for s in orphans])}")
        unused = sorted(set(hr) - set(lq))
        if unused:
            log.warning("%s: %d HR image(s) without an LQ partner ignored: %s", hr_dir, len(unused), _names(unused))
        self.pairs: list[tuple[str, Path, Path]] = [(stem, lq[stem], hr[stem]) for stem in sorted(lq)]
        for _, lq_path, hr_path in self.pairs:
            self._check_sizes(_image_size(lq_path), _image_size(hr_path), lq_path, hr_path)

    @staticmethod
    def _by_stem(folder: Path) -> dict[str, Path]:
        try:
            images = list_images(folder)
        except NotADirectoryError as exc:
            raise DatasetError(str(exc)) from exc
        if not images:
            raise DatasetError(f"{folder}: no images")
        by_stem: dict[str, Path] = {}
        for path in images:
            if path.stem in by_stem:
                raise DatasetError(
                    f"{folder}: two images with the stem {path.stem!r}: {by_stem[path.stem].name}, {path.name}"
                )
            by_stem[path.stem] = path
        return by_stem

    def _check_sizes(self, lq_size: tuple[int, int], hr_size: tuple[int, int], lq_path: Path, hr_path: Path) -> None:
        (lw, lh), (hw, hh), s = lq_size, hr_size, self.scale
        if not (lw * s <= hw < (lw + 1) * s and lh * s <= hh < (lh + 1) * s):
            raise DatasetError(
                f"{hr_path} is {hw}x{hh} but {lq_path} is {lw}x{lh}: x{s} needs HR {lw * s}x{lh * s}"
                f" (up to {s - 1} px more is cropped)"
            )

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict[str, object]:
        stem, lq_path, hr_path = self.pairs[index]
        try:
            lq = read_image(lq_path, max_pixels=None).rgb
            hr = read_image(hr_path, max_pixels=None).rgb
        except ImageReadError as exc:
            raise DatasetError(str(exc)) from exc
        (lh, lw), (hh, hw) = lq.shape[:2], hr.shape[:2]
        self._check_sizes((lw, lh), (hw, hh), lq_path, hr_path)  # the decoded size is what counts
        hr = hr[: lh * self.scale, : lw * self.scale]
        return {"lq": to_tensor(lq), "gt": to_tensor(hr), "name": stem}


def _image_size(path: Path) -> tuple[int, int]:
    """``(width, height)`` from the file header, without decoding the pixels."""
    try:
        with Image.open(path) as image:
            return image.size
    except (OSError, UnidentifiedImageError) as exc:
        raise DatasetError(f"{path}: not a readable image: {exc}") from exc
