"""The parts of ``soccersr serve`` on their own: names, hosts, tokens, the job store, config, the command."""

from __future__ import annotations

import json
import threading
import zipfile

import pytest

from soccersr.cli import main
from soccersr.serve.config import ServeConfig
from soccersr.serve.engines import model_choices
from soccersr.serve.security import (
    MAX_NAME_LENGTH,
    host_allowed,
    is_job_id,
    is_local_host,
    new_job_id,
    safe_name,
    same_origin,
    token_matches,
)
from soccersr.serve.store import Job, JobStore, Upload
from soccersr.serve.worker import output_format, output_name


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("photo.jpg", "photo.jpg"),
        ("../../etc/passwd", "passwd"),
        ("..\\..\\Windows\\win.ini", "win.ini"),
        ("C:\\Users\\desk\\match day.png", "match day.png"),
        ("..", "image"),
        ("", "image"),
        (None, "image"),
        (".hidden.png", "hidden.png"),
        ('quo"te;\r\nX-Evil: 1.png', "quo_te_X-Evil_ 1.png"),
        ("Müller (7).jpg", "Müller (7).jpg"),
        ("a\u202egnp.exe", "agnp.exe"),  # a right-to-left override cannot disguise a name
    ],
)
def test_safe_name(raw, expected):
    assert safe_name(raw) == expected


def test_safe_name_keeps_the_extension_of_long_names():
    name = safe_name("x" * 500 + ".jpeg")
    assert len(name) == MAX_NAME_LENGTH and name.endswith("x.jpeg")


def test_job_ids():
    ids = {new_job_id() for _ in range(100)}
    assert len(ids) == 100 and all(is_job_id(i) for i in ids)
    for bad in ("", "../../etc/passwd", "a" * 21, "a" * 23, "a" * 21 + "/", "a" * 21 + "."):
        assert not is_job_id(bad)


@pytest.mark.parametrize(
    ("host", "local"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.20", False),
        ("desk-pc", False),
        ("localhost.evil.com", False),
    ],
)
def test_is_local_host(host, local):
    assert is_local_host(host) is local


def test_host_and_origin_checks():
    assert host_allowed("127.0.0.1:8000", local_only=True)
    assert host_allowed("[::1]:8000", local_only=True)
    assert host_allowed("localhost", local_only=True)
    assert not host_allowed("evil.example:8000", local_only=True)
    assert not host_allowed(None, local_only=True)
    assert host_allowed("evil.example", local_only=False)
    assert same_origin(None, "127.0.0.1:8000")
    assert same_origin("http://127.0.0.1:8000", "127.0.0.1:8000")
    assert not same_origin("http://127.0.0.1:9999", "127.0.0.1:8000")
    assert not same_origin("null", "127.0.0.1:8000")
    assert not same_origin("http://evil.example", "127.0.0.1:8000")


def test_token_matches():
    assert token_matches("Bearer abc", "abc")
    assert token_matches("bearer   abc ", "abc")
    assert not token_matches("Bearer abcd", "abc")
    assert not token_matches("Basic abc", "abc")
    assert not token_matches("abc", "abc")
    assert not token_matches(None, "abc")
    assert not token_matches("Bearer ", "abc")


def test_output_naming_follows_the_content_format():
    assert output_format("jpeg", "auto", has_alpha=False) == "jpeg"
    assert output_format("bmp", "auto", has_alpha=False) == "png"
    assert output_format("png", "jpeg", has_alpha=True) == "png"
    assert output_format("png", "webp", has_alpha=True) == "webp"
    assert output_name("match.day.jpg", 4.0, "png") == "match.day_x4.png"
    assert output_name("a.tif", 2.5, "tiff") == "a_x2.5.tif"


def test_config_names_the_bad_key(tmp_path):
    with pytest.raises(ValueError, match="queue_size"):
        ServeConfig(jobs_dir=tmp_path, model="x4plus", queue_size=0)
    with pytest.raises(ValueError, match="token"):
        ServeConfig(jobs_dir=tmp_path, model="x4plus", token=" ")


def test_model_choices_offer_a_weights_file_by_its_name():
    choices, default = model_choices("soccer")
    assert default == "soccer-x4plus" and choices[0].name == "x4plus"
    choices, default = model_choices("/models/runs/net_g_5000.pth")
    assert default == "net_g_5000.pth" and choices[0].ref == "/models/runs/net_g_5000.pth"
    _, default = model_choices("/elsewhere/x4plus")  # a file named like a built-in does not hide it
    assert default == "file:x4plus"


def _upload(name="a.png"):
    return Upload(name=name, data=b"bytes", format="png", width=4, height=3)


def test_store_round_trips_jobs_and_ignores_foreign_folders(tmp_path):
    store = JobStore(tmp_path)
    job = store.create([_upload()], model="x4plus", outscale=2.0, format="png")
    store.update_file(job.id, 0, status="done", progress=1.0, output_name="a_x2.png", output_width=8, output_height=6)
    store.update(job.id, status="done", finished=123.0)
    (tmp_path / "not-a-job").mkdir()
    (tmp_path / ".AAAAAAAAAAAAAAAAAAAAAA.tmp").mkdir()  # a creation that never finished

    reloaded = JobStore(tmp_path)
    assert reloaded.load() == 1
    assert reloaded.get(job.id) == store.get(job.id)
    assert (tmp_path / "not-a-job").is_dir()
    assert not (tmp_path / ".AAAAAAAAAAAAAAAAAAAAAA.tmp").exists()


def test_store_drops_an_unreadable_job(tmp_path, caplog):
    store = JobStore(tmp_path)
    job = store.create([_upload()], model="x4plus", outscale=None, format="auto")
    record = json.loads((tmp_path / job.id / "job.json").read_text())
    record["surprise"] = 1
    (tmp_path / job.id / "job.json").write_text(json.dumps(record))
    assert JobStore(tmp_path).load() == 0
    assert "unknown key 'surprise'" in caplog.text
    assert not (tmp_path / job.id).exists()


def test_store_cleanup_removes_only_old_finished_jobs(tmp_path):
    store = JobStore(tmp_path)
    old = store.create([_upload()], model="m", outscale=None, format="auto")
    store.update(old.id, status="done", finished=1000.0)
    recent = store.create([_upload()], model="m", outscale=None, format="auto")
    store.update(recent.id, status="failed", finished=1900.0)
    waiting = store.create([_upload()], model="m", outscale=None, format="auto")
    assert store.cleanup(500, now=2000.0) == [old.id]
    assert store.get(old.id) is None and not (tmp_path / old.id).exists()
    assert store.get(recent.id) is not None and store.get(waiting.id) is not None


def test_store_zip_holds_done_files_under_unique_names(tmp_path):
    store = JobStore(tmp_path)
    job = store.create([_upload("a.png"), _upload("a.png"), _upload("b.png")], model="m", outscale=None, format="auto")
    for index, status in enumerate(("done", "done", "failed")):
        if status == "done":
            store.output_path(job.id, index, "a_x4.png").write_bytes(f"result {index}".encode())
            store.update_file(job.id, index, status="done", output_name="a_x4.png")
        else:
            store.update_file(job.id, index, status="failed", error="b.png: bad")
    with zipfile.ZipFile(store.results_zip(store.get(job.id))) as archive:
        assert archive.namelist() == ["a_x4.png", "a_x4 (2).png"]
        assert archive.read("a_x4 (2).png") == b"result 1"


def test_job_progress_counts_finished_files_whole():
    job = Job(id="A" * 22, model="m", outscale=None, format="auto", created=0.0, files=())
    assert job.progress == 1.0
    from soccersr.serve.store import JobFile

    files = (JobFile("a", "png", 1, 1, status="failed"), JobFile("b", "png", 1, 1, status="running", progress=0.5))
    assert Job(id="A" * 22, model="m", outscale=None, format="auto", created=0.0, files=files).progress == 0.75


# --- the command --------------------------------------------------------------------------------


def test_serve_help_lists_the_options(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["serve", "--help"])
    assert stop.value.code == 0
    out = capsys.readouterr().out
    for option in ("--host", "--port", "--model", "--token", "--no-auth", "--max-upload-mb", "--jobs-dir"):
        assert option in out


def test_a_missing_extra_is_one_line_and_exit_2(monkeypatch, capsys):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "uvicorn" else real(name, *a))
    assert main(["serve"]) == 2
    err = capsys.readouterr().err.strip()
    assert (
        err
        == "soccersr serve: error: soccersr serve needs the optional package 'uvicorn': pip install 'soccersr[serve]'"
    )


def test_a_network_host_needs_a_token_or_no_auth(monkeypatch, capsys, tmp_path):
    from soccersr.commands import serve

    monkeypatch.delenv(serve.TOKEN_ENV, raising=False)
    assert main(["serve", "--host", "0.0.0.0"]) == 2
    assert "--token" in capsys.readouterr().err

    started = []
    monkeypatch.setattr(serve, "_serve", lambda args, *, token, local: started.append((token, local)) or 0)
    assert main(["serve", "--host", "0.0.0.0", "--token", "t"]) == 0
    assert main(["serve", "--host", "0.0.0.0", "--no-auth"]) == 0
    monkeypatch.setenv(serve.TOKEN_ENV, "from-env")
    assert main(["serve", "--host", "192.168.1.5"]) == 0
    assert main(["serve"]) == 0  # local, and the token still applies when one is set
    assert started == [("t", False), (None, False), ("from-env", False), ("from-env", True)]
    with pytest.raises(SystemExit):
        main(["serve", "--token", "t", "--no-auth"])


def test_an_unknown_model_stops_the_command_before_it_listens(tmp_path, capsys, monkeypatch):
    import uvicorn

    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: pytest.fail("the server must not start"))
    assert main(["serve", "--model", str(tmp_path / "missing.pth"), "--jobs-dir", str(tmp_path / "jobs")]) == 2
    assert "missing.pth" in capsys.readouterr().err


def test_models_load_once_and_listing_never_waits_for_a_load():
    from serve_helpers import open_tiny
    from soccersr.options import EngineOptions
    from soccersr.serve.engines import Engines

    opened, loading, gate = [], threading.Event(), threading.Event()

    def slow_open(ref, options):
        opened.append(ref)
        loading.set()
        gate.wait(30)
        return open_tiny(ref, options)

    engines = Engines("soccer-x4plus", EngineOptions(), slow_open)
    loader = threading.Thread(target=engines.get, args=("x4plus",))
    loader.start()
    assert loading.wait(30)
    listed = []
    lister = threading.Thread(target=lambda: listed.append(engines.scale_of("RealESRGAN_x4plus")))
    lister.start()
    lister.join(10)  # a deadlock guard, not a speed check: it returns at once unless it waits for the load
    answered_during_load = listed == [4]
    gate.set()
    loader.join()
    assert answered_during_load
    assert engines.get("x4plus") is engines.get("RealESRGAN_x4plus")
    assert opened == ["x4plus"]
    with pytest.raises(KeyError):
        engines.get("/etc/passwd")
