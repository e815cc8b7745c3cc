"""The curator pages in a real browser: Playwright driving Debian's ``chromium`` against a live server.

The journey: search with a typed filter → open a structure → see its XRD plot → open the quarantine → see a reason;
and a bad filter showing its positioned error. A failing step saves a screenshot (to ``$XTALBASE_TEST_SCREENSHOTS``
or the test's tmp folder) and names it in the failure. ``XTALBASE_DOCS_SCREENSHOTS=1`` also writes the pictures of
``docs/web.md``. Skipped, with the reason, where Playwright or chromium is missing (``.ci/run`` installs chromium).
"""

from __future__ import annotations

import os
import re
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

from tests.conftest import BACKENDS

DOCS = Path(__file__).resolve().parents[2] / "docs"


def chromium_path() -> str | None:
    """The chromium executable: on PATH, or Debian's ``/usr/bin/chromium``."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    return "/usr/bin/chromium" if os.access("/usr/bin/chromium", os.X_OK) else None


@pytest.fixture(scope="module")
def browser() -> Iterator:
    """A headless chromium (``--no-sandbox`` when running as root, where chromium's sandbox refuses to start)."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="the Python package playwright is not installed: "
                                   "browser tests skipped")
    executable = chromium_path()
    if executable is None:
        pytest.skip("no chromium executable (apt-get install chromium; .ci/run does it): browser tests skipped")
    args = ["--no-sandbox"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []
    with sync_api.sync_playwright() as p:
        try:
            launched = p.chromium.launch(executable_path=executable, headless=True, args=args)
        except sync_api.Error as exc:
            pytest.skip(f"chromium at {executable} does not start under Playwright: {str(exc).splitlines()[0]}")
        yield launched
        launched.close()


@pytest.fixture
def page(browser):  # noqa: ANN001
    """A fresh page, 1200 px wide, 10 s for any wait."""
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    context.set_default_timeout(10_000)
    yield context.new_page()
    context.close()


@pytest.fixture
def shot(request, tmp_path) -> Path:  # noqa: ANN001
    """Where this test's failure screenshot goes: ``$XTALBASE_TEST_SCREENSHOTS`` or the test's tmp folder."""
    folder = Path(os.environ.get("XTALBASE_TEST_SCREENSHOTS") or tmp_path)
    return folder / (re.sub(r"[^\w.-]+", "_", request.node.name) + ".png")


@contextmanager
def screenshot_on_failure(pg, path: Path) -> Iterator[None]:  # noqa: ANN001
    """Run a test's steps; when one fails, save a full-page screenshot to ``path`` and name it in the failure."""
    try:
        yield
    except Exception as exc:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            pg.screenshot(path=str(path), full_page=True)
            where = f"screenshot of the page at failure: {path} (url {pg.url})"
        except Exception as shot_error:  # noqa: BLE001 - the original failure matters more than the screenshot's
            where = f"no screenshot ({shot_error})"
        raise AssertionError(f"{exc}\n{where}") from exc


def docs_screenshot(pg, name: str) -> None:  # noqa: ANN001
    """Write ``docs/<name>.png`` when ``XTALBASE_DOCS_SCREENSHOTS`` is set (the pictures of docs/web.md)."""
    if os.environ.get("XTALBASE_DOCS_SCREENSHOTS"):
        pg.screenshot(path=str(DOCS / f"{name}.png"), full_page=False)


# one backend is enough for the browser (test_pages.py covers the pages on every backend): SQLite, the cheaper one
pytestmark = pytest.mark.parametrize("served_db", ["sqlite" if "sqlite" in BACKENDS else BACKENDS[0]], indirect=True)


def test_search_structure_pattern_quarantine_journey(page, shot, live):
    expect = pytest.importorskip("playwright.sync_api").expect
    flt = 'elements HAS "O" AND nelements >= 3'
    expected_ids = live.db.query(flt).ids()
    with screenshot_on_failure(page, shot):
        page.goto(live.url + "/")
        page.fill("#filter", flt)
        page.click("#search-button")
        expect(page.locator("#result-count")).to_contain_text(f"{len(expected_ids)} structures match")
        links = page.locator("a.structure-link")
        first = int(links.first.inner_text())
        assert first == expected_ids[0]
        docs_screenshot(page, "web_search")
        links.first.click()
        page.wait_for_url(f"**/structures/{first}")
        formula = live.db.query(f'id = "{first}"').frame()["formula_reduced"].iloc[0]
        expect(page.locator("#formula")).to_have_text(formula)
        plot = page.locator("svg#xrd-plot")
        expect(plot).to_be_visible()
        assert plot.locator("line.peak").count() > 0
        box = plot.bounding_box()
        assert box is not None and box["width"] > 300 and box["height"] > 100  # drawn, not collapsed
        page.locator("#xrd-plot").scroll_into_view_if_needed()
        docs_screenshot(page, "web_structure")
        page.click("header >> text=Quarantine")
        page.wait_for_url("**/quarantine")
        reasons = set(live.db.quarantine()["reason"])
        first_reason = page.locator("#quarantine-list td.reason").first
        expect(first_reason).to_be_visible()
        assert first_reason.inner_text() in reasons
        docs_screenshot(page, "web_quarantine")
        reason = first_reason.inner_text()
        page.locator("#quarantine-list a.record-link").first.click()
        expect(page.locator("#reason")).to_have_text(reason)
        expect(page.locator("#raw-text, #raw-text-missing")).to_be_visible()


def test_example_fills_the_box_and_a_bad_filter_shows_its_position(page, shot, live):
    expect = pytest.importorskip("playwright.sync_api").expect
    with screenshot_on_failure(page, shot):
        page.goto(live.url + "/")
        example = page.locator("button.example").first
        example.click()
        assert page.input_value("#filter") == example.get_attribute("data-filter")
        bad = 'nsites > 3 AND elements HAS "Si'
        position = bad.index('"Si') + 1  # the unclosed quote
        page.fill("#filter", bad)
        page.press("#filter", "Enter")
        error = page.locator("#filter-error")
        expect(error).to_be_visible()
        expect(error).to_contain_text(f"position {position}")
        caret = page.locator("#filter-caret .caret").inner_text()
        assert caret.index("^") == position - 1
        docs_screenshot(page, "web_filter_error")


def test_a_failing_step_saves_a_screenshot_and_names_it(page, tmp_path, live):
    path = tmp_path / "shots" / "failing.png"  # a folder that does not exist yet
    page.goto(live.url + "/quarantine")
    with pytest.raises(AssertionError) as failure:
        with screenshot_on_failure(page, path):
            assert page.locator("#no-such-element").count() == 1, "the step fails"
    assert "the step fails" in str(failure.value) and str(path) in str(failure.value)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 1000
