"""HRImageDataset / PairedImageDataset: crops, padding, flips, seeding, bad data."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from soccersr.data.dataset import DatasetError, HRImageDataset, PairedImageDataset


def _coordinate_image(height: int, width: int) -> np.ndarray:
    """BGR uint8 with R = x, G = y (B = 50): a crop's first pixel says where it came from."""
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([np.full_like(y, 50), y, x], axis=2).astype(np.uint8)


def _make_set(root: Path, images: dict[str, np.ndarray], lines: list[str] | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, image in images.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / name), image)
    meta = root / "meta_info.txt"
    meta.write_text("".join(f"{line}\n" for line in (lines if lines is not None else sorted(images))))
    return meta


def _origin(gt: torch.Tensor) -> tuple[int, int]:
    """(top, left) of an unflipped crop of a coordinate image."""
    return round(float(gt[1, 0, 0]) * 255), round(float(gt[0, 0, 0]) * 255)


def test_crop_is_an_exact_window_and_positions_are_pinned(tmp_path: Path) -> None:
    source = _coordinate_image(100, 120)
    meta = _make_set(tmp_path, {"a.png": source})
    ds = HRImageDataset(meta, tmp_path, crop_pad_size=64, use_hflip=False, seed=0)
    item = ds[0]
    gt = item["gt"]
    assert gt.shape == (3, 64, 64) and gt.dtype == torch.float32
    assert item["gt_path"] == str(tmp_path / "a.png")
    top, left = _origin(gt)
    expected = source[top : top + 64, left : left + 64, ::-1].transpose(2, 0, 1) / np.float32(255)  # BGR -> RGB
    np.testing.assert_array_equal(gt.numpy(), expected.astype(np.float32))
    # The (seed, epoch, index) -> position contract, pinned (numpy PCG64 + SeedSequence are stable).
    positions = []
    for epoch in range(3):
        ds.set_epoch(epoch)
        positions.append(_origin(ds[0]["gt"]))
    assert positions == PINNED_POSITIONS


PINNED_POSITIONS = [(7, 7), (1, 16), (36, 0)]


def test_small_images_are_reflect_padded_like_opencv(tmp_path: Path) -> None:
    source = _coordinate_image(40, 50)
    meta = _make_set(tmp_path, {"small.png": source})
    ds = HRImageDataset(meta, tmp_path, crop_pad_size=64, use_hflip=False)
    expected = cv2.copyMakeBorder(source, 0, 24, 0, 14, cv2.BORDER_REFLECT_101)  # the official padding
    expected = expected[..., ::-1].transpose(2, 0, 1).astype(np.float32) / 255
    np.testing.assert_array_equal(ds[0]["gt"].numpy(), expected)


def test_flips_and_rotations(tmp_path: Path) -> None:
    source = _coordinate_image(32, 32)
    meta = _make_set(tmp_path, {"sq.png": source})
    rgb = torch.from_numpy(source[..., ::-1].transpose(2, 0, 1).astype(np.float32) / 255)
    dihedral = [rgb, rgb.flip(2), rgb.flip(1), rgb.flip(1).flip(2)]
    dihedral += [d.transpose(1, 2) for d in dihedral]

    def orientations(ds: HRImageDataset) -> set[int]:
        seen = set()
        for epoch in range(24):
            ds.set_epoch(epoch)
            gt = ds[0]["gt"]
            seen.add(next(i for i, d in enumerate(dihedral) if torch.equal(gt, d)))
        return seen

    assert orientations(HRImageDataset(meta, tmp_path, crop_pad_size=32, use_hflip=False)) == {0}
    assert orientations(HRImageDataset(meta, tmp_path, crop_pad_size=32)) == {0, 1}
    assert len(orientations(HRImageDataset(meta, tmp_path, crop_pad_size=32, use_rot=True))) >= 6


def test_reproducible_for_a_seed_and_independent_of_workers(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    images = {f"img{i}.png": rng.integers(0, 256, (48 + i, 56, 3), dtype=np.uint8) for i in range(6)}
    meta = _make_set(tmp_path, images)

    def epoch_batches(ds: HRImageDataset, loader: DataLoader, epoch: int) -> torch.Tensor:
        ds.set_epoch(epoch)
        return torch.cat([batch["gt"] for batch in loader])

    ds = HRImageDataset(meta, tmp_path, crop_pad_size=32, use_rot=True, seed=7)
    serial = [epoch_batches(ds, DataLoader(ds, batch_size=2), epoch) for epoch in (0, 1)]
    assert not torch.equal(serial[0], serial[1])  # a new epoch draws new crops
    again = HRImageDataset(meta, tmp_path, crop_pad_size=32, use_rot=True, seed=7)
    assert torch.equal(torch.stack([again[i]["gt"] for i in range(6)]), serial[0])
    other_seed = HRImageDataset(meta, tmp_path, crop_pad_size=32, use_rot=True, seed=8)
    assert not torch.equal(torch.stack([other_seed[i]["gt"] for i in range(6)]), serial[0])
    # Two persistent workers: same items, and set_epoch reaches the already-running workers.
    loader = DataLoader(ds, batch_size=2, num_workers=2, persistent_workers=True)
    parallel = [epoch_batches(ds, loader, epoch) for epoch in (0, 1)]
    assert torch.equal(parallel[0], serial[0]) and torch.equal(parallel[1], serial[1])


def test_missing_meta_file(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="nope.txt: meta_info file not found"):
        HRImageDataset(tmp_path / "nope.txt", tmp_path)


def test_missing_files_error_or_skip(tmp_path: Path, caplog) -> None:
    meta = _make_set(tmp_path, {"ok.png": _coordinate_image(40, 40)}, lines=["ok.png", "gone1.png", "sub/gone2.png"])
    with pytest.raises(DatasetError, match=r"2 listed file\(s\) missing: .*gone1.png, .*sub/gone2.png"):
        HRImageDataset(meta, tmp_path, crop_pad_size=32, on_bad_image="error")
    with caplog.at_level(logging.WARNING):
        ds = HRImageDataset(meta, tmp_path, crop_pad_size=32, on_bad_image="skip")
    assert len(ds) == 1
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "gone1.png" in warnings[0] and "gone2.png" in warnings[0]
    meta.write_text("gone1.png\n")
    with pytest.raises(DatasetError, match="no usable images"):
        HRImageDataset(meta, tmp_path, on_bad_image="skip")


@pytest.mark.parametrize(
    "bad_name, write_bad, reason",
    [
        ("corrupt.png", lambda p: p.write_bytes(b"\x89PNG\r\n\x1a\nnot really"), "truncated PNG"),
        ("tiny.png", lambda p: cv2.imwrite(str(p), _coordinate_image(10, 40)), r"too small \(40x10"),
    ],
)
def test_bad_image_at_read_time(tmp_path: Path, caplog, bad_name, write_bad, reason) -> None:
    good = {f"good{i}.png": _coordinate_image(40, 40 + i) for i in range(3)}
    meta = _make_set(tmp_path, good, lines=[bad_name, *sorted(good)])
    write_bad(tmp_path / bad_name)

    strict = HRImageDataset(meta, tmp_path, crop_pad_size=32, on_bad_image="error")
    with pytest.raises(DatasetError, match=f"{bad_name}: {reason}"):
        strict[0]
    assert strict[1]["gt"].shape == (3, 32, 32)  # the good ones still read

    with caplog.at_level(logging.WARNING):
        lenient = HRImageDataset(meta, tmp_path, crop_pad_size=32, on_bad_image="skip")
        item = lenient[0]
    assert item["gt"].shape == (3, 32, 32)
    assert Path(item["gt_path"]).name in good  # replaced by a good image ...
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(bad_name in w and "skipping bad training image" in w for w in warnings)
    fresh = HRImageDataset(meta, tmp_path, crop_pad_size=32, on_bad_image="skip")  # ... chosen deterministically
    again = fresh[0]
    assert again["gt_path"] == item["gt_path"] and torch.equal(again["gt"], item["gt"])


def test_all_bad_images_give_a_clear_error(tmp_path: Path) -> None:
    meta = _make_set(tmp_path, {"t1.png": _coordinate_image(8, 8), "t2.png": _coordinate_image(9, 9)})
    ds = HRImageDataset(meta, tmp_path, crop_pad_size=32, on_bad_image="skip")
    with pytest.raises(DatasetError, match="replacement images were bad too"):
        ds[0]


def _write(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), image)


def test_paired_dataset_matches_by_stem_and_mod_crops(tmp_path: Path, soccer_crops: Path) -> None:
    hr_image = cv2.imread(str(soccer_crops / "01_players.png"))  # 192x192
    _write(tmp_path / "hr" / "players.jpg", hr_image)
    _write(tmp_path / "lq" / "players.png", cv2.resize(hr_image, (48, 48), interpolation=cv2.INTER_AREA))
    odd = _coordinate_image(50, 66)  # 66x50 HR for a 16x12 LQ: 2 px extra each way, mod-cropped
    _write(tmp_path / "hr" / "odd.png", odd)
    _write(tmp_path / "lq" / "odd.png", odd[::4, ::4][:12, :16])
    ds = PairedImageDataset(tmp_path / "lq", tmp_path / "hr", scale=4)
    assert len(ds) == 2
    first, second = ds[0], ds[1]
    assert (second["name"], second["lq"].shape, second["gt"].shape) == ("players", (3, 48, 48), (3, 192, 192))
    assert (first["name"], first["lq"].shape, first["gt"].shape) == ("odd", (3, 12, 16), (3, 48, 64))
    expected = odd[:48, :64, ::-1].transpose(2, 0, 1).astype(np.float32) / 255
    np.testing.assert_array_equal(first["gt"].numpy(), expected)


def test_paired_dataset_errors_name_the_files(tmp_path: Path, caplog) -> None:
    _write(tmp_path / "lq" / "a.png", np.zeros((12, 16, 3), np.uint8))
    _write(tmp_path / "hr" / "a.png", np.zeros((48, 60, 3), np.uint8))  # 60 wide, x4 of 16 needs 64
    with pytest.raises(DatasetError, match=r"hr/a.png is 60x48 but .*lq/a.png is 16x12: x4 needs HR 64x48"):
        PairedImageDataset(tmp_path / "lq", tmp_path / "hr")
    _write(tmp_path / "hr" / "a.png", np.zeros((48, 64, 3), np.uint8))
    _write(tmp_path / "lq" / "b.png", np.zeros((12, 16, 3), np.uint8))
    with pytest.raises(DatasetError, match="no HR image in .* for: b.png"):
        PairedImageDataset(tmp_path / "lq", tmp_path / "hr")
    (tmp_path / "lq" / "b.png").unlink()
    _write(tmp_path / "hr" / "extra.png", np.zeros((8, 8, 3), np.uint8))
    with caplog.at_level(logging.WARNING):
        assert len(PairedImageDataset(tmp_path / "lq", tmp_path / "hr")) == 1
    assert any("extra" in r.getMessage() for r in caplog.records)
    _write(tmp_path / "lq" / "a.jpg", np.zeros((12, 16, 3), np.uint8))
    with pytest.raises(DatasetError, match="two images with the stem 'a'"):
        PairedImageDataset(tmp_path / "lq", tmp_path / "hr")
    with pytest.raises(DatasetError, match="nope: not a directory"):
        PairedImageDataset(tmp_path / "nope", tmp_path / "hr")


def test_player_masks_follow_every_flip_and_crop(tmp_path: Path, caplog) -> None:
    # The image's blue channel is 255 exactly where the mask is white: after any flip, transpose, crop
    # and padding, the two must still agree pixel for pixel.
    rng = np.random.default_rng(0)
    masks = {name: (rng.random((70, 90)) > 0.7).astype(np.uint8) * 255 for name in ("a.png", "sub/b.png")}
    images = {}
    for name, mask in masks.items():
        image = _coordinate_image(70, 90)
        image[..., 0] = mask  # BGR: blue
        images[name] = image
        (tmp_path / "masks" / name).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(tmp_path / "masks" / name), mask)
    meta = _make_set(tmp_path / "hr", images)
    dataset = HRImageDataset(meta, tmp_path / "hr", crop_pad_size=64, use_rot=True, mask_root=tmp_path / "masks")
    for epoch in range(4):
        dataset.set_epoch(epoch)
        for item in (dataset[0], dataset[1]):
            mask, gt = item["player_mask"], item["gt"]
            assert mask.shape == (1, 64, 64) and set(mask.unique().tolist()) <= {0.0, 1.0}
            assert torch.equal(mask[0], (gt[2] > 0.5).float())
    # No mask, or one of another size: the image is bad (skipped with a warning naming it).
    (tmp_path / "masks" / "sub" / "b.png").unlink()
    cv2.imwrite(str(tmp_path / "masks" / "a.png"), np.zeros((10, 10), np.uint8))
    dataset = HRImageDataset(meta, tmp_path / "hr", crop_pad_size=64, mask_root=tmp_path / "masks")
    with pytest.raises(DatasetError, match="bad image, and 20 replacement images were bad too"):
        dataset[0]
    assert "a.png: its player mask" in caplog.text and "is 10x10, the image 90x70" in caplog.text
    assert "b.png: its player mask" in caplog.text
    strict = HRImageDataset(meta, tmp_path / "hr", crop_pad_size=64, mask_root=tmp_path / "masks", on_bad_image="error")
    with pytest.raises(DatasetError, match=r"a\.png: its player mask .* is 10x10"):
        strict[0]
