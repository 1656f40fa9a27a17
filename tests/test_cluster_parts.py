"""The parts of `--cluster ray` that need no Ray session: the manifest, the worker class called
directly, the pool size, and the command line's usage errors (tests/test_cluster.py runs Ray)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from safetensors.torch import save_file

from soccersr.cli import main
from soccersr.cluster.manifest import Manifest, ManifestRow
from soccersr.cluster.ray_job import ClusterOptions, _pool_size
from soccersr.cluster.worker import UpscaleWorker, job_row, outcome_from_row
from soccersr.errors import UsageError
from soccersr.infer.backends import open_upscaler
from soccersr.infer.batch import BatchOptions, Job, upscale_job
from soccersr.options import EngineOptions
from tiny_models import tiny_model


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("model") / "tiny_rrdb_x4.safetensors"
    save_file(tiny_model("RRDBNet").net.state_dict(), str(path))
    return path


# --- the manifest ----------------------------------------------------------------------------------


def test_the_manifest_round_trips_any_path_and_message(tmp_path: Path) -> None:
    rows = [
        ManifestRow('/in/a, "quoted"\nname.png', "/out/a_x4.png", "done", "", 1.25),
        ManifestRow("/in/b.jpg", "", "failed", "/in/b.jpg: not an image file (unknown signature)", 0.0),
    ]
    manifest = Manifest(tmp_path / "m.csv", rows)
    manifest.save()
    assert list(Manifest.load(tmp_path / "m.csv").rows.values()) == rows
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.csv"]  # written through a temporary file

    manifest.record(ManifestRow("/in/b.jpg", "/out/b_x4.jpg", "done", "", 2.0))
    manifest.save()
    reloaded = Manifest.load(tmp_path / "m.csv")
    assert [row.input for row in reloaded.rows.values()] == ['/in/a, "quoted"\nname.png', "/in/b.jpg"]
    assert reloaded.get(Path("/in/b.jpg")).status == "done"


@pytest.mark.parametrize(
    "text, reason",
    [
        ("input,output\n/a.png,/b.png\n", "not a soccersr manifest"),
        ("input,output,status,error,seconds\n/a.png,/b.png,finished,,1.0\n", "unknown status 'finished'"),
        ("input,output,status,error,seconds\n/a.png,/b.png,done,,soon\n", "seconds is 'soon'"),
        ("input,output,status,error,seconds\n/a.png,done\n", "row 2 has 2 fields"),
    ],
)
def test_a_bad_manifest_is_ignored_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, text: str, reason: str
) -> None:
    path = tmp_path / "m.csv"
    path.write_text(text)
    with caplog.at_level(logging.WARNING):
        assert Manifest.load(path).rows == {}
    assert reason in caplog.text and "going by the files on disk" in caplog.text
    assert Manifest.load(tmp_path / "missing.csv").rows == {}


# --- the worker, called as Ray Data calls it -----------------------------------------------------------


def call(worker: UpscaleWorker, rows: list[dict[str, str]]) -> list:
    """Call the worker as Ray Data does (a batch of numpy columns); its outcomes."""
    result = worker({key: np.array([row[key] for row in rows]) for key in rows[0]})
    return [outcome_from_row({key: values[i] for key, values in result.items()}) for i in range(len(rows))]


def test_the_worker_runs_the_local_step_and_a_bad_file_fails_alone(model_file: Path, tmp_path: Path) -> None:
    good, bad = tmp_path / "good.png", tmp_path / "bad.png"
    cv2.imwrite(str(good), np.random.default_rng(0).integers(0, 256, (12, 10, 3), dtype=np.uint8))
    bad.write_bytes(b"\x89PNG\r\n\x1a\n")
    jobs = [Job(good, Path("good.png")), Job(bad, Path("bad.png"))]
    options = BatchOptions(output_dir=tmp_path / "out", suffix="x4", progress=False)
    worker = UpscaleWorker(str(model_file), EngineOptions(device="cpu"), options, threads=1)
    outcomes = call(worker, [job_row(job, []) for job in jobs])

    upscaler = open_upscaler(model_file, EngineOptions(device="cpu"))
    local = BatchOptions(output_dir=tmp_path / "local", suffix="x4", progress=False)
    expected = [upscale_job(job, upscaler, local, inputs=frozenset()) for job in jobs]
    assert [o.status for o in outcomes] == ["done", "failed"]
    assert outcomes[0].output == tmp_path / "out" / "good_x4.png"
    assert outcomes[0].output_megapixels == expected[0].output_megapixels == 16 * 120 / 1e6
    assert outcomes[1].message == expected[1].message and outcomes[1].message.startswith(f"{bad}: ")
    np.testing.assert_array_equal(cv2.imread(str(outcomes[0].output)), cv2.imread(str(expected[0].output)))


def test_the_worker_never_replaces_another_input_named_in_its_row(model_file: Path, tmp_path: Path) -> None:
    good, other = tmp_path / "good.png", tmp_path / "sub" / "good.png"
    other.parent.mkdir()
    for path in (good, other):
        cv2.imwrite(str(path), np.full((4, 4, 3), 7, np.uint8))
    # Into the input folder without a suffix: sub/good.png's output would be good.png, an input.
    options = BatchOptions(output_dir=tmp_path, suffix="", progress=False)
    worker = UpscaleWorker(str(model_file), EngineOptions(device="cpu"), options)
    [outcome] = call(worker, [job_row(Job(other, Path("good.png")), [good])])
    assert outcome.status == "failed"
    assert outcome.message == f"{other}: its output {good} would replace another input of this batch"
    assert cv2.imread(str(good)).shape == (4, 4, 3)


# --- the pool ----------------------------------------------------------------------------------------------


def test_the_pool_fills_the_cluster_or_refuses_what_cannot_fit() -> None:
    resources = {"CPU": 8.0, "GPU": 2.0}
    assert _pool_size(ClusterOptions(), resources, local=True) == 8
    assert _pool_size(ClusterOptions(cpus_per_worker=3), resources, local=True) == 2
    assert _pool_size(ClusterOptions(gpus_per_worker=0.5), resources, local=True) == 4
    assert _pool_size(ClusterOptions(workers=3), resources, local=True) == 3
    with pytest.raises(UsageError, match="the local Ray has 8 CPUs and 2 GPUs: 3 workers of 1 CPU and 1 GPU each"):
        _pool_size(ClusterOptions(workers=3, gpus_per_worker=1), resources, local=True)
    with pytest.raises(UsageError, match="1 worker of 1 CPU and 1 GPU each do not fit"):
        _pool_size(ClusterOptions(gpus_per_worker=1), {"CPU": 8.0}, local=False)
    # A cluster may grow (an autoscaler): a pool larger than it is now waits instead.
    assert _pool_size(ClusterOptions(workers=16), resources, local=False) == 16
    with pytest.raises(ValueError, match="cpus_per_worker must be positive"):
        ClusterOptions(cpus_per_worker=0)


# --- the command line -----------------------------------------------------------------------------------------


def run_cli(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str]:
    code = main(["upscale", *map(str, args), "--no-progress"])
    return code, capsys.readouterr().err


def test_cluster_options_need_cluster_ray(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, err = run_cli(capsys, tmp_path, "-o", tmp_path / "out", "--workers", "2")
    assert code == 2 and "--workers needs --cluster ray" in err
    with pytest.raises(SystemExit) as stop:
        run_cli(capsys, tmp_path, "-o", tmp_path / "out", "--cluster", "ray", "--gpus-per-worker", "-1")
    assert stop.value.code == 2 and "--gpus-per-worker: must not be negative" in capsys.readouterr().err


def test_without_ray_cluster_ray_says_which_extra_to_install(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # as if it were not installed
    code, err = run_cli(capsys, tmp_path, "-o", tmp_path / "out", "--cluster", "ray")
    assert code == 2
    assert err.strip() == (
        "soccersr upscale: error: --cluster ray needs the optional package 'ray': pip install 'soccersr[ray]'"
    )
    assert not (tmp_path / "out").exists()


def test_a_gpu_device_without_gpus_per_worker_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], model_file: Path, tmp_path: Path
) -> None:
    pytest.importorskip("ray", reason="ray is in the dev extra: pip install -e '.[dev]'")
    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((4, 4, 3), np.uint8))
    code, err = run_cli(
        capsys,
        tmp_path / "a.png",
        "-o",
        tmp_path / "out",
        "--model",
        model_file,
        "--cluster",
        "ray",
        "--device",
        "cuda",
    )
    assert code == 2 and "--device cuda needs --gpus-per-worker" in err
