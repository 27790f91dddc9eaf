"""The web page end to end in headless Chromium: a real server, a real photo, a real browser.

Debian's chromium is driven through Playwright (no browser download: the
executable is /usr/bin/chromium, installed by .ci/run). Under CI=true or
FACEPOINTS_REQUIRE_DATA=1 a missing browser fails the test instead of skipping it.
Set FACEPOINTS_SCREENSHOT=docs/web.png to also save the README's screenshot.
"""

from __future__ import annotations

import base64
import io
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facepoints.cli import sample_image_path
from facepoints.inference import load, read_image
from facepoints.testing.photos import phone_jpeg, sample_crop
from tests.helpers import assert_on_the_face

CHROMIUM = Path(os.environ.get("FACEPOINTS_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
REQUIRED = os.environ.get("FACEPOINTS_REQUIRE_DATA") == "1" or os.environ.get("CI") == "true"
TIMEOUT_MS = 60_000


def _unavailable(why: str) -> None:
    if REQUIRED:
        pytest.fail(f"{why}; the browser test is required here (CI=true or FACEPOINTS_REQUIRE_DATA=1): "
                    "install Debian's chromium (apt-get install chromium) and the [test] extra")
    pytest.skip(why)


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    from facepoints.serve import serve_in_background

    with serve_in_background() as url:
        yield url


@pytest.fixture(scope="module")
def browser_context():
    """Chromium with a fresh profile directory, so no state leaks between runs."""
    if not CHROMIUM.is_file():
        _unavailable(f"no Chromium at {CHROMIUM}")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the Python package playwright is not installed")
    with tempfile.TemporaryDirectory(prefix="facepoints-chromium-") as profile, sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            profile, executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1000, "height": 900}, accept_downloads=True)
        try:
            yield context
        finally:
            context.close()


@pytest.fixture
def page(browser_context, server: str):
    page = browser_context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(server)
    page.wait_for_function("document.getElementById('model').options.length > 0", timeout=TIMEOUT_MS)
    yield page
    page.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def canvas_pixels(page) -> np.ndarray:
    url = page.evaluate("document.getElementById('canvas').toDataURL('image/png')")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("RGB")).astype(int)


def wait_for_result(page, state: str = "done") -> None:
    page.wait_for_selector(f"#app[data-state='{state}']", timeout=TIMEOUT_MS)


def redraw(page, toggle: str) -> None:
    """Click a toggle and wait until the canvas has been drawn again (pose and glasses ask the server first)."""
    before = int(page.get_attribute("#app", "data-draws") or 0)
    page.get_by_label(toggle).click()
    page.wait_for_function(f"Number(document.getElementById('app').dataset.draws) > {before}", timeout=TIMEOUT_MS)


def test_upload_draws_points_and_lists_the_face(page, tmp_path: Path) -> None:
    assert "facepoints" in page.title()
    # every control has a label a screen reader can announce
    unlabelled = page.evaluate("""[...document.querySelectorAll('input, select')]
        .filter(e => !e.labels || e.labels.length === 0).map(e => e.id)""")
    assert unlabelled == []
    assert page.get_attribute("#status", "aria-live") == "polite"

    with page.expect_response("**/v1/landmarks**") as response:
        page.get_by_label("Photo to analyse").set_input_files(str(sample_image_path()))
    wait_for_result(page)
    result = response.value.json()
    assert page.get_attribute("#app", "data-faces") == "1" and len(result["faces"]) == 1
    rows = page.locator("#faces tbody tr")
    assert rows.count() == 1
    cells = rows.first.locator("td")
    assert cells.count() == 5 and "/" in cells.nth(3).inner_text()  # yaw / pitch / roll
    assert "1 face(s)" in page.inner_text("#status")
    assert "1 face(s)" in page.get_attribute("#canvas", "aria-label")

    photo = np.asarray(Image.open(sample_image_path()).convert("RGB")).astype(int)
    marked = canvas_pixels(page)
    assert marked.shape == photo.shape
    drawn = np.abs(marked - photo).sum(axis=2) > 60
    ys, xs = np.nonzero(drawn)
    x0, y0, x1, y1 = result["faces"][0]["box"]
    assert drawn.sum() > 300, "no points or box drawn on the canvas"
    assert x0 - 10 < np.median(xs) < x1 + 10 and y0 - 10 < np.median(ys) < y1 + 10, "drawing is off the face"

    if os.environ.get("FACEPOINTS_SCREENSHOT"):
        redraw(page, "Head pose axes")
        page.screenshot(path=os.environ["FACEPOINTS_SCREENSHOT"], full_page=True)
        redraw(page, "Head pose axes")

    redraw(page, "Points")
    redraw(page, "Boxes")
    bare = canvas_pixels(page)
    assert np.abs(bare - photo).mean() < 3, "with points and boxes off the canvas should show the plain photo"
    redraw(page, "Head pose axes")
    axes = canvas_pixels(page)
    assert (np.abs(axes - bare).sum(axis=2) > 60).sum() > 100, "pose axes not drawn"
    redraw(page, "Head pose axes")
    redraw(page, "Glasses effect")
    glasses = canvas_pixels(page)
    assert (np.abs(glasses - bare).sum(axis=2) > 60).sum() > 300, "glasses not drawn"

    with page.expect_download() as download:
        page.get_by_role("button", name="Download JSON").click()
    saved = json.loads(Path(download.value.path()).read_text())
    assert saved["file"] == sample_image_path().name and len(saved["faces"]) == 1
    assert saved["faces"][0]["points"] == result["faces"][0]["points"]


def test_exif_rotated_photo_is_shown_upright_with_points_on_the_face(page, tmp_path: Path) -> None:
    upright = sample_crop(sample_image_path())
    upright.save(tmp_path / "upright.png")
    phone_jpeg(sample_image_path(), tmp_path / "rotated.jpg")
    with page.expect_response("**/v1/landmarks**") as response:
        page.get_by_label("Photo to analyse").set_input_files(str(tmp_path / "rotated.jpg"))
    wait_for_result(page)
    result = response.value.json()
    assert (result["width"], result["height"]) == (512, 400) and len(result["faces"]) == 1
    (reference,) = load().detect(read_image(tmp_path / "upright.png"))
    assert_on_the_face(result["faces"][0]["points"], reference.points)
    redraw(page, "Points")
    redraw(page, "Boxes")
    shown = canvas_pixels(page)
    assert shown.shape == (400, 512, 3)
    assert np.abs(shown - np.asarray(upright).astype(int)).mean() < 4, "the page does not show the photo upright"


def test_dropped_non_image_shows_the_error(page) -> None:
    page.evaluate("""() => {
        const data = new DataTransfer();
        data.items.add(new File(["just text"], "notes.jpg", { type: "image/jpeg" }));
        document.getElementById('drop').dispatchEvent(new DragEvent('drop', { dataTransfer: data, bubbles: true }));
    }""")
    wait_for_result(page, "error")
    assert "not an image" in page.inner_text("#status")
    assert page.locator("#faces tbody tr").count() == 0
    assert page.get_attribute("#download", "disabled") is not None


def test_api_docs_render_without_a_network(browser_context, server: str) -> None:
    """Swagger UI came from a CDN, so /docs was blank offline; every request it makes must now stay on the server."""
    page = browser_context.new_page()
    foreign: list[str] = []

    def only_this_server(route) -> None:
        if route.request.url.startswith(server):
            route.continue_()
        else:
            foreign.append(route.request.url)
            route.abort()

    page.route("**/*", only_this_server)
    try:
        page.goto(f"{server}/docs")
        paths = page.locator(".opblock-summary-path")
        paths.first.wait_for(timeout=TIMEOUT_MS)
        shown = {paths.nth(i).inner_text().strip() for i in range(paths.count())}
        assert {"/v1/landmarks", "/v1/render", "/v1/models", "/healthz"} <= shown, shown
        page.locator(".opblock-summary-path", has_text="/v1/landmarks").click()
        page.get_by_role("button", name="Try it out").first.wait_for(timeout=TIMEOUT_MS)  # the operation opened
    finally:
        page.close()
    assert foreign == [], f"/docs asked other hosts for {foreign}"
