"""The page in a real browser: Debian's headless Chromium, driven by Playwright (never its own browser build).

Upload two bundled samples, wait for the results, compare (slider by keyboard and by dragging,
zoom), download one and all of them, and check the page loads nothing from elsewhere and fits a
phone's width. The screenshot it takes is the README's picture of the page: with
``SOCCERSR_SERVE_SCREENSHOT=docs/serve-page.png`` the test runs the real default model and
writes the picture there.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
import zipfile
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np
import pytest
import uvicorn

from serve_helpers import REPO, config, open_tiny
from soccersr.serve.app import create_app

CHROMIUM = Path(shutil.which("chromium") or "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SAMPLES = [REPO / "samples" / "01_players_ball.jpg", REPO / "samples" / "03_goal_keeper.png"]
SCREENSHOT = os.environ.get("SOCCERSR_SERVE_SCREENSHOT")

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="no Chromium here: install Debian's package (apt-get install chromium)"
)
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is a dev dependency: pip install -e '.[dev]'")


@contextmanager
def live_server(tmp_path: Path, **overrides):
    """uvicorn in a thread on a free loopback port, serving the app; yields its URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    open_engine = None if SCREENSHOT else open_tiny  # the README's picture shows the real model's result
    app = create_app(config(tmp_path, **overrides), open_engine=open_engine)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)


BROWSER_TIMEOUT_MS = 60_000


@contextmanager
def browser_page(base_url: str, *, width: int = 1100, height: int = 1000):
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": width, "height": height}, accept_downloads=True)
            # CI machines are small and may be busy: Playwright's 5 s defaults fail a slow but working page.
            context.set_default_timeout(BROWSER_TIMEOUT_MS)
            sync_api.expect.set_options(timeout=BROWSER_TIMEOUT_MS)
            page = context.new_page()
            foreign = []
            page.on(
                "request",
                lambda r: None if r.url.startswith((base_url, "blob:", "data:")) else foreign.append(r.url),
            )
            yield page, foreign
        finally:
            browser.close()


def _decode(path: str | Path) -> np.ndarray:
    image = cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_UNCHANGED)
    assert image is not None
    return image


def test_upload_compare_and_download_in_chromium(tmp_path):
    expect = sync_api.expect
    with live_server(tmp_path) as url, browser_page(url) as (page, foreign):
        page.goto(url)
        expect(page.locator("#model")).to_have_value("soccer-x4plus")
        expect(page.locator("#limits")).to_contain_text("MB per photo")

        page.set_input_files("#files", [str(p) for p in SAMPLES])
        items = page.locator("#queue .item")
        expect(items).to_have_count(2)
        for index in range(2):
            expect(items.nth(index).locator(".state")).to_have_text("Done: 960×540", timeout=300_000)
        expect(page.locator("#download-all")).to_be_enabled()

        # Compare: the result at full size under the split.
        items.nth(0).get_by_role("button", name="Compare").click()
        viewer = page.locator("#viewer")
        expect(viewer).to_be_visible()
        expect(page.locator("#after")).to_have_js_property("naturalWidth", 960)
        assert page.eval_on_selector("#before", "img => img.naturalWidth") == 240

        clip = "document.querySelector('#after').style.clipPath"
        start = page.evaluate(clip)
        split = page.locator("#split")
        split.focus()
        for _ in range(10):
            page.keyboard.press("ArrowLeft")
        assert split.input_value() == "40"
        assert page.evaluate(clip) != start

        knob = page.locator("#divider .knob").bounding_box()
        page.mouse.move(knob["x"] + knob["width"] / 2, knob["y"] + knob["height"] / 2)
        page.mouse.down()
        page.mouse.move(knob["x"] + 200, knob["y"] + knob["height"] / 2, steps=5)
        page.mouse.up()
        assert int(split.input_value()) > 55

        page.get_by_role("button", name="1:1").click()
        expect(page.locator("#zoom-level")).to_have_text("100%")
        assert page.eval_on_selector("#stage", "s => s.offsetWidth") == 960
        page.get_by_role("button", name="Zoom in").click()
        expect(page.locator("#zoom-level")).to_have_text("150%")
        assert page.eval_on_selector("#stage", "s => s.offsetWidth") == 1440
        page.get_by_role("button", name="Fit").click()

        # Download one result, then all of them as a zip (written by the page's own zip.js).
        with page.expect_download() as download:
            items.nth(0).get_by_role("button", name="Download").click()
        assert download.value.suggested_filename == "01_players_ball_x4.jpg"
        assert _decode(download.value.path()).shape == (540, 960, 3)

        with page.expect_download() as download:
            page.get_by_role("button", name="Download all (zip)").click()
        assert download.value.suggested_filename == "soccersr-results.zip"
        with zipfile.ZipFile(download.value.path()) as archive:
            assert archive.testzip() is None  # every CRC the page wrote is right
            assert archive.namelist() == ["01_players_ball_x4.jpg", "03_goal_keeper_x4.png"]
            png = cv2.imdecode(np.frombuffer(archive.read("03_goal_keeper_x4.png"), np.uint8), cv2.IMREAD_UNCHANGED)
            assert png.shape[:2] == (540, 960)

        # Every form control has a label a screen reader can read.
        unlabeled = page.evaluate(
            """[...document.querySelectorAll('input, select, button')]
                 .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label') && !e.textContent.trim())
                 .map(e => e.id || e.outerHTML)"""
        )
        assert unlabeled == []

        items.nth(0).get_by_role("button", name="Compare").click()
        expect(page.locator("#after")).to_have_js_property("naturalWidth", 960)
        split.fill("45")
        split.dispatch_event("input")
        shot = Path(SCREENSHOT) if SCREENSHOT else tmp_path / "serve-page.png"
        shot.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(shot), full_page=True)
        assert _decode(shot).shape[1] == 1100

        # /docs renders Swagger UI from the package's own files.
        page.goto(f"{url}/docs")
        expect(page.locator(".opblock-summary-path", has_text="/api/jobs/{job_id}/result")).to_be_visible()
        assert foreign == []


def test_phone_width_and_token_link(tmp_path):
    """On a phone-sized screen nothing overflows sideways; a link with #token= signs the page in."""
    expect = sync_api.expect
    with live_server(tmp_path, token="desk-token") as url, browser_page(url, width=390, height=844) as (page, _):
        page.goto(f"{url}/#token=desk-token")
        expect(page.locator("#model")).to_have_value("soccer-x4plus")
        assert page.evaluate("location.hash") == ""  # the token leaves the address bar
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")

        page.evaluate("sessionStorage.clear()")
        page.goto(url)
        expect(page.locator("#token-panel")).to_be_visible()
        page.get_by_role("textbox", name="Token").fill("desk-token")
        page.get_by_role("button", name="Use token").click()
        expect(page.locator("#token-panel")).to_be_hidden()
        page.set_input_files("#files", str(SAMPLES[0]))
        expect(page.locator("#queue .item .state")).to_have_text("Done: 960×540", timeout=300_000)
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
