"""Data for the soccer-x4plus fine-tune: split the shared soccer frames by game and build the sets.

Two steps, so that only small JPEG sources travel to a GPU machine:

    python recipes/soccer_x4plus/prepare.py collect --shared ../shared/data/soccer-hr -o .devrun/soccer
    python recipes/soccer_x4plus/prepare.py build -o .devrun/soccer

``collect`` copies the original JPEGs of each split (whole games only, so nothing of an evaluation
game is ever trained on) and the player boxes of every frame that has them (required for the
validation and evaluation frames). It also decodes a few frames of the two SoccerTrack wide-angle
clips (``soccersr frames``: a second domain, an amateur match on artificial turf) and keeps them
downscaled x0.5, as lossless WebP: the GPU machine has no PyAV, and the full-size PNGs would not fit
the 64 MiB carry. ``build`` makes:

- ``train/hr``: the training frames downscaled x0.5 (INTER_AREA). The sources are q~75 JPEGs of a
  compressed broadcast (and a 2 Mbit/s HEVC stream for the clips); halving them averages the block
  and ringing artifacts away, so the model learns clean detail instead of reproducing compression
  (see PROVENANCE.md of the data). Both clips show the same match, so they serve training only.
- ``train/multiscale``: copies of every training GT frame at x0.5 and x0.25 (PIL LANCZOS, as the
  official multiscale script), so that players appear at more sizes (v2; ``--no-multiscale`` for v1's set).
- ``train/crops`` + ``train/meta_info.txt``: official 400/200 sliding-window sub-images of both.
- ``train/masks/crops*``: the player mask of every sub-image (white inside the YOLO person boxes, grown
  10% as in the evaluation; black for the clip frames, which have no boxes), at the same relative path,
  for ``train.pixel_opt.player_weight`` with ``datasets.train.dataroot_mask: .devrun/soccer/train/masks``.
- ``val/hr`` + ``val/lq`` + ``val/labels``: the validation game, x0.5, with LQ synthesised by the
  training degradation (fixed seed), for model selection during training, and its player boxes, so
  that ``choose.py`` can pick a checkpoint by the gate's own checks, players included.
- ``eval/hr`` + ``eval/labels``: the held-out games (unaugmented frames only), x0.5, with their
  YOLO player boxes (normalised, so they stay valid after the resize). ``soccersr eval`` synthesises
  their LQ itself from a seed.

This is project tooling, not product code: it reads ../shared, which the package never does.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from soccersr.data.crops import CropConfig, crop_folder, lanczos_resize
from soccersr.data.frames import FrameConfig, extract_frames
from soccersr.data.meta import relative_lines, write_meta_info
from soccersr.degrade import degrade_image
from soccersr.eval.boxes import person_mask, read_boxes
from soccersr.io.images import DecodedImage, ImageReadError, read_image, to_integer, write_image
from soccersr.io.listing import list_images

# Whole games held out. Evaluation: three games with the most unaugmented frames after 744b27;
# validation (model selection): one more game. Every other game is training data.
EVAL_GAMES = ("744b27", "4b770a", "54745b")
VAL_GAMES = ("121364",)
VAL_SEED = 1234
# Multiscale copies of the training GT (v2): far players at half and a quarter of their size.
MULTISCALE_FACTORS = (0.5, 0.25)
_GAME_ID = re.compile(r"^([0-9a-f]{6})_\d+", re.IGNORECASE)
_MULTISCALE_SUFFIX = re.compile(r"_x[0-9.]+$")


def game_id(path: str | Path) -> str:
    """The DFL game id of a frame or crop file name: ``4b770a_1_4.jpg`` (and ``4b770a_1_4T0_s001.png``) -> ``4b770a``.

    Raises:
        ValueError: the name does not start with a 6-hex-digit game id, an underscore and a clip number.
    """
    name = Path(path).name
    match = _GAME_ID.match(name)
    if match is None:
        raise ValueError(f"{name}: not a DFL frame name (expected <6 hex game id>_<clip>_..., e.g. 4b770a_1_4.jpg)")
    return match.group(1).lower()


def collect(shared: Path, out: Path, max_train: int | None, clip_frames: int) -> None:
    dfl = shared / "dfl-bundesliga"
    frames = sorted((dfl / "orig").glob("*.jpg")) + sorted((dfl / "aug").glob("*.jpg"))
    split: dict[str, list[Path]] = {"train": [], "val": [], "eval": []}
    for frame in frames:
        game = game_id(frame)
        if game in EVAL_GAMES:
            if frame.parent.name == "orig":  # evaluate on unaugmented colours only
                split["eval"].append(frame)
        elif game in VAL_GAMES:
            split["val"].append(frame)
        else:
            split["train"].append(frame)
    # The carry to a GPU machine is limited: keep an even spread over games when capping.
    if max_train is not None and len(split["train"]) > max_train:
        step = len(split["train"]) / max_train
        split["train"] = [split["train"][int(i * step)] for i in range(max_train)]
    for name, paths in split.items():
        folder = out / "sources" / name
        folder.mkdir(parents=True, exist_ok=True)
        for path in paths:
            shutil.copy2(path, folder / path.name)
    # Every validation and evaluation frame must have its boxes (the players' metrics); the training
    # boxes make the player masks of the weighted L1, and a frame without any just gets a black mask.
    for name in ("eval", "val", "train"):
        _copy_labels(split[name], dfl / "labels", out / "sources" / f"{name}_labels", required=name != "train")
    clips = _collect_clip_frames(shared / "soccertrack-wideview", out / "sources" / "train_clips", clip_frames)
    # The tiny crops, for the CUDA test cases on a GPU machine (SOCCERSR_SHARED_DATA points here).
    shutil.copytree(shared / "tiny", out / "sources" / "shared" / "tiny", dirs_exist_ok=True)
    games = {name: sorted({game_id(p) for p in paths}) for name, paths in split.items()}
    print(
        "collected: "
        + ", ".join(f"{k} {len(v)} frames from games {games[k]}" for k, v in split.items())
        + f"; {clips} wide-angle clip frames for training"
    )


def _copy_labels(frames: list[Path], src: Path, dst: Path, *, required: bool) -> None:
    """The YOLO box file of each frame (``required``: a missing one stops, naming it)."""
    dst.mkdir(parents=True, exist_ok=True)
    for frame in frames:
        label = src / f"{frame.stem}.txt"
        if label.is_file():
            shutil.copy2(label, dst / label.name)
        elif required:
            raise SystemExit(f"{label}: missing (the box file of {frame})")


def _place_scoring_labels(sources: Path, out: Path) -> None:
    """The validation and evaluation boxes next to their frames (``val/labels``, ``eval/labels``)."""
    for name in ("eval", "val"):
        if (sources / f"{name}_labels").is_dir():
            shutil.copytree(sources / f"{name}_labels", out / name / "labels", dirs_exist_ok=True)


def _collect_clip_frames(clip_dir: Path, dst: Path, per_clip: int) -> int:
    """``per_clip`` frames of each 10 s clip, one every 10/per_clip s from its start, x0.5, lossless WebP."""
    if dst.exists():
        shutil.rmtree(dst)  # a rerun with fewer frames must not keep training on the old ones
    dst.mkdir(parents=True)
    if per_clip < 1:
        return 0
    config = FrameConfig(every=10.0 / per_clip, min_diff=0.0, max_frames=per_clip)
    count = 0
    with tempfile.TemporaryDirectory() as tmp:
        for clip in sorted(clip_dir.glob("*.mp4")):
            extract_frames(clip, Path(tmp), config)
        for frame in list_images(Path(tmp)):
            half = _read_half(frame)[:, :, ::-1]  # OpenCV writes BGR
            if not cv2.imwrite(str(dst / f"{frame.stem}.webp"), half, [cv2.IMWRITE_WEBP_QUALITY, 101]):
                raise SystemExit(f"{dst / frame.stem}.webp: cannot write")
            count += 1
    return count


def _read_rgb(path: Path) -> np.ndarray:
    """8-bit RGB (alpha dropped, gray as three equal channels)."""
    try:
        return to_integer(read_image(path, max_pixels=None).rgb, 8)
    except ImageReadError as e:
        raise SystemExit(str(e)) from None


def _write_png(path: Path, rgb: np.ndarray) -> None:
    write_image(path, DecodedImage.from_pixels(rgb), png_compression=3)


def _read_half(path: Path) -> np.ndarray:
    """The image downscaled x0.5 with INTER_AREA: the GT of every training, validation and evaluation frame."""
    image = _read_rgb(path)
    h, w = image.shape[:2]
    return cv2.resize(image, (w // 2, h // 2), interpolation=cv2.INTER_AREA)


def _halve(src: Path, dst: Path) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    for path in list_images(src):
        _write_png(dst / f"{path.stem}.png", _read_half(path))


def _multiscale(src: Path, dst: Path) -> int:
    """``MULTISCALE_FACTORS`` copies of every image of ``src`` (``<stem>_x0.5.png`` ...); returns the count."""
    if dst.exists():
        shutil.rmtree(dst)  # a rebuild with other factors must not keep the old copies
    dst.mkdir(parents=True)
    count = 0
    for path in list_images(src):
        image = _read_rgb(path)
        h, w = image.shape[:2]
        for factor in MULTISCALE_FACTORS:
            _write_png(
                dst / f"{path.stem}_x{factor:g}.png", lanczos_resize(image, round(w * factor), round(h * factor))
            )
            count += 1
    return count


def _render_masks(images: Path, labels: Path, dst: Path) -> None:
    """A player mask per image of ``images`` (same stem, PNG), from ``labels/<stem>.txt`` (multiscale
    copies ``<stem>_x0.5`` use their frame's boxes: they are normalised); no box file: all black."""
    if dst.exists():
        shutil.rmtree(dst)
    dst.mkdir(parents=True)
    for path in list_images(images):
        with Image.open(path) as image:
            width, height = image.size
        label = labels / f"{_MULTISCALE_SUFFIX.sub('', path.stem)}.txt"
        boxes = read_boxes(label) if label.is_file() else []
        mask = person_mask(boxes, width, height).astype(np.uint8) * 255
        write_image(dst / f"{path.stem}.png", DecodedImage.from_pixels(mask[..., None]), png_compression=3)


def _player_masks(out: Path, crop_cfg: CropConfig, workers: int, multiscale: bool) -> None:
    """``train/masks/crops*``: the frames' player masks, cut into the same sub-images as the frames."""
    train, labels = out / "train", out / "sources" / "train_labels"
    if not labels.is_dir():
        print(f"player masks: none ({labels} is missing: sources collected before the masks existed; rerun collect)")
        return
    masks = train / "masks"
    pairs = [("hr", "crops")] + ([("multiscale", "crops_multiscale")] if multiscale else [])
    for images, crops in pairs:
        _render_masks(train / images, labels, masks / images)
        if (masks / crops).exists():
            shutil.rmtree(masks / crops)
        crop_folder(masks / images, masks / crops, crop_cfg, workers=workers)
    print(f"player masks: {len(list_images(masks / 'crops'))} sub-images (+ multiscale: {multiscale})")


def build(out: Path, workers: int, multiscale: bool = True) -> None:
    sources = out / "sources"
    # A GPU session may carry the training and validation sources only (the carry is small): a
    # missing split is skipped, and the evaluation then runs where the sources are complete.
    for name in ("train", "val", "eval"):
        if (sources / name).is_dir():
            _halve(sources / name, out / name / "hr")
    # The clip frames were halved by collect already (lossless WebP): stored as PNG like the rest.
    if (sources / "train_clips").is_dir():
        for path in list_images(sources / "train_clips"):
            _write_png(out / "train" / "hr" / f"{path.stem}.png", _read_rgb(path))
    crop_cfg = CropConfig(crop_size=400, step=200)
    report = crop_folder(out / "train" / "hr", out / "train" / "crops", crop_cfg, workers=workers)
    folders = [out / "train" / "crops"]
    if multiscale:
        copies = _multiscale(out / "train" / "hr", out / "train" / "multiscale")
        small = crop_folder(out / "train" / "multiscale", out / "train" / "crops_multiscale", crop_cfg, workers=workers)
        folders.append(out / "train" / "crops_multiscale")
        print(f"multiscale: {copies} copies (x{', x'.join(f'{f:g}' for f in MULTISCALE_FACTORS)}), {small}")
    elif (out / "train" / "crops_multiscale").exists():
        shutil.rmtree(out / "train" / "crops_multiscale")
    _player_masks(out, crop_cfg, workers, multiscale)
    lines = [line for _, line in relative_lines(folders, [out / "train"] * len(folders))]
    write_meta_info(lines, out / "train" / "meta_info.txt")
    (out / "val" / "lq").mkdir(parents=True, exist_ok=True)
    for i, path in enumerate(list_images(out / "val" / "hr") if (out / "val" / "hr").is_dir() else []):
        lq = degrade_image(read_image(path, max_pixels=None).rgb, scale=4, seed=VAL_SEED + i)
        write_image(out / "val" / "lq" / path.name, DecodedImage(lq), png_compression=3)
    _place_scoring_labels(sources, out)

    def count(folder: Path) -> int:
        return len(list_images(folder)) if folder.is_dir() else 0

    print(
        f"built: {len(lines)} training crops ({report}), "
        f"{count(out / 'val' / 'hr')} validation frames, {count(out / 'eval' / 'hr')} evaluation frames"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="step", required=True)
    c = sub.add_parser("collect", help="copy the source JPEGs of each split (needs ../shared)")
    c.add_argument("--shared", type=Path, required=True, help="the shared soccer-hr folder")
    c.add_argument("-o", "--out", type=Path, required=True)
    c.add_argument(
        "--max-train",
        type=int,
        default=None,
        help="cap on training frames (default: all; 80 fits a 64 MiB carry to a GPU machine, v1 used 80)",
    )
    c.add_argument(
        "--clip-frames",
        type=int,
        default=5,
        help="frames from each wide-angle clip, 0 for none (default 5; 2 fits the carry, v1 used 2)",
    )
    b = sub.add_parser("build", help="downscale, crop, write meta info and validation LQ")
    b.add_argument("-o", "--out", type=Path, required=True)
    b.add_argument("--workers", type=int, default=2)
    b.add_argument(
        "--no-multiscale",
        dest="multiscale",
        action="store_false",
        help="no x0.5 / x0.25 copies of the training frames (v1's set)",
    )
    args = parser.parse_args(argv)
    if args.step == "collect":
        collect(args.shared, args.out, args.max_train, args.clip_frames)
    else:
        build(args.out, args.workers, args.multiscale)
    return 0


if __name__ == "__main__":
    sys.exit(main())
