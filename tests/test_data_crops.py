"""`soccersr crops`: window geometry, names, multiscale copies, worker determinism, bad files."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from soccersr.cli import main
from soccersr.data.crops import CropConfig, crop_boxes, multiscale_sizes, window_starts


def _coordinate_image(height: int, width: int) -> np.ndarray:
    """BGR uint8 image whose pixel (y, x) holds B = y, G = x, R = 7, so a crop tells where it came from."""
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([y, x, np.full_like(y, 7)], axis=2).astype(np.uint8)


def _boxes_on_disk(folder: Path, stem: str) -> list[tuple[str, int, int, int, int]]:
    """(name, top, left, height, width) of every crop of ``stem``, read back from the pixels."""
    out = []
    for path in sorted(folder.glob(f"{stem}_s*.png")):
        crop = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        out.append((path.name, int(crop[0, 0, 0]), int(crop[0, 0, 1]), crop.shape[0], crop.shape[1]))
    return out


def test_window_starts_by_hand() -> None:
    assert window_starts(10, 4, 3) == [0, 3, 6]  # 6 + 4 == 10: nothing left over
    assert window_starts(11, 4, 3) == [0, 3, 6, 7]  # 1 px left over > thresh 0: a window flush with the border
    assert window_starts(11, 4, 3, thresh_size=1) == [0, 3, 6]  # 1 px is not > 1: dropped
    assert window_starts(12, 4, 3, thresh_size=1) == [0, 3, 6, 8]
    assert window_starts(4, 4, 3) == [0]
    assert window_starts(3, 4, 3) == [0]  # shorter than a window: one window over the whole side
    assert window_starts(1080, 480, 240) == [0, 240, 480, 600]
    assert window_starts(1920, 480, 240) == [0, 240, 480, 720, 960, 1200, 1440]


def test_crop_count_full_hd_defaults() -> None:
    assert len(crop_boxes(1080, 1920, CropConfig())) == 28  # 4 rows x 7 columns


def test_crops_cli_exact_coordinates(tmp_path: Path) -> None:
    src, out = tmp_path / "src", tmp_path / "out"
    src.mkdir()
    cv2.imwrite(str(src / "pic.png"), _coordinate_image(11, 13))
    assert main(["crops", str(src), "-o", str(out), "--crop-size", "4", "--step", "3", "--workers", "1"]) == 0
    # rows start at 0, 3, 6 and 7 (border window), columns at 0, 3, 6, 9 (9 + 4 == 13: no border window)
    expected = [
        (f"pic_s{n:03d}.png", top, left, 4, 4)
        for n, (top, left) in enumerate(((t, lft) for t in (0, 3, 6, 7) for lft in (0, 3, 6, 9)), start=1)
    ]
    assert _boxes_on_disk(out, "pic") == expected
    # The crops are exact copies of the source pixels.
    crop = cv2.imread(str(out / "pic_s016.png"), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(crop, _coordinate_image(11, 13)[7:11, 9:13])


def test_crops_cli_thresh_size_and_narrow_image(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    cv2.imwrite(str(src / "pic.png"), _coordinate_image(11, 13))
    cv2.imwrite(str(src / "narrow.png"), _coordinate_image(9, 3))
    out = tmp_path / "out"
    args = [
        "crops",
        str(src),
        "-o",
        str(out),
        "--crop-size",
        "4",
        "--step",
        "3",
        "--thresh-size",
        "1",
        "--workers",
        "1",
    ]
    assert main(args) == 0
    tops = sorted({box[1] for box in _boxes_on_disk(out, "pic")})
    assert tops == [0, 3, 6]  # the 1-px remainder is not more than thresh_size 1
    assert len(_boxes_on_disk(out, "pic")) == 12
    # 3 px wide < crop 4: one column of full-width crops; 9 tall: rows 0, 3 and the border window 5.
    assert _boxes_on_disk(out, "narrow") == [
        ("narrow_s001.png", 0, 0, 4, 3),
        ("narrow_s002.png", 3, 0, 4, 3),
        ("narrow_s003.png", 5, 0, 4, 3),
    ]


def test_multiscale_sizes() -> None:
    assert multiscale_sizes(1920, 1080) == [(1440, 810), (960, 540), (640, 360), (711, 400)]
    assert multiscale_sizes(1080, 1920) == [(810, 1440), (540, 960), (360, 640), (400, 711)]
    assert multiscale_sizes(300, 200) == [(225, 150), (150, 100), (100, 66)]  # no enlarged shortest-edge-400 copy


def test_crops_cli_multiscale(tmp_path: Path, soccer_crops: Path) -> None:
    src, out = tmp_path / "src", tmp_path / "out"
    src.mkdir()
    rng = np.random.default_rng(0)
    image = cv2.resize(cv2.imread(str(soccer_crops / "01_players.png")), (640, 480), interpolation=cv2.INTER_CUBIC)
    image = (image.astype(np.int16) + rng.integers(-3, 4, image.shape)).clip(0, 255).astype(np.uint8)
    cv2.imwrite(str(src / "frame.png"), image)
    args = ["crops", str(src), "-o", str(out), "--crop-size", "200", "--step", "100", "--multiscale", "--workers", "1"]
    assert main(args) == 0
    copies = {p.name: cv2.imread(str(p)).shape[:2] for p in sorted((out / "multiscale").iterdir())}
    assert copies == {
        "frameT0.png": (360, 480),
        "frameT1.png": (240, 320),
        "frameT2.png": (160, 213),
        "frameT3.png": (400, 533),
    }
    # The copies are PIL LANCZOS resizes, as the official generate_multiscale_DF2K.py makes them.
    reference = np.asarray(Image.fromarray(image[..., ::-1]).resize((320, 240), resample=Image.LANCZOS))
    np.testing.assert_array_equal(cv2.imread(str(out / "multiscale" / "frameT1.png"))[..., ::-1], reference)
    counts = {
        stem: len(list(out.glob(f"{stem}_s*.png"))) for stem in ("frame", "frameT0", "frameT1", "frameT2", "frameT3")
    }
    # rows x cols, by hand: 480x640: (0,100,200,280) x (0,100,..,400,440); 360x480: (0,100,160) x (0,100,200,280);
    # 240x320: (0,40) x (0,100,120); 160x213: one full-height row x (0,13); 400x533: (0,100,200) x (0,100,200,300,333)
    assert counts == {"frame": 4 * 6, "frameT0": 3 * 4, "frameT1": 2 * 3, "frameT2": 1 * 2, "frameT3": 3 * 5}


def test_same_output_with_one_or_two_workers(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    rng = np.random.default_rng(1)
    for i in range(4):
        cv2.imwrite(str(src / f"img{i}.png"), rng.integers(0, 256, (70 + i, 90, 3), dtype=np.uint8))
    outputs = {}
    for workers in (1, 2):
        out = tmp_path / f"out{workers}"
        assert (
            main(["crops", str(src), "-o", str(out), "--crop-size", "32", "--step", "16", "--workers", str(workers)])
            == 0
        )
        outputs[workers] = {p.name: p.read_bytes() for p in sorted(out.iterdir())}
    assert len(outputs[1]) == 4 * (4 * 5)  # 4 images x rows 0,16,32,h-32 x cols 0,16,32,48,58
    assert outputs[1] == outputs[2]


def test_bad_image_is_named_and_others_are_cropped(tmp_path: Path, capsys) -> None:
    src, out = tmp_path / "src", tmp_path / "out"
    src.mkdir()
    cv2.imwrite(str(src / "good.png"), _coordinate_image(8, 8))
    (src / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    (src / "notes.txt").write_text("not an image, not listed")
    assert main(["crops", str(src), "-o", str(out), "--crop-size", "4", "--step", "4", "--workers", "1"]) == 1
    err = capsys.readouterr().err
    assert f"{src / 'bad.png'}: truncated PNG" in err
    assert sorted(p.name for p in out.iterdir()) == [f"good_s{n:03d}.png" for n in range(1, 5)]


def test_invalid_options_exit_2(tmp_path: Path, capsys) -> None:
    assert main(["crops", str(tmp_path), "-o", str(tmp_path / "o"), "--step", "0"]) == 2
    assert "step must be >= 1" in capsys.readouterr().err
    assert main(["crops", str(tmp_path / "nope"), "-o", str(tmp_path / "o")]) == 2
    assert "not a directory" in capsys.readouterr().err


def test_same_stem_is_refused(tmp_path: Path, capsys) -> None:
    src = tmp_path / "src"
    src.mkdir()
    cv2.imwrite(str(src / "a.png"), _coordinate_image(8, 8))
    cv2.imwrite(str(src / "a.jpg"), _coordinate_image(8, 8))
    assert main(["crops", str(src), "-o", str(tmp_path / "out"), "--crop-size", "4", "--workers", "1"]) == 2
    assert "a.jpg and a.png have the same stem" in capsys.readouterr().err


def test_stale_files_are_reported(tmp_path: Path, capsys) -> None:
    src, out = tmp_path / "src", tmp_path / "out"
    src.mkdir()
    cv2.imwrite(str(src / "a.png"), _coordinate_image(8, 8))
    assert main(["crops", str(src), "-o", str(out), "--crop-size", "4", "--step", "4"]) == 0
    capsys.readouterr()
    assert main(["crops", str(src), "-o", str(out), "--crop-size", "8", "--step", "8"]) == 0
    assert "3 image(s)" in capsys.readouterr().err  # a_s002..a_s004 are left from the first run


@pytest.mark.parametrize("dtype, maximum", [(np.uint16, 65535)])
def test_sixteen_bit_images_stay_sixteen_bit(tmp_path: Path, dtype, maximum) -> None:
    src, out = tmp_path / "src", tmp_path / "out"
    src.mkdir()
    image = np.random.default_rng(2).integers(0, maximum + 1, (8, 8, 3)).astype(dtype)
    cv2.imwrite(str(src / "deep.png"), image)
    assert (
        main(["crops", str(src), "-o", str(out), "--crop-size", "4", "--step", "4", "--multiscale", "--workers", "1"])
        == 0
    )
    crop = cv2.imread(str(out / "deep_s004.png"), cv2.IMREAD_UNCHANGED)
    assert crop.dtype == dtype
    np.testing.assert_array_equal(crop, image[4:8, 4:8])
    assert cv2.imread(str(out / "multiscale" / "deepT1.png"), cv2.IMREAD_UNCHANGED).dtype == dtype
