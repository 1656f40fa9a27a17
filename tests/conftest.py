"""Shared fixtures: the device under test and the shared soccer data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("SOCCERSR_SHARED_DATA", REPO.parent / "shared" / "data" / "soccer-hr"))


def _devices() -> list[str]:
    wanted = os.environ.get("SOCCERSR_TEST_DEVICE")
    if wanted:
        return [wanted]
    return ["cpu", "cuda"]


@pytest.fixture(params=_devices())
def device(request: pytest.FixtureRequest) -> torch.device:
    """Each device-aware test runs on the CPU and, where one exists, on CUDA."""
    name = request.param
    if name.startswith("cuda") and not torch.cuda.is_available():
        pytest.skip("CUDA is not available")
    return torch.device(name)


@pytest.fixture(scope="session")
def soccer_data() -> Path:
    """``../shared/data/soccer-hr``: real HD soccer frames (tests may read it, the product may not)."""
    if not SHARED_DATA.is_dir():
        pytest.fail(f"shared soccer data not found at {SHARED_DATA} (set SOCCERSR_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def tiny_dir(soccer_data: Path) -> Path:
    """Six 256x256 RGB crops of real soccer frames."""
    return soccer_data / "tiny"
