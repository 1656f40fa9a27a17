"""`soccersr eval` end to end on two tiny models and two small soccer crops."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from soccersr.archs import SRVGGNetCompact
from soccersr.cli import main
from soccersr.degrade.web import image_seed
from soccersr.io.hashing import file_sha256
from soccersr.metrics import psnr, ssim

SEED = 3
NAMES = ("01_players.png", "04_lines.png")


def _save_model(path: Path, *, std: float) -> None:
    net = SRVGGNetCompact(num_feat=4, num_conv=1, upscale=4)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * std)
    torch.save({"params": net.state_dict()}, path)


def _read(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0


@pytest.fixture(scope="module")
def setup(soccer_crops: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("eval")
    # Zeroed convs: the network is exactly a nearest-neighbour x4 upsampler. Random weights: worse.
    _save_model(root / "nearest.pth", std=0.0)
    _save_model(root / "random.pth", std=0.05)
    hr = root / "hr"
    hr.mkdir()
    for name in NAMES:  # 130x98: not multiples of 4, so the mod-crop is exercised
        cv2.imwrite(str(hr / name), cv2.imread(str(soccer_crops / name))[40:138, 60:190])
    boxes = root / "boxes"
    boxes.mkdir()
    # A player (30% x 40%), a referee too small for SSIM, and the ball (never counted).
    (boxes / "01_players.txt").write_text("2 0.5 0.5 0.3 0.4\n3 0.2 0.3 0.04 0.05\n0 0.7 0.7 0.02 0.02\n")
    (boxes / "04_lines.txt").write_text("1 0.3 0.6 0.25 0.35\n")
    params = root / "niqe.npz"
    assert main(["eval", "fit-niqe", str(soccer_crops), "-o", str(params), "--patch-size", "32"]) == 0
    report = root / "report"
    argv = ["eval", "--model", str(root / "nearest.pth"), "--model", str(root / "random.pth"), "--hr", str(hr),
            "--boxes", str(boxes), "--report", str(report), "--niqe-params", str(params), "--seed", str(SEED),
            "--device", "cpu"]  # fmt: skip
    assert main(argv) == 0
    return {"root": root, "hr": hr, "boxes": boxes, "params": params, "report": report, "argv": argv}  # type: ignore[dict-item]


def _rows(report: Path) -> list[dict[str, str]]:
    with open(report / "results.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_report_files_are_written(setup: dict[str, Path]) -> None:
    report = setup["report"]
    for name in ("summary.md", "results.csv", "report.json", "index.html", "lq/manifest.json"):
        assert (report / name).is_file(), name
    for name in NAMES:
        stem = Path(name).stem
        sheet = cv2.imread(str(report / "sheets" / f"{stem}.png"))
        assert sheet is not None and sheet.shape[1] > 4 * 128  # LR, two models, HR
        lq = cv2.imread(str(report / "lq" / f"{stem}.png"))
        assert lq.shape == (24, 32, 3)  # 98x130 mod-cropped to 96x128, divided by 4
    page = (report / "index.html").read_text()
    assert 'href="sheets/01_players.png"' in page and 'href="sheets/04_lines.png"' in page


def test_scores_match_an_independent_computation(setup: dict[str, Path]) -> None:
    # The nearest model's output is the LQ repeated 4x4: recompute its PSNR/SSIM from the cached LQ.
    rows = {(r["image"], r["model"]): r for r in _rows(setup["report"])}
    assert len(rows) == 4
    for name in NAMES:
        hr = _read(setup["hr"] / name)[:96, :128]
        lq = _read(setup["report"] / "lq" / f"{Path(name).stem}.png")
        up = np.repeat(np.repeat(lq, 4, axis=0), 4, axis=1)
        row = rows[(name, "nearest")]
        assert float(row["psnr"]) == pytest.approx(psnr(up, hr, crop_border=4), abs=1e-9)
        assert float(row["ssim"]) == pytest.approx(ssim(up, hr, crop_border=4), abs=1e-9)
        assert int(row["lq_seed"]) == image_seed(SEED, name)
        assert float(row["time_s"]) > 0 and float(row["niqe"]) > 0
    # Player boxes: on 01 one player used, the tiny referee skipped (the ball is not a person).
    players = rows[("01_players.png", "nearest")]
    assert (players["player_boxes_used"], players["player_boxes_skipped"]) == ("1", "1")
    assert rows[("04_lines.png", "random")]["player_boxes_used"] == "1"


def test_lq_is_the_seeded_training_degradation(setup: dict[str, Path]) -> None:
    from soccersr.degrade import degrade_image

    name = NAMES[0]
    hr = _read(setup["hr"] / name)[:96, :128]
    expected = degrade_image(hr, scale=4, seed=image_seed(SEED, name))
    cached = _read(setup["report"] / "lq" / f"{Path(name).stem}.png")
    np.testing.assert_array_equal(np.round(cached * 255), np.round(expected * 255))


def test_winner_logic_in_json_and_markdown(setup: dict[str, Path]) -> None:
    data = json.loads((setup["report"] / "report.json").read_text())
    summary = {s["metric"]: s for s in data["summary"]}
    for metric in ("psnr", "ssim", "psnr_players", "ssim_players"):
        assert summary[metric]["winner"] == "nearest", metric
        assert summary[metric]["images"] == 2
        (vs,) = summary[metric]["versus"]
        assert vs["other"] == "random" and vs["mean_diff"] > 0 and vs["wins"] + vs["losses"] + vs["ties"] == 2
    assert summary["niqe"]["images"] == 2 and "time_s" in summary
    rows = _rows(setup["report"])
    nearest = [float(r["psnr"]) for r in rows if r["model"] == "nearest"]
    rand = [float(r["psnr"]) for r in rows if r["model"] == "random"]
    assert summary["psnr"]["versus"][0]["mean_diff"] == pytest.approx(np.mean(nearest) - np.mean(rand), abs=1e-9)
    md = (setup["report"] / "summary.md").read_text()
    assert "| PSNR-Y | nearest |" in md and "## Where the winner loses" in md


def test_json_records_config_models_and_niqe_params(setup: dict[str, Path]) -> None:
    data = json.loads((setup["report"] / "report.json").read_text())
    assert data["config"]["seed"] == SEED and data["config"]["lq_mode"] == "synthesised"
    assert data["config"]["crop_border"] == 4
    assert [m["label"] for m in data["models"]] == ["nearest", "random"]
    assert data["models"][0]["sha256"] == file_sha256(setup["root"] / "nearest.pth")
    assert data["models"][0]["arch"] == "SRVGGNetCompact"
    assert data["niqe"]["sha256"] == file_sha256(setup["params"])
    assert data["niqe"]["fit"]["num_images"] == 6 and data["niqe"]["patch_size"] == 32
    assert "torch" in data["versions"] and data["degradation"] is not None
    md = (setup["report"] / "summary.md").read_text()
    assert file_sha256(setup["params"])[:16] in md


def test_second_run_reuses_the_cached_lq(setup: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    import soccersr.degrade

    def fail(*args: object, **kwargs: object) -> None:
        raise AssertionError("the LQ should come from the cache")

    monkeypatch.setattr(soccersr.degrade, "degrade_image", fail)
    before = _rows(setup["report"])
    assert main([*setup["argv"], "--no-sheets"]) == 0  # type: ignore[list-item]
    after = _rows(setup["report"])
    assert [(r["image"], r["model"], r["psnr"], r["niqe"]) for r in after] == [
        (r["image"], r["model"], r["psnr"], r["niqe"]) for r in before
    ]


def test_no_hr_mode_gives_niqe_and_time_only(setup: dict[str, Path], tmp_path: Path) -> None:
    root = setup["root"]
    out = tmp_path / "real"
    argv = ["eval", "--model", str(root / "nearest.pth"), "--model", str(root / "random.pth"),
            "--lq", str(setup["report"] / "lq"), "--report", str(out), "--niqe-params", str(setup["params"]),
            "--crops", "8,8,32,32", "100,80,60,60"]  # fmt: skip
    assert main(argv) == 0
    rows = _rows(out)
    assert len(rows) == 4 and all(r["psnr"] == "" and r["ssim"] == "" for r in rows)
    assert all(float(r["niqe"]) > 0 and float(r["time_s"]) > 0 for r in rows)
    md = (out / "summary.md").read_text()
    assert "NIQE" in md and "PSNR" not in md and "no HR" in md
    sheet = cv2.imread(str(out / "sheets" / "01_players.png"))
    assert sheet is not None
    assert not (out / "lq").exists()
    # Given crops are used as they are, clipped to the 128x96 output.
    record = json.loads((out / "report.json").read_text())["images"][0]
    assert record["crops"] == [[8, 8, 32, 32], [100, 80, 28, 16]]


def test_without_niqe_params_the_column_is_omitted(setup: dict[str, Path], tmp_path: Path) -> None:
    root = setup["root"]
    out = tmp_path / "no-niqe"
    argv = ["eval", "--model", str(root / "nearest.pth"), "--lq", str(setup["report"] / "lq"), "--report", str(out),
            "--no-sheets"]  # fmt: skip
    assert main(argv) == 0
    data = json.loads((out / "report.json").read_text())
    assert "omitted" in data["niqe"]
    assert [s["metric"] for s in data["summary"]] == ["time_s"]
    assert "NIQE: omitted" in (out / "summary.md").read_text()


def test_setup_errors_exit_2_with_one_line(
    setup: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "missing.pth"
    assert main(["eval", "--model", str(missing), "--hr", str(setup["hr"]), "--report", str(tmp_path / "r")]) == 2
    assert "missing.pth" in capsys.readouterr().err
    empty = tmp_path / "lq"
    empty.mkdir()
    (empty / "01_players.png").write_bytes((setup["report"] / "lq" / "01_players.png").read_bytes())
    argv = ["eval", "--model", str(setup["root"] / "nearest.pth"), "--hr", str(setup["hr"]), "--lq", str(empty),
            "--report", str(tmp_path / "r")]  # fmt: skip
    assert main(argv) == 2
    assert "no LQ image for 1 HR image(s), e.g. '04_lines'" in capsys.readouterr().err
    assert main(["eval", "--model", "x", "--report", str(tmp_path / "r")]) == 2
    assert "give --hr DIR" in capsys.readouterr().err


def test_unreadable_image_is_skipped_and_fails_the_run(setup: dict[str, Path], tmp_path: Path) -> None:
    lq = tmp_path / "lq"
    lq.mkdir()
    (lq / "good.png").write_bytes((setup["report"] / "lq" / "01_players.png").read_bytes())
    (lq / "bad.png").write_bytes(b"not a png")
    out = tmp_path / "r"
    argv = ["eval", "--model", str(setup["root"] / "nearest.pth"), "--lq", str(lq), "--report", str(out), "--no-sheets"]
    assert main(argv) == 1
    data = json.loads((out / "report.json").read_text())
    assert [f["image"] for f in data["failed"]] == ["bad.png"]
    assert [im["image"] for im in data["images"]] == ["good.png"]
    assert not math.isnan(data["images"][0]["results"]["nearest"]["time_s"])


def test_degrade_and_eval_give_the_same_lq_for_the_same_seed(setup: dict[str, Path], tmp_path: Path) -> None:
    # Issue 14.4: degrade seeded sha256('seed\0relpath') (63 bits) and eval sha256('seed:name') (32 bits).
    out = tmp_path / "lq"
    assert main(["degrade", str(setup["hr"]), "-o", str(out), "--seed", str(SEED)]) == 0
    for name in NAMES:
        stem = Path(name).stem
        np.testing.assert_array_equal(_read(out / f"{stem}.png"), _read(setup["report"] / "lq" / f"{stem}.png"))


def test_web_degradation_lq_and_report(setup: dict[str, Path], tmp_path: Path) -> None:
    from soccersr.degrade.web import web_degrade_image

    out = tmp_path / "web"
    argv = ["eval", "--model", str(setup["root"] / "nearest.pth"), "--hr", str(setup["hr"]), "--report", str(out),
            "--seed", str(SEED), "--degradation", "web", "--no-sheets", "--device", "cpu"]  # fmt: skip
    assert main(argv) == 0
    name = NAMES[0]
    hr = _read(setup["hr"] / name)[:96, :128]
    expected = web_degrade_image(hr, scale=4, seed=image_seed(SEED, name))
    cached = _read(out / "lq" / f"{Path(name).stem}.png")
    np.testing.assert_array_equal(np.round(cached * 255), np.round(expected * 255))
    assert not np.array_equal(cached, _read(setup["report"] / "lq" / f"{Path(name).stem}.png"))  # not the training LQ
    data = json.loads((out / "report.json").read_text())
    assert data["config"]["degradation"] == "web" and data["degradation"]["kind"] == "web"
    assert "with the web degradation" in (out / "summary.md").read_text()
    # Switching the kind in the same report folder re-synthesises instead of reusing the other kind's LQ.
    assert main([a if a != "web" else "training" for a in argv]) == 0
    np.testing.assert_array_equal(
        _read(out / "lq" / f"{Path(name).stem}.png"), _read(setup["report"] / "lq" / f"{Path(name).stem}.png")
    )


def test_builtin_models_report_the_sha256_of_their_weights_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from soccersr.eval.runner import weights_file
    from soccersr.weights.builtin import BUILTIN_DIR

    assert weights_file("soccer-x4plus") == BUILTIN_DIR / "soccer-x4plus.safetensors"  # shipped in the package
    monkeypatch.setenv("SOCCERSR_CACHE_DIR", str(tmp_path))
    assert weights_file("x4plus") is None  # not converted yet
    (tmp_path / "x4plus.safetensors").write_bytes(b"converted")
    assert weights_file("x4plus") == tmp_path / "x4plus.safetensors"  # the converted cache file
    assert weights_file(str(tmp_path / "x4plus.safetensors")) == tmp_path / "x4plus.safetensors"
    assert weights_file("no-such-model") is None
