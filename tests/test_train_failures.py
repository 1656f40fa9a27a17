"""What a training run does when things go wrong (issue 13): nothing lost, one clear line, nothing left behind."""

from __future__ import annotations

import builtins
import io
from pathlib import Path

import pytest
import torch
import yaml

from soccersr.cli import main
from soccersr.train import checkpoint as ckpt
from soccersr.train.checkpoint import list_states
from test_train_common import tiny_raw, write_meta


def _config(tmp_path: Path, raw: dict) -> str:
    path = tmp_path / "run.yml"
    path.write_text(yaml.safe_dump(raw))
    return str(path)


def _snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under ``folder`` with its bytes and modification time."""
    return {
        str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("soccersr train: error: "), err
    return lines[0]


# ---------------------------------------------------------------- data loss (issue 13.1)


def test_auto_resume_with_only_unreadable_states_stops_and_touches_nothing(
    tmp_path: Path, soccer_crops: Path, capsys
) -> None:
    raw = tiny_raw(tmp_path, soccer_crops, total_iter=3)
    raw["logger"].update(save_checkpoint_freq=1, keep_checkpoints=3)
    config = _config(tmp_path, raw)
    assert main(["train", "--config", config, "--device", "cpu"]) == 0
    exp = tmp_path / "experiments" / "tiny"
    states = list_states(exp)
    assert [i for i, _ in states] == [1, 2, 3]
    for _, path in states:  # all torn, as by a disk that filled up or a bad copy
        path.write_bytes(path.read_bytes()[:1000])
    before = _snapshot(exp)
    capsys.readouterr()

    code = main(["train", "--config", config, "--device", "cpu", "--auto-resume", "-o", "train.total_iter=6"])

    line = _one_error_line(capsys.readouterr().err)
    assert code == 1
    assert "none of the 3 training states can be read" in line and "3.state" in line
    assert "nothing was changed" in line
    assert _snapshot(exp) == before  # logs, exported weights and the states themselves are untouched


def test_a_corrupt_newer_state_never_counts_as_the_newest(tmp_path: Path) -> None:
    """A run resumed from 5 (because 10.state is torn) keeps its own new states, however few are kept."""
    for it in (5, 10):
        ckpt.save_state(tmp_path, it, {"value": torch.tensor(float(it))}, keep=2)
    torn = ckpt.state_path(tmp_path, 10)
    torn.write_bytes(torn.read_bytes()[:100])
    path, state = ckpt.load_latest_state(tmp_path)
    assert state["iteration"] == 5
    ckpt.save_state(tmp_path, 6, {"value": torch.tensor(6.0)}, keep=1)
    assert ckpt.load_latest_state(tmp_path)[1]["iteration"] == 6
    assert [i for i, _ in list_states(tmp_path)] == [6, 10]  # 5 pruned; the torn 10 is left for the run to replace
    ckpt.save_state(tmp_path, 10, {"value": torch.tensor(10.0)}, keep=1)
    assert [i for i, _ in list_states(tmp_path)] == [10]
    assert ckpt.load_latest_state(tmp_path)[1]["value"] == 10


# ---------------------------------------------------------------- one clear line (issue 13.8)


def test_too_few_images_for_the_batch_names_the_folder_count_and_batch(
    tmp_path: Path, soccer_crops: Path, capsys
) -> None:
    raw = tiny_raw(tmp_path, soccer_crops)
    meta = write_meta(tmp_path, soccer_crops)
    meta.write_text(meta.read_text().splitlines()[0] + "\n")
    raw["datasets"]["train"]["meta_info"] = str(meta)
    code = main(["train", "--config", _config(tmp_path, raw), "--device", "cpu"])
    line = _one_error_line(capsys.readouterr().err)
    assert code == 1
    assert (
        f"{soccer_crops}: 1 training image is too few" in line
        and "batch_size_per_gpu 2" in line
        and "at least 2" in line
    )
    assert not (tmp_path / "experiments").exists()


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (a device that is always full)")
def test_full_disk_while_saving_says_no_space_and_leaves_nothing(
    tmp_path: Path, soccer_crops: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The exported generator is written onto a full device: torch's raw `inline_container.cc ... unexpected
    pos` becomes a line that says so, naming the file, and no part of it is left anywhere."""
    real_open = builtins.open

    def open_on_full_disk(file, mode="r", *args, **kwargs):  # noqa: ANN001 - builtins.open's signature
        if "w" in mode and Path(file).name.startswith(".net_g_"):
            real_open(file, mode).close()  # the temporary exists, as on a real disk
            return real_open("/dev/full", mode, *args, **kwargs)  # the kernel answers ENOSPC
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(ckpt, "open", open_on_full_disk, raising=False)
    raw = tiny_raw(tmp_path, soccer_crops, total_iter=1)
    code = main(["train", "--config", _config(tmp_path, raw), "--device", "cpu"])
    line = _one_error_line(capsys.readouterr().err)
    assert code == 1
    models = tmp_path / "experiments" / "tiny" / "models"
    assert f"{models / 'net_g_1.pth'}: no space left on device" in line
    assert "inline_container" not in line
    assert list(models.iterdir()) == []  # neither the file nor its temporary


def test_write_errors_keep_their_reason(tmp_path: Path) -> None:
    """Any other OS error while saving (here: a folder in the way of the state file) is named too."""
    blocker = ckpt.state_path(tmp_path, 1)
    blocker.mkdir(parents=True)
    with pytest.raises(ckpt.CheckpointError, match=r"1\.state: cannot write \(Is a directory\)"):
        ckpt.save_state(tmp_path, 1, {"value": torch.tensor(1.0)}, keep=1)
    assert [p.name for p in blocker.parent.iterdir()] == ["1.state"]  # no temporary left


# ---------------------------------------------------------------- a failed start leaves nothing (issue 13.16)


@pytest.mark.parametrize("problem", ["missing_vgg", "missing_meta_info", "too_few_images", "bad_pretrained"])
def test_a_failed_start_leaves_no_experiment_folder(
    problem: str, tmp_path: Path, soccer_crops: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = tiny_raw(tmp_path, soccer_crops, gan=problem == "missing_vgg")
    if problem == "missing_vgg":
        monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
        raw["train"]["allow_random_vgg"] = False
    elif problem == "missing_meta_info":
        raw["datasets"]["train"]["meta_info"] = str(tmp_path / "nowhere.txt")
    elif problem == "too_few_images":
        raw["datasets"]["train"]["batch_size_per_gpu"] = raw["datasets"]["train"]["queue_size"] = 8
    else:
        raw["path"]["pretrain_network_g"] = str(tmp_path / "nowhere.pth")
    code = main(["train", "--config", _config(tmp_path, raw), "--device", "cpu"])
    _one_error_line(capsys.readouterr().err)
    assert code in (1, 2)
    assert not (tmp_path / "experiments").exists()


# ---------------------------------------------------------------- lean checkpoints (issue 13.16)


def test_default_saves_are_lean_ema_weights_and_one_full_state(tmp_path: Path, soccer_crops: Path) -> None:
    from soccersr.train import parse_config, train
    from soccersr.weights import load_model

    raw = tiny_raw(tmp_path, soccer_crops, gan=True, total_iter=4)
    raw["logger"]["save_checkpoint_freq"] = 2
    result = train(parse_config(raw), device="cpu")
    exp = tmp_path / "experiments" / "tiny"
    assert sorted(p.name for p in (exp / "models").iterdir()) == ["net_g_2.pth", "net_g_4.pth"]
    for it in (2, 4):
        bundle = torch.load(exp / "models" / f"net_g_{it}.pth", weights_only=True)
        assert set(bundle) == {"params_ema"}  # the official key that every loader takes first
    assert [i for i, _ in list_states(exp)] == [4] and result.last_state == ckpt.state_path(exp, 4)
    state = torch.load(result.last_state, weights_only=True)
    final = torch.load(exp / "models" / "net_g_4.pth", weights_only=True)["params_ema"]
    assert all(torch.equal(final[k], state["net_g_ema"][k]) for k in final)
    assert load_model(exp / "models" / "net_g_4.pth").arch_kwargs["num_feat"] == 8

    # Everything, as before: G and its EMA, the safetensors twin and D at every save point, 3 states.
    raw["name"] = "full"
    raw["logger"].update(save_weights="all", keep_checkpoints=3)
    train(parse_config(raw), device="cpu")
    full = tmp_path / "experiments" / "full"
    assert sorted(p.name for p in (full / "models").iterdir()) == [
        "net_d_2.pth",
        "net_d_4.pth",
        "net_g_2.pth",
        "net_g_2.safetensors",
        "net_g_4.pth",
        "net_g_4.safetensors",
    ]
    assert set(torch.load(full / "models" / "net_g_4.pth", weights_only=True)) == {"params", "params_ema"}
    assert [i for i, _ in list_states(full)] == [2, 4]


def test_without_ema_the_lean_export_holds_g_as_params(tmp_path: Path, soccer_crops: Path) -> None:
    from soccersr.train import parse_config, train

    raw = tiny_raw(tmp_path, soccer_crops, total_iter=1)
    raw["train"]["ema_decay"] = 0
    train(parse_config(raw), device="cpu")
    bundle = torch.load(tmp_path / "experiments" / "tiny" / "models" / "net_g_1.pth", weights_only=True)
    assert set(bundle) == {"params"}


# ---------------------------------------------------------------- validation progress (issue 13.16)


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_validation_shows_a_progress_bar_on_a_terminal_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from soccersr.archs import RRDBNet
    from soccersr.train.validate import validate

    dataset = [{"lq": torch.rand(3, 8, 8), "gt": torch.rand(3, 32, 32), "name": f"im{i}"} for i in range(3)]
    net = RRDBNet(num_feat=8, num_block=1, num_grow_ch=4)
    terminal = _Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    validate(net, dataset, device=torch.device("cpu"), scale=4, iteration=1, image_dir=None)
    assert "validation:" in terminal.getvalue() and "/3 [" in terminal.getvalue()  # image count of 3
    pipe = io.StringIO()
    monkeypatch.setattr("sys.stderr", pipe)
    validate(net, dataset, device=torch.device("cpu"), scale=4, iteration=1, image_dir=None)
    assert pipe.getvalue() == ""
