"""The shared-data fixture: a fresh clone skips what needs ../shared, CI (which has it) cannot."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
SHARED_TEST = "test_eval_boxes.py::test_read_boxes_of_the_shared_labels"  # reads the DFL player boxes


def _run_shared_test(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("SOCCERSR_")}
    environ.update(SOCCERSR_SHARED_DATA=str(tmp_path / "no-such-folder"), **env)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", str(TESTS / SHARED_TEST)],
        cwd=tmp_path, env=environ, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_without_the_shared_data_the_test_skips_with_one_line_naming_the_variable(tmp_path: Path) -> None:
    result = _run_shared_test(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    skipped = [line for line in result.stdout.splitlines() if line.startswith("SKIPPED")]
    assert len(skipped) == 1 and "SOCCERSR_SHARED_DATA" in skipped[0], result.stdout
    assert "1 skipped" in result.stdout


def test_when_ci_requires_the_shared_data_its_absence_fails(tmp_path: Path) -> None:
    result = _run_shared_test(tmp_path, SOCCERSR_REQUIRE_SHARED_DATA="1")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "SOCCERSR_REQUIRE_SHARED_DATA=1" in result.stdout and "1 error" in result.stdout


@pytest.mark.parametrize("name", sorted(p.name for p in (TESTS / "data" / "soccertrack").glob("*.png")))
def test_the_committed_crops_are_listed_in_their_attribution(name: str) -> None:
    import hashlib

    digest = hashlib.sha256((TESTS / "data" / "soccertrack" / name).read_bytes()).hexdigest()
    assert f"{digest}  {name}" in (TESTS / "data" / "soccertrack" / "ATTRIBUTION.md").read_text(encoding="utf-8")
