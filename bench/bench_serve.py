"""`soccersr serve` under work: requests per minute, and how fast the page and API answer meanwhile.

    python bench/bench_serve.py                                  # default model, 4 photos of 480x270
    python bench/bench_serve.py --images /work/shared/data/soccer-hr --requests 6 --json results/bench_serve.json
    python bench/bench_serve.py --model animevideov3 --requests 20

It starts the real server (``python -m soccersr.cli serve`` on a free loopback port, its own jobs
folder) and talks HTTP to it, like a browser would:

1. idle: the latency of ``GET /``, ``GET /api/models`` and ``GET /api/jobs/{id}`` with nothing running;
2. load: ``--requests`` photos posted at once (one job each, as the page does), then polled until
   done. Requests per minute = photos / (time from the first post to the last result). All the
   while a prober keeps fetching the page and the API every ``--probe-every`` seconds, so the
   latency under load shows whether the event loop stays free while the network runs.

The photo is 480x270: the first soccer-hr JPEG shrunk x4 (``--images``), or else the bundled
sample 01 enlarged x2 (its own content, cubic). Numbers measured on the project machine: bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import cv2

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "samples" / "01_players_ball.jpg"
SIZE = (480, 270)


def photo_bytes(images: Path | None) -> bytes:
    if images is not None:
        first = sorted(p for p in images.rglob("*.jpg"))[0]
        image = cv2.resize(cv2.imread(str(first)), SIZE, interpolation=cv2.INTER_AREA)
    else:
        image = cv2.resize(cv2.imread(str(SAMPLE)), SIZE, interpolation=cv2.INTER_CUBIC)
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 92])
    assert ok
    return encoded.tobytes()


def multipart(name: str, data: bytes) -> tuple[bytes, str]:
    boundary = secrets.token_hex(12)
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    return head + data + f"\r\n--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def request(url: str, *, data: bytes | None = None, content_type: str | None = None) -> tuple[int, bytes, float]:
    """(status, body, seconds) of one HTTP request."""
    headers = {"Content-Type": content_type} if content_type else {}
    start = time.perf_counter()
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data, headers=headers), timeout=120) as response:
            body = response.read()
            status = response.status
    except urllib.error.HTTPError as error:
        body, status = error.read(), error.code
    return status, body, time.perf_counter() - start


class Prober(threading.Thread):
    """Fetches each URL in turn every ``every`` seconds and records the latencies (ms)."""

    def __init__(self, urls: dict[str, str], every: float) -> None:
        super().__init__(daemon=True)
        self.urls = urls
        self.every = every
        self.samples: dict[str, list[float]] = {name: [] for name in urls}
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            for name, url in self.urls.items():
                status, _, seconds = request(url)
                if status == 200:
                    self.samples[name].append(seconds * 1000)
            self.stop.wait(self.every)


def summary(values: list[float]) -> dict[str, float]:
    if not values:
        return {"n": 0}
    ordered = sorted(values)
    return {
        "n": len(values),
        "p50_ms": round(statistics.median(ordered), 1),
        "p95_ms": round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 1),
        "max_ms": round(ordered[-1], 1),
    }


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(args: argparse.Namespace, jobs_dir: Path, port: int) -> subprocess.Popen:
    command = [sys.executable, "-m", "soccersr.cli", "serve", "--port", str(port), "--jobs-dir", str(jobs_dir)]
    command += ["--max-queue", str(max(args.requests, 1))]
    for flag in ("model", "engine", "device", "precision"):
        if getattr(args, flag):
            command += [f"--{flag}", getattr(args, flag)]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300  # the command loads the model before it listens
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the server stopped: {server.stderr.read()}")
        try:
            if request(f"{base}/api/models")[0] == 200:
                return server
        except OSError:
            time.sleep(0.2)
    server.terminate()
    raise SystemExit("the server did not start within 300 s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=Path, default=None, help="soccer-hr folder (first JPEG, shrunk to 480x270)")
    parser.add_argument("--requests", type=int, default=4, help="photos posted at once (default 4)")
    parser.add_argument("--model", default=None, help="server --model (default: its default, soccer-x4plus)")
    parser.add_argument("--engine", default=None)
    parser.add_argument("--device", default=None)
    parser.add_argument("--precision", default=None)
    parser.add_argument("--probe-every", type=float, default=0.25, help="seconds between probe rounds")
    parser.add_argument("--idle-seconds", type=float, default=5.0, help="how long to probe the idle server")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args()

    data = photo_bytes(args.images)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="bench_serve_") as tmp:
        server = start_server(args, Path(tmp) / "jobs", port)
        try:
            body, content_type = multipart("warmup.jpg", data)
            status, created, _ = request(f"{base}/api/jobs", data=body, content_type=content_type)
            assert status == 202, created
            warm_id = json.loads(created)["id"]
            while json.loads(request(f"{base}/api/jobs/{warm_id}")[1])["status"] not in ("done", "failed"):
                time.sleep(0.2)  # the first run pays for one-time setup (oneDNN kernels, tile size)
            urls = {"GET /": f"{base}/", "GET /api/models": f"{base}/api/models", "GET /api/jobs/{id}": ""}

            urls["GET /api/jobs/{id}"] = f"{base}/api/jobs/{warm_id}"
            idle = Prober(urls, args.probe_every)
            idle.start()
            time.sleep(args.idle_seconds)
            idle.stop.set()
            idle.join()

            load_before = os.getloadavg()[0]
            start = time.perf_counter()
            ids, post_ms = [], []
            for index in range(args.requests):
                body, content_type = multipart(f"photo{index}.jpg", data)
                status, created, seconds = request(f"{base}/api/jobs", data=body, content_type=content_type)
                assert status == 202, created
                ids.append(json.loads(created)["id"])
                post_ms.append(seconds * 1000)
            urls["GET /api/jobs/{id}"] = f"{base}/api/jobs/{ids[-1]}"
            busy = Prober(urls, args.probe_every)
            busy.start()
            pending = set(ids)
            failed = 0
            while pending:
                for job_id in list(pending):
                    job = json.loads(request(f"{base}/api/jobs/{job_id}")[1])
                    if job["status"] in ("done", "failed"):
                        pending.discard(job_id)
                        failed += job["status"] == "failed"
                time.sleep(0.2)
            elapsed = time.perf_counter() - start
            busy.stop.set()
            busy.join()
            load_after = os.getloadavg()[0]
        finally:
            server.terminate()
            server.wait(30)

    results = {
        "machine": {"cpu": _cpu_name(), "cores": os.cpu_count(), "python": platform.python_version()},
        "model": args.model or "soccer-x4plus (default)",
        "photo": f"{SIZE[0]}x{SIZE[1]} JPEG " + ("(soccer-hr frame shrunk x4)" if args.images else "(sample 01 x2)"),
        "requests": args.requests,
        "failed": failed,
        "seconds": round(elapsed, 2),
        "seconds_per_photo": round(elapsed / args.requests, 2),
        "requests_per_minute": round(args.requests * 60 / elapsed, 2),
        "post_ms": summary(post_ms),
        "idle_latency": {name: summary(values) for name, values in idle.samples.items()},
        "busy_latency": {name: summary(values) for name, values in busy.samples.items()},
        "load_average": [round(load_before, 2), round(load_after, 2)],
    }
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


if __name__ == "__main__":
    main()
