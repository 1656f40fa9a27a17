"""recipes/soccer_x4plus/gate.py (the ship gate of issue 12) and choose.py (the pick on the validation game)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from script_modules import load_script

RECIPE = Path("recipes/soccer_x4plus")


@pytest.fixture(scope="module")
def gate():
    return load_script(RECIPE / "gate.py")


@pytest.fixture(scope="module")
def choose():
    return load_script(RECIPE / "choose.py")


def scores(psnr: float, ssim: float, players: float, ssim_players: float, niqe: float) -> dict:
    return {"psnr": psnr, "ssim": ssim, "psnr_players": players, "ssim_players": ssim_players, "niqe": niqe}


def report(kind: str, per_image: dict[str, dict[str, dict]], seed: int = 0) -> dict:
    """A `soccersr eval` report.json reduced to what the gate reads."""
    return {
        "degradation": {"kind": kind},
        "images": [{"image": im, "lq_seed": seed, "results": res} for im, res in per_image.items()],
    }


STOCK = scores(24.0, 0.70, 20.0, 0.30, 7.0)
PREVIOUS = scores(24.5, 0.74, 20.1, 0.33, 8.0)


def test_checks_are_the_issue_margins(gate) -> None:
    good = scores(24.31, 0.721, 20.31, 0.321, 7.0)  # every margin met, NIQE equal to stock's (allowed)
    rows = gate.checks([report("web", {"a.png": {"x4plus": STOCK, "v1": PREVIOUS, "c": good}})], "c", "x4plus", "v1")
    assert [r["check"] for r in rows] == [
        "psnr - x4plus >= +0.3",
        "ssim - x4plus >= +0.02",
        "psnr_players - x4plus >= +0.3",
        "ssim_players - x4plus >= +0.02",
        "niqe <= x4plus's",
        "niqe < v1's",
    ]
    assert [r["value"] for r in rows] == pytest.approx([0.31, 0.021, 0.31, 0.021, 0.0, -1.0])
    assert all(r["pass"] for r in rows)
    short = scores(24.29, 0.72, 20.3, 0.32, 7.01)
    rows = gate.checks([report("web", {"a.png": {"x4plus": STOCK, "c": short}})], "c", "x4plus", None)
    assert [r["pass"] for r in rows] == [False, True, True, True, False]


def test_reports_split_by_model_are_merged_by_image(gate) -> None:
    base = report("training", {"a.png": {"x4plus": STOCK}, "b.png": {"x4plus": scores(22, 0.6, 18, 0.2, 9)}})
    cand = report(
        "training", {"a.png": {"c": scores(25, 0.8, 21, 0.4, 6)}, "b.png": {"c": scores(23, 0.6, 19, 0.2, 9)}}
    )
    means = gate.means([base, cand])
    assert means["psnr"] == pytest.approx({"x4plus": 23.0, "c": 24.0})
    assert means["niqe"] == pytest.approx({"x4plus": 8.0, "c": 7.5})
    with pytest.raises(SystemExit, match="b.png: the reports used different LQ seeds"):
        gate.per_image([base, report("training", {"b.png": {"c": STOCK}}, seed=7)])


def test_the_gate_needs_both_degradations(gate, tmp_path: Path, capsys) -> None:
    good = scores(25.0, 0.75, 21.0, 0.35, 6.0)
    paths = []
    for kind in ("training", "web"):
        path = tmp_path / f"{kind}.json"
        path.write_text(json.dumps(report(kind, {"a.png": {"x4plus": STOCK, "v1": PREVIOUS, "c": good}})))
        paths.append(str(path))
    out = tmp_path / "gate.json"
    assert gate.main([*paths, "--candidate", "c", "--previous", "v1", "--json", str(out)]) == 0
    assert json.loads(out.read_text())["passed"] and len(json.loads(out.read_text())["checks"]) == 12
    assert gate.main([paths[1], "--candidate", "c"]) == 1
    assert "the gate needs both degradations, got ['web']" in capsys.readouterr().out


def test_label_of_a_checkpoint(choose) -> None:
    assert choose.label_of(Path(".devrun/experiments/v2b/models/net_g_450.pth")) == "v2b_450"
    assert choose.label_of(Path("weights/net_g_450.pth")) == "net_g_450"  # not a training checkpoint
    assert choose.label_of(Path("out/blend_a0.3.safetensors")) == "blend_a0.3"


def test_rank_counts_gate_checks_then_the_training_players_gain(choose, tmp_path: Path) -> None:
    def both(results: dict) -> dict:
        return {
            kind: [report(kind, {"a.png": {"x4plus": STOCK, "v1": PREVIOUS, **results}})]
            for kind in ("training", "web")
        }

    # early: fidelity everywhere but less natural than v1 (fails 2 NIQE checks per degradation, passes 8);
    # late and blend: natural, but miss the players' PSNR by different amounts (each passes 10 of 12).
    reports = both(
        {
            "v2b_150": scores(24.5, 0.74, 20.4, 0.33, 8.5),
            "v2b_300": scores(24.4, 0.73, 20.1, 0.33, 6.0),
            "blend_a0.5": scores(24.4, 0.73, 20.2, 0.33, 6.5),
        }
    )
    rows = choose.rank(reports, ["v2b_150", "v2b_300", "blend_a0.5"], "x4plus", "v1")
    assert [(r["label"], r["passed"]) for r in rows] == [("blend_a0.5", 10), ("v2b_300", 10), ("v2b_150", 8)]
    assert rows[0]["tie_break"] == pytest.approx(0.2)
    files = {r["label"]: tmp_path / f"{r['label']}.pth" for r in rows}
    choose.write_choice(rows, tmp_path, files)
    text = (tmp_path / "choice.md").read_text()
    assert (
        "| check | blend_a0.5 | v2b_300 | v2b_150 |" in text
        and "| **passed** | **10/12** | **10/12** | **8/12** |" in text
    )
    assert "| training psnr_players - x4plus >= +0.3 | +0.2000 FAIL | +0.1000 FAIL | +0.4000 ok |" in text
    assert json.loads((tmp_path / "choice.json").read_text())["chosen"] == "blend_a0.5"
    # A full tie keeps the given order (the earlier checkpoint).
    reports = both({"v2b_150": scores(24.4, 0.73, 20.1, 0.33, 6.0), "v2b_300": scores(24.4, 0.73, 20.1, 0.33, 6.0)})
    assert choose.rank(reports, ["v2b_150", "v2b_300"], "x4plus", "v1")[0]["label"] == "v2b_150"


def test_choose_refuses_blends_without_their_start(choose, tmp_path: Path) -> None:
    weights = tmp_path / "net.pth"
    weights.write_bytes(b"")
    with pytest.raises(SystemExit):
        choose.main([str(weights), "--blend", "0.5", "-o", str(tmp_path / "out")])
    with pytest.raises(SystemExit):
        choose.main([str(weights), "--data", str(tmp_path / "nowhere"), "-o", str(tmp_path / "out")])


def test_choose_scores_only_the_candidates_against_earlier_baselines(
    choose, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The wiring of main: labels, blends, the eval command line and the merge with the baselines' reports."""
    data = tmp_path / "soccer"
    for folder in ("val/hr", "val/labels"):
        (data / folder).mkdir(parents=True)
    (data / "niqe_soccer_train.npz").write_bytes(b"")
    models = tmp_path / "experiments" / "v2b" / "models"
    models.mkdir(parents=True)
    for it in (150, 300):
        (models / f"net_g_{it}.pth").write_bytes(b"")
    baselines = tmp_path / "base"
    for kind in ("training", "web"):
        (baselines / kind).mkdir(parents=True)
        (baselines / kind / "report.json").write_text(
            json.dumps(report(kind, {"a.png": {"x4plus": STOCK, "v1": PREVIOUS}}))
        )
    fake_scores = {"v2b_150": scores(24.5, 0.74, 20.4, 0.33, 6.5), "v2b_300": scores(24.4, 0.73, 20.1, 0.33, 6.0)}
    fake_scores["blend_a0.5"] = scores(24.5, 0.74, 20.5, 0.33, 6.9)
    commands = []

    def fake_run(cmd: list[str], check: bool) -> None:
        commands.append(cmd)
        out = Path(cmd[cmd.index("-o" if "-o" in cmd else "--report") + 1])
        if "interpolate.py" in cmd[1]:
            out.write_bytes(b"")
            return
        kind = cmd[cmd.index("--degradation") + 1]
        labels = [Path(cmd[i + 1]).stem for i, arg in enumerate(cmd) if arg == "--model"]
        out.mkdir(parents=True)
        (out / "report.json").write_text(json.dumps(report(kind, {"a.png": {m: fake_scores[m] for m in labels}})))

    monkeypatch.setattr(choose.subprocess, "run", fake_run)
    out = tmp_path / "choice"
    args = [str(models / "net_g_150.pth"), str(models / "net_g_300.pth"), "--previous", "v1", "--blend", "0.5"]
    args += ["--blend-from", "fidelity.pth"]  # the blends start here; the gate's previous model stays v1
    assert choose.main([*args, "--data", str(data), "--baselines", str(baselines), "-o", str(out)]) == 0
    blend, *evals = commands
    assert blend[2:] == [
        "fidelity.pth",
        str(models / "net_g_300.pth"),
        "--alpha",
        "0.5",
        "-o",
        str(out / "blend_a0.5.safetensors"),
    ]
    assert [c[c.index("--degradation") + 1] for c in evals] == ["training", "web"]
    assert [c[i + 1] for c in evals[:1] for i, a in enumerate(c) if a == "--model"] == [
        str(out / "v2b_150.pth"),
        str(out / "v2b_300.pth"),
        str(out / "blend_a0.5.safetensors"),
    ]  # the baselines' models are not run again
    assert (out / "v2b_150.pth").resolve() == (models / "net_g_150.pth").resolve()
    # v2b_150 and the blend pass all 12 checks; the blend gains more on the players (training degradation).
    assert json.loads((out / "choice.json").read_text())["chosen"] == "blend_a0.5"


@pytest.fixture(scope="module")
def gate_candidate():
    return load_script(RECIPE / "gate_candidate.py")


@pytest.mark.parametrize(("candidate_scores", "verdict"), [(scores(24.5, 0.74, 20.4, 0.33, 6.5), 0), (PREVIOUS, 1)])
def test_gate_candidate_scores_the_held_out_games_and_applies_the_gate(
    gate_candidate, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, candidate_scores: dict, verdict: int
) -> None:
    """The wiring: the candidate linked as 'candidate', scored with stock and previous on eval/, the gate's verdict."""
    data = tmp_path / "soccer"
    for folder in ("eval/hr", "eval/labels"):
        (data / folder).mkdir(parents=True)
    (data / "niqe_soccer_train.npz").write_bytes(b"")
    weights = tmp_path / "net_g_900.pth"
    weights.write_bytes(b"")
    fake = {"x4plus": STOCK, "v1": PREVIOUS, "candidate": candidate_scores}
    commands = []

    def fake_run(cmd: list[str], check: bool) -> None:
        commands.append(cmd)
        out = Path(cmd[cmd.index("--report") + 1])
        labels = [Path(cmd[i + 1]).stem for i, arg in enumerate(cmd) if arg == "--model"]
        out.mkdir(parents=True)
        kind = cmd[cmd.index("--degradation") + 1]
        (out / "report.json").write_text(json.dumps(report(kind, {"a.png": {m: fake[m] for m in labels}})))

    monkeypatch.setattr(gate_candidate.sys.modules["scoring"].subprocess, "run", fake_run)
    out = tmp_path / "gate"
    assert gate_candidate.main([str(weights), "--previous", "v1", "--data", str(data), "-o", str(out)]) == verdict
    assert [c[c.index("--degradation") + 1] for c in commands] == ["training", "web"]
    assert all(c[c.index("--hr") + 1] == str(data / "eval" / "hr") and "--no-sheets" not in c for c in commands)
    first = commands[0]
    assert [first[i + 1] for i, a in enumerate(first) if a == "--model"] == ["x4plus", "v1", str(out / "candidate.pth")]
    assert (out / "candidate.pth").resolve() == weights.resolve()
    gate_json = json.loads((out / "gate.json").read_text())
    assert gate_json["passed"] is (verdict == 0) and len(gate_json["checks"]) == 12


def test_gate_candidate_refuses_missing_inputs_before_scoring(gate_candidate, tmp_path: Path) -> None:
    weights = tmp_path / "net.pth"
    weights.write_bytes(b"")
    with pytest.raises(SystemExit):
        gate_candidate.main([str(weights), "--data", str(tmp_path / "nowhere"), "-o", str(tmp_path / "out")])
