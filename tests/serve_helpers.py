"""Shared pieces of the serve tests: a server on a tiny real network, photos made in memory, polling."""

from __future__ import annotations

import struct
import threading
import time
import zlib
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np
from fastapi.testclient import TestClient

from soccersr.infer.backends import open_upscaler
from soccersr.options import EngineOptions
from soccersr.serve.app import create_app
from soccersr.serve.config import ServeConfig
from tiny_models import tiny_model

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "samples" / "01_players_ball.jpg"
BASE_URL = "http://127.0.0.1:8000"


def open_tiny(ref: str, options: EngineOptions):
    """``open_upscaler`` on a 1-block RRDBNet: every model name gets the same tiny x4 network."""
    return open_upscaler(tiny_model(), options)


def config(tmp_path: Path, **overrides) -> ServeConfig:
    settings = {"jobs_dir": tmp_path / "jobs", "model": "soccer-x4plus", **overrides}
    return ServeConfig(**settings)


@contextmanager
def client(tmp_path: Path, *, open_engine=open_tiny, **overrides):
    app = create_app(config(tmp_path, **overrides), open_engine=open_engine)
    with TestClient(app, base_url=BASE_URL) as test_client:
        yield test_client


def photo(width: int = 48, height: int = 32, ext: str = ".png", seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    ok, encoded = cv2.imencode(ext, pixels)
    assert ok
    return encoded.tobytes()


def png_with_broken_pixels() -> bytes:
    """A PNG whose container is sound (chunks, checksums, size) but whose compressed pixels are not:
    it passes the upload checks and fails only when decoded, in the worker."""
    data = bytearray(photo(50, 40))
    start = data.find(b"IDAT")
    length = struct.unpack(">I", data[start - 4 : start])[0]
    for k in range(start + 6, start + 4 + length):
        data[k] ^= 0x5A
    data[start + 4 + length : start + 8 + length] = struct.pack(
        ">I", zlib.crc32(bytes(data[start : start + 4 + length]))
    )
    return bytes(data)


def submit(test_client: TestClient, *files: tuple[str, bytes], **fields) -> dict:
    response = test_client.post(
        "/api/jobs", files=[("file", (name, data, "application/octet-stream")) for name, data in files], data=fields
    )
    assert response.status_code == 202, response.text
    return response.json()


def wait_finished(test_client: TestClient, job_id: str, *, headers=None, timeout: float = 60.0) -> dict:
    """Poll until the job is done or failed (the timeout only stops a hung test)."""
    deadline = time.monotonic() + timeout
    while True:
        job = test_client.get(f"/api/jobs/{job_id}", headers=headers).json()
        if job["status"] in ("done", "failed"):
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"job still {job['status']} after {timeout} s")
        time.sleep(0.05)


def wait_status(test_client: TestClient, job_id: str, status: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while test_client.get(f"/api/jobs/{job_id}").json()["status"] != status:
        if time.monotonic() > deadline:
            raise AssertionError(f"job never became {status}")
        time.sleep(0.02)


class GatedEngine:
    """A tiny engine that waits for ``gate`` before each upscale: holds the worker busy on demand."""

    def __init__(self, options: EngineOptions) -> None:
        self.inner = open_tiny("tiny", options)
        self.gate = threading.Event()

    @property
    def scale(self) -> float:
        return self.inner.scale

    def upscale(self, images, *, progress=None):
        if not self.gate.wait(60):
            raise RuntimeError("the test never opened the gate")
        return self.inner.upscale(images, progress=progress)
