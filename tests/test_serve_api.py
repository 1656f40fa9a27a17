"""The web API of ``soccersr serve`` through FastAPI's TestClient, on a tiny real network."""

from __future__ import annotations

import io
import json
import threading
import zipfile

import cv2
import numpy as np
import pytest

from serve_helpers import (
    SAMPLE,
    GatedEngine,
    client,
    open_tiny,
    photo,
    png_with_broken_pixels,
    submit,
    wait_finished,
    wait_status,
)
from soccersr.infer.pipeline import upscale_image
from soccersr.io.images import encode_image, read_image
from soccersr.options import EngineOptions
from soccersr.serve.store import STOPPED_MESSAGE, JobStore, Upload


def decode(data: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    assert image is not None
    return image


def test_round_trip_gives_the_pipeline_result(tmp_path):
    with client(tmp_path) as c:
        models = c.get("/api/models").json()
        assert models["default"] == "soccer-x4plus"
        assert {"soccer-x4plus", "x4plus", "animevideov3"} <= {m["name"] for m in models["models"]}
        assert "png" in models["formats"]

        job_id = submit(c, ("players.jpg", SAMPLE.read_bytes()))["id"]
        job = wait_finished(c, job_id)
        assert job["status"] == "done" and job["progress"] == 1.0 and job["error"] is None
        (entry,) = job["files"]
        assert (entry["name"], entry["width"], entry["height"]) == ("players.jpg", 240, 135)
        assert (entry["output_name"], entry["output_width"], entry["output_height"]) == ("players_x4.jpg", 960, 540)

        result = c.get(f"/api/jobs/{job_id}/result")
        assert result.status_code == 200
        assert result.headers["content-type"] == "image/jpeg"
        assert 'filename="players_x4.jpg"' in result.headers["content-disposition"]
        assert decode(result.content).shape == (540, 960, 3)

        # The worker's file is what the CLI's steps make: read_image -> upscale_image -> write_image.
        expected = encode_image(upscale_image(read_image(SAMPLE), open_tiny("x", EngineOptions())), "jpeg")
        assert result.content == expected


def test_outscale_and_format_are_applied(tmp_path):
    with client(tmp_path) as c:
        job_id = submit(c, ("a.jpg", photo(40, 30, ".jpg")), outscale="2", format="png")["id"]
        job = wait_finished(c, job_id)
        assert job["files"][0]["output_name"] == "a_x2.png"
        result = c.get(f"/api/jobs/{job_id}/result")
        assert result.headers["content-type"] == "image/png"
        assert decode(result.content).shape == (60, 80, 3)


def test_several_files_give_a_zip_with_unique_names(tmp_path):
    with client(tmp_path) as c:
        job_id = submit(c, ("p.png", photo(seed=1)), ("p.png", photo(seed=2)), ("q.webp", photo(ext=".webp")))["id"]
        job = wait_finished(c, job_id)
        assert [f["status"] for f in job["files"]] == ["done"] * 3
        result = c.get(f"/api/jobs/{job_id}/result")
        assert result.headers["content-type"] == "application/zip"
        with zipfile.ZipFile(io.BytesIO(result.content)) as archive:
            assert archive.namelist() == ["p_x4.png", "p_x4 (2).png", "q_x4.webp"]
            second = archive.read("p_x4 (2).png")
        assert c.get(f"/api/jobs/{job_id}/result", params={"file": 1}).content == second
        missing = c.get(f"/api/jobs/{job_id}/result", params={"file": 3})
        assert missing.status_code == 404 and "error" in missing.json()


@pytest.mark.parametrize(
    ("name", "data", "status", "words"),
    [
        ("notes.jpg", b"just some text, named like a photo", 415, "not an image"),
        ("empty.png", b"", 415, "empty file"),
        ("anim.gif", b"GIF89a" + bytes(40), 415, "GIF"),
        ("cut.jpg", photo(ext=".jpg")[:300], 422, "truncated"),
    ],
)
def test_bad_uploads_are_refused_by_content(tmp_path, name, data, status, words):
    with client(tmp_path) as c:
        response = c.post("/api/jobs", files=[("file", (name, data, "image/jpeg"))])
        assert response.status_code == status
        error = response.json()["error"]
        assert error.startswith(f"{name}: ") and words in error
        assert c.get("/api/models").status_code == 200  # the server is still up


def test_a_png_named_jpg_is_taken_as_png(tmp_path):
    with client(tmp_path) as c:
        job = wait_finished(c, submit(c, ("really_a_png.jpg", photo()))["id"])
        assert job["files"][0]["output_name"] == "really_a_png_x4.png"


def test_too_big_upload_is_413_before_reading(tmp_path):
    with client(tmp_path, max_upload_bytes=2000) as c:
        big = photo(100, 100)  # ~30 kB of noise
        response = c.post("/api/jobs", files=[("file", ("big.png", big, "image/png"))])
        assert response.status_code == 413
        assert "limit" in response.json()["error"]
        assert list((tmp_path / "jobs").iterdir()) == []


def test_too_big_chunked_upload_is_413(tmp_path):
    """A body without a Content-Length is counted as it arrives."""
    with client(tmp_path, max_upload_bytes=2000) as c:
        body = b'--b\r\nContent-Disposition: form-data; name="file"; filename="x.png"\r\n\r\n'
        body += photo(100, 100) + b"\r\n--b--\r\n"
        response = c.post(
            "/api/jobs",
            content=iter([body[i : i + 1000] for i in range(0, len(body), 1000)]),
            headers={"content-type": "multipart/form-data; boundary=b"},
        )
        assert response.status_code == 413


def test_too_many_pixels_is_refused_from_the_header(tmp_path):
    with client(tmp_path, max_pixels=1000) as c:
        response = c.post("/api/jobs", files=[("file", ("wide.png", photo(48, 32), "image/png"))])
        assert response.status_code == 413
        assert response.json()["error"] == "wide.png: 48x32 is 0.0 megapixels, above this server's limit of 0.001"


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"model": "no-such-model"}, "unknown model"),
        ({"outscale": "huge"}, "outscale must be a number"),
        ({"outscale": "0"}, "outscale must be above 0"),
        ({"outscale": "nan"}, "outscale must be above 0"),
        ({"outscale": "9"}, "at most 8"),
        ({"format": "gif"}, "unknown output format"),
    ],
)
def test_bad_fields_are_400(tmp_path, fields, words):
    with client(tmp_path) as c:
        response = c.post("/api/jobs", files=[("file", ("a.png", photo(), "image/png"))], data=fields)
        assert response.status_code == 400
        assert words in response.json()["error"]


def test_requests_without_photos_are_400(tmp_path):
    with client(tmp_path) as c:
        assert c.post("/api/jobs", data={"model": "x4plus"}).status_code == 400
        not_form = c.post("/api/jobs", content=b"{}", headers={"content-type": "application/json"})
        assert not_form.status_code == 400 and "multipart" in not_form.json()["error"]


def test_too_many_files_is_400(tmp_path):
    with client(tmp_path, max_files=2) as c:
        response = c.post("/api/jobs", files=[("file", (f"{i}.png", photo(), "image/png")) for i in range(3)])
        assert response.status_code == 400 and "error" in response.json()


@pytest.mark.parametrize(
    "name", ["../../escape.png", "..\\..\\escape.png", "/etc/escape.png", "sub/dir/escape.png", ".escape.png"]
)
def test_traversal_names_stay_inside_the_job(tmp_path, name):
    with client(tmp_path) as c:
        job_id = submit(c, (name, photo()))["id"]
        job = wait_finished(c, job_id)
        assert job["files"][0]["name"] == "escape.png"
        result = c.get(f"/api/jobs/{job_id}/result")
        assert 'filename="escape_x4.png"' in result.headers["content-disposition"]
    written = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    assert written == [f"jobs/{job_id}/in/000", f"jobs/{job_id}/job.json", f"jobs/{job_id}/out/000.png"]


def test_unknown_and_malformed_job_ids_are_404(tmp_path):
    with client(tmp_path) as c:
        for path in ("/api/jobs/AAAAAAAAAAAAAAAAAAAAAA", "/api/jobs/..%2F..%2Fetc", "/api/jobs/x/result"):
            response = c.get(path)
            assert response.status_code == 404 and "error" in response.json()


def test_job_ids_are_random_and_never_listed(tmp_path):
    with client(tmp_path) as c:
        ids = {submit(c, ("a.png", photo()))["id"] for _ in range(3)}
        assert len(ids) == 3 and all(len(i) == 22 for i in ids)
        listing = c.get("/api/jobs")
        assert listing.status_code == 405 and not any(i in listing.text for i in ids)
        for folder in ("/static/", "/docs-assets/", "/static/%2e%2e/serve/", "/api/"):
            assert c.get(folder).status_code == 404


def test_full_queue_is_429_and_work_goes_on(tmp_path):
    engine = None
    engine_made = threading.Event()

    def open_gated(ref, options):
        nonlocal engine
        engine = GatedEngine(options)
        engine_made.set()
        return engine

    with client(tmp_path, queue_size=1, open_engine=open_gated) as c:
        running = submit(c, ("1.png", photo()))["id"]
        wait_status(c, running, "running")  # taken off the queue, held at the gate
        waiting = submit(c, ("2.png", photo()))["id"]  # fills the queue of one
        refused = c.post("/api/jobs", files=[("file", ("3.png", photo(), "image/png"))])
        assert refused.status_code == 429
        assert refused.headers["retry-after"].isdigit()
        assert "queue is full" in refused.json()["error"]
        assert c.get(f"/api/jobs/{waiting}").json()["status"] == "queued"
        # "running" is set before the worker opens the engine: on a busy machine it may not exist yet.
        assert engine_made.wait(60)
        engine.gate.set()
        assert wait_finished(c, running)["status"] == "done"
        assert wait_finished(c, waiting)["status"] == "done"
        assert submit(c, ("4.png", photo()))["id"]  # room again


def test_a_bad_file_fails_alone(tmp_path):
    with client(tmp_path) as c:
        broken = submit(c, ("broken.png", png_with_broken_pixels()))["id"]
        mixed = submit(c, ("good.png", photo()), ("broken.png", png_with_broken_pixels()))["id"]
        after = submit(c, ("next.png", photo()))["id"]

        job = wait_finished(c, broken)
        assert job["status"] == "failed"
        assert job["error"].startswith("broken.png: corrupt PNG data")
        assert "/in/" not in job["error"]  # the server's paths stay on the server
        assert c.get(f"/api/jobs/{broken}/result").status_code == 409

        job = wait_finished(c, mixed)
        assert job["status"] == "done" and job["error"].startswith("1 of 2 files failed")
        assert [f["status"] for f in job["files"]] == ["done", "failed"]
        with zipfile.ZipFile(io.BytesIO(c.get(f"/api/jobs/{mixed}/result").content)) as archive:
            assert archive.namelist() == ["good_x4.png"]

        assert wait_finished(c, after)["status"] == "done"


def test_an_engine_error_fails_that_job_and_the_worker_goes_on(tmp_path):
    def flaky(ref, options):
        engine = open_tiny(ref, options)
        original = engine.upscale

        def upscale(images, *, progress=None):
            if images.shape[-1] == 13:
                raise RuntimeError("simulated out of memory\nsecond line")
            return original(images, progress=progress)

        engine.upscale = upscale
        return engine

    with client(tmp_path, open_engine=flaky) as c:
        bad = submit(c, ("odd.png", photo(13, 9)))["id"]
        good = submit(c, ("fine.png", photo()))["id"]
        assert wait_finished(c, bad)["error"] == "odd.png: upscaling failed (simulated out of memory)"
        assert wait_finished(c, good)["status"] == "done"


def test_a_model_that_cannot_load_fails_its_job(tmp_path):
    from soccersr.weights import WeightsError

    def picky(ref, options):
        if ref == "x4plus":
            raise WeightsError("x4plus: weights unavailable")
        return open_tiny(ref, options)

    with client(tmp_path, open_engine=picky) as c:
        job = wait_finished(c, submit(c, ("a.png", photo()), model="x4plus")["id"])
        assert job["status"] == "failed" and job["error"] == "model x4plus: x4plus: weights unavailable"
        assert wait_finished(c, submit(c, ("a.png", photo()))["id"])["status"] == "done"


def test_token_is_required_when_set(tmp_path):
    with client(tmp_path, token="s3cret-token") as c:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret-token"}):
            response = c.get("/api/models", headers=headers)
            assert response.status_code == 401
            assert response.headers["www-authenticate"] == "Bearer"
            assert "token" in response.json()["error"]
        refused = c.post("/api/jobs", files=[("file", ("a.png", photo(), "image/png"))])
        assert refused.status_code == 401
        assert list((tmp_path / "jobs").iterdir()) == []

        good = {"Authorization": "Bearer s3cret-token"}
        assert c.get("/api/models", headers=good).status_code == 200
        response = c.post("/api/jobs", files=[("file", ("a.png", photo(), "image/png"))], headers=good)
        assert response.status_code == 202
        job_id = response.json()["id"]
        assert c.get(f"/api/jobs/{job_id}").status_code == 401
        assert wait_finished(c, job_id, headers=good)["status"] == "done"
        assert c.get(f"/api/jobs/{job_id}/result").status_code == 401
        assert c.get(f"/api/jobs/{job_id}/result", headers=good).status_code == 200
        # The page, its assets and the docs hold no data: they load without the token.
        for path in ("/", "/static/app.js", "/docs", "/openapi.json"):
            assert c.get(path).status_code == 200


def test_cross_site_requests_and_foreign_hosts_are_refused(tmp_path):
    with client(tmp_path) as c:
        post = c.post(
            "/api/jobs", files=[("file", ("a.png", photo(), "image/png"))], headers={"Origin": "http://evil.example"}
        )
        assert post.status_code == 403 and "cross-site" in post.json()["error"]
        assert c.get("/api/models", headers={"Origin": "http://127.0.0.1:8000"}).status_code == 200
        # DNS rebinding: a foreign name that resolves to 127.0.0.1 still says so in Host.
        rebound = c.get("/api/models", headers={"Host": "evil.example:8000"})
        assert rebound.status_code == 421
    with client(tmp_path, local_only=False, token="t") as c:  # shared on the network: any Host
        assert c.get("/api/models", headers={"Host": "desk-pc:8000", "Authorization": "Bearer t"}).status_code == 200


def test_restart_keeps_finished_jobs_and_fails_unfinished_ones(tmp_path):
    with client(tmp_path) as c:
        done_id = submit(c, ("kept.png", photo()))["id"]
        wait_finished(c, done_id)
        result = c.get(f"/api/jobs/{done_id}/result").content

    # A job that was running when the process died: on disk as "running".
    store = JobStore(tmp_path / "jobs")
    upload = Upload(name="lost.png", data=photo(), format="png", width=48, height=32)
    lost = store.create([upload], model="soccer-x4plus", outscale=None, format="auto")
    store.update(lost.id, status="running")
    assert json.loads((tmp_path / "jobs" / lost.id / "job.json").read_text())["status"] == "running"

    with client(tmp_path) as c:
        kept = c.get(f"/api/jobs/{done_id}").json()
        assert kept["status"] == "done"
        assert c.get(f"/api/jobs/{done_id}/result").content == result
        failed = c.get(f"/api/jobs/{lost.id}").json()
        assert failed["status"] == "failed" and failed["error"] == STOPPED_MESSAGE
        assert failed["files"][0]["status"] == "failed"
    assert json.loads((tmp_path / "jobs" / lost.id / "job.json").read_text())["status"] == "failed"


def test_old_jobs_are_cleaned_at_start(tmp_path):
    with client(tmp_path) as c:
        job_id = submit(c, ("old.png", photo()))["id"]
        wait_finished(c, job_id)
    with client(tmp_path, keep_seconds=1e-6) as c:
        assert c.get(f"/api/jobs/{job_id}").status_code == 404
    assert not (tmp_path / "jobs" / job_id).exists()


def test_errors_are_json(tmp_path):
    with client(tmp_path) as c:
        for response in (c.get("/no/such/page"), c.get("/api/jobs/x/result", params={"file": "-1"})):
            assert response.status_code in (404, 422)
            assert set(response.json()) == {"error"}


def test_docs_work_offline(tmp_path):
    with client(tmp_path) as c:
        page = c.get("/docs").text
        assert "http://" not in page and "https://" not in page
        assert c.get("/docs-assets/swagger-ui-bundle.js").status_code == 200
        assert c.get("/docs-assets/swagger-ui.css").status_code == 200
        schema = c.get("/openapi.json").json()
        assert {"/api/jobs", "/api/jobs/{job_id}", "/api/jobs/{job_id}/result", "/api/models"} <= set(schema["paths"])
        body = schema["paths"]["/api/jobs"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
        assert set(body["properties"]) == {"file", "model", "outscale", "format"}


def test_the_page_loads_only_its_own_assets(tmp_path):
    with client(tmp_path) as c:
        response = c.get("/")
        assert "default-src 'self'" in response.headers["content-security-policy"]
        page = response.text
        assert "http://" not in page and "https://" not in page
        for asset in ("app.js", "viewer.js", "zip.js", "style.css", "favicon.svg"):
            served = c.get(f"/static/{asset}")
            assert served.status_code == 200 and "https://" not in served.text
