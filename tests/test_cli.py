"""`soccersr` itself: one-line errors with exit codes, missing optional extras, -v, progress bars."""

from __future__ import annotations

import argparse
import io
import shutil
import sys
from pathlib import Path

import av
import numpy as np
import pytest

from soccersr import cli
from soccersr.commands import extras
from soccersr.data.dataset import DatasetError
from soccersr.data.frames import VideoError
from soccersr.errors import MissingExtraError, SoccersrError
from soccersr.eval.boxes import BoxFileError
from soccersr.eval.inputs import EvalError
from soccersr.eval.niqe import NiqeError
from soccersr.export import ExportError
from soccersr.infer.onnx_backend import OnnxModelError
from soccersr.io.container import ContainerError
from soccersr.io.images import ImageReadError, ImageWriteError
from soccersr.train.checkpoint import CheckpointError
from soccersr.train.config import ConfigError
from soccersr.train.loop import TrainError
from soccersr.train.vgg import VGGWeightsError
from soccersr.weights import WeightsError
from tiny_models import tiny_model

# --- errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "exit_code"),
    [
        (ConfigError, 2), (WeightsError, 2), (OnnxModelError, 2), (EvalError, 2),
        (ExportError, 1), (TrainError, 1), (CheckpointError, 1), (VGGWeightsError, 1), (DatasetError, 1),
        (VideoError, 1), (ImageReadError, 1), (ImageWriteError, 1), (ContainerError, 1),
        (NiqeError, 1), (BoxFileError, 1),
    ],
)  # fmt: skip
def test_every_user_facing_error_is_a_soccersr_error(error: type[Exception], exit_code: int) -> None:
    # Still the builtin class it was (callers catch ValueError / RuntimeError / OSError), and now one
    # SoccersrError that cli.main turns into a line and an exit code (2: bad option or setup).
    assert issubclass(error, SoccersrError)
    assert error.exit_code == exit_code


def test_main_prints_a_soccersr_error_once_and_returns_its_exit_code(monkeypatch, capsys) -> None:
    from soccersr.commands import models

    def fail(args: argparse.Namespace) -> int:
        raise VideoError("match.mp4: no video stream")

    monkeypatch.setattr(models, "run", fail)
    assert cli.main(["models"]) == 1
    assert capsys.readouterr().err == "soccersr models: error: match.mp4: no video stream\n"


def test_main_keeps_the_traceback_of_a_missing_module_that_is_no_extra(monkeypatch) -> None:
    from soccersr.commands import models

    def fail(args: argparse.Namespace) -> int:
        raise ModuleNotFoundError("No module named 'soccersr.nothing'", name="soccersr.nothing")

    monkeypatch.setattr(models, "run", fail)
    with pytest.raises(ModuleNotFoundError):  # a bug in soccersr, not a missing extra: keep the traceback
        cli.main(["models"])


def test_missing_extra_maps_top_level_modules_to_extras() -> None:
    error = extras.missing_extra(ModuleNotFoundError("x", name="onnxruntime.capi"), "ONNX models")
    assert isinstance(error, MissingExtraError) and (error.extra, error.module, error.exit_code) == (
        "onnx",
        "onnxruntime",
        2,
    )
    assert str(error) == "ONNX models needs the optional package 'onnxruntime': pip install 'soccersr[onnx]'"
    assert extras.missing_extra(ModuleNotFoundError("x", name="numpy"), "x") is None
    assert extras.missing_extra(ModuleNotFoundError("x"), "x") is None


# --- missing optional extras --------------------------------------------------------------------


def _png(path: Path, height: int = 64, width: int = 80) -> Path:
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    assert cv2.imwrite(str(path), rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
    return path


def _video(path: Path, frames: int = 6) -> Path:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=5)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(frames):
            image = np.full((48, 64, 3), 40 * i, np.uint8)
            image[::8] = 255
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def _frames(tmp: Path) -> list[str]:
    return ["frames", str(_video(tmp / "clip.mp4")), "-o", str(tmp / "out")]


def _train(tmp: Path) -> list[str]:
    (tmp / "run.yml").write_text("name: x\n")
    return ["train", "--config", str(tmp / "run.yml")]


def _export_onnx(tmp: Path) -> list[str]:
    return ["export", "--model", "animevideov3", "-o", str(tmp / "out" / "m.onnx")]


def _upscale_onnx(tmp: Path) -> list[str]:
    from soccersr.export.onnx import export_onnx

    model_path = tmp / "tiny.onnx"
    export_onnx(tiny_model("SRVGGNetCompact"), model_path)  # a real, loadable ONNX model
    return ["upscale", str(_png(tmp / "in" / "a.png")), "-o", str(tmp / "out"), "--model", str(model_path)]


def _crops_multiscale(tmp: Path) -> list[str]:
    _png(tmp / "in" / "a.png", 120, 160)
    _png(tmp / "in" / "b.png", 120, 160)
    return ["crops", str(tmp / "in"), "-o", str(tmp / "out"), "--crop-size", "32", "--step", "32", "--multiscale",
            "--workers", "1"]  # fmt: skip


@pytest.mark.parametrize(
    ("module", "extra", "argv"),
    [
        ("av", "train", _frames),
        ("yaml", "train", _train),
        ("PIL", "train", _train),
        ("onnx", "onnx", _export_onnx),
        ("onnxruntime", "onnx", _export_onnx),
        ("onnxruntime", "onnx", _upscale_onnx),
        ("PIL", "train", _crops_multiscale),
    ],
    ids=["frames-av", "train-yaml", "train-pillow", "export-onnx", "export-onnxruntime", "upscale-onnx",
         "crops-multiscale"],
)  # fmt: skip
def test_a_missing_extra_is_one_line_with_the_pip_hint_and_exit_2(
    tmp_path: Path, monkeypatch, capsys, module: str, extra: str, argv
) -> None:
    args = argv(tmp_path)
    capsys.readouterr()
    monkeypatch.setitem(sys.modules, module, None)  # what `import module` does when it is not installed
    assert cli.main(args) == 2
    captured = capsys.readouterr()
    hint = f"needs the optional package {module!r}: pip install 'soccersr[{extra}]'"
    assert captured.err.count(hint) == 1, captured.err  # once, not once per image
    assert len(captured.err.strip().splitlines()) == 1, captured.err
    assert captured.err.startswith(f"soccersr {args[0]}: error: ")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*.png")), "nothing is made"


# --- -v and progress bars -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "verbose"),
    [
        (["upscale", "a.png", "-o", "out", "-v"], True),
        (["upscale", "a.png", "--verbose", "-o", "out"], True),
        (["-v", "upscale", "a.png", "-o", "out"], True),
        (["upscale", "a.png", "-o", "out"], False),
        (["models", "-v"], True),
        (["eval", "fit-niqe", "dir", "-o", "p.npz", "-v"], True),
    ],
)
def test_verbose_works_before_and_after_the_subcommand(argv: list[str], verbose: bool) -> None:
    assert cli.build_parser().parse_args(argv).verbose is verbose


def test_every_subcommand_takes_verbose() -> None:
    parser = cli.build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, subparser in subparsers.choices.items():
        assert "-v" in subparser._option_string_actions, name


def _meta_check(tmp: Path) -> list[str]:
    _png(tmp / "hr" / "a.png")
    return ["meta", "--input", str(tmp / "hr"), "--meta-info", str(tmp / "meta.txt"), "--check"]


def _degrade(tmp: Path) -> list[str]:
    _png(tmp / "hr" / "a.png")
    return ["degrade", str(tmp / "hr"), "-o", str(tmp / "lq")]


def _crops(tmp: Path) -> list[str]:
    _png(tmp / "in" / "a.png")
    return ["crops", str(tmp / "in"), "-o", str(tmp / "out"), "--crop-size", "32", "--step", "32", "--workers", "1"]


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("argv", [_frames, _crops, _degrade, _meta_check], ids=["frames", "crops", "degrade", "meta"])
def test_progress_bars_only_on_a_terminal(tmp_path: Path, monkeypatch, capsys, argv) -> None:
    args = argv(tmp_path)
    assert cli.main(args) == 0
    assert "|" not in capsys.readouterr().err  # a pipe or a log file gets no bar (it wrote "100%|####|")

    shutil.rmtree(tmp_path / "out", ignore_errors=True)
    shutil.rmtree(tmp_path / "lq", ignore_errors=True)
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert cli.main(args) == 0
    assert "|" in terminal.getvalue()  # on a terminal the bar is there
