"""Shared fixtures: the device under test, the committed soccer crops and the shared soccer data.

Most tests need only "a real soccer image": they use ``soccer_crops``, six small crops of the
SoccerTrack demo clips (MIT) committed in tests/data/soccertrack, so a fresh clone passes alone.
The few that need the shared data (the DFL Bundesliga frames and their player boxes, which may
not be committed, and the full SoccerTrack clips) use ``soccer_data`` / ``tiny_dir``: without the
folder they skip, unless SOCCERSR_REQUIRE_SHARED_DATA=1 (set by .ci/run when the folder exists)
makes a missing folder a failure, so CI cannot go green by skipping them.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SOCCER_CROPS = Path(__file__).resolve().parent / "data" / "soccertrack"
SHARED_DATA = Path(os.environ.get("SOCCERSR_SHARED_DATA", REPO.parent / "shared" / "data" / "soccer-hr"))
REQUIRE_SHARED_DATA = os.environ.get("SOCCERSR_REQUIRE_SHARED_DATA") == "1"


def _devices() -> list[str]:
    wanted = os.environ.get("SOCCERSR_TEST_DEVICE")
    if wanted:
        return [wanted]
    return ["cpu", "cuda"]


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The soccersr cache of this test session, never the user's: the tests compile many random tiny
    models for OpenVINO, each a new cache entry that would pile up in ~/.cache/soccersr. Set
    SOCCERSR_TEST_CACHE_DIR to reuse one folder across sessions (the built-in conversions then stay)."""
    folder = os.environ.get("SOCCERSR_TEST_CACHE_DIR") or str(tmp_path_factory.mktemp("soccersr-cache"))
    os.environ["SOCCERSR_CACHE_DIR"] = folder


@pytest.fixture(params=_devices())
def device(request: pytest.FixtureRequest) -> torch.device:
    """Each device-aware test runs on the CPU and, where one exists, on CUDA."""
    name = request.param
    if name.startswith("cuda") and not torch.cuda.is_available():
        pytest.skip("CUDA is not available")
    return torch.device(name)


@pytest.fixture(scope="session")
def soccer_crops() -> Path:
    """Six 192x192 RGB PNG crops of the SoccerTrack demo clips (tests/data/soccertrack/ATTRIBUTION.md)."""
    return SOCCER_CROPS


@pytest.fixture(scope="session")
def soccer_data() -> Path:
    """``../shared/data/soccer-hr``: real HD soccer frames (tests may read it, the product may not)."""
    if not SHARED_DATA.is_dir():
        # One reason for every such test, so `pytest -ra` sums them up in a single line.
        reason = "needs the shared soccer data (../shared/data/soccer-hr): set SOCCERSR_SHARED_DATA to its folder"
        if REQUIRE_SHARED_DATA:
            pytest.fail(f"{reason}; SOCCERSR_REQUIRE_SHARED_DATA=1 but {SHARED_DATA} is not a folder")
        pytest.skip(reason)
    return SHARED_DATA


@pytest.fixture(scope="session")
def tiny_dir(soccer_data: Path) -> Path:
    """Six 256x256 RGB crops of the shared frames: five DFL Bundesliga crops, one SoccerTrack crop."""
    return soccer_data / "tiny"
