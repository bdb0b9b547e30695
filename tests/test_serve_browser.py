"""The web page in headless Chromium (Debian's ``chromium``, driven by Playwright; never ``playwright install``):
a keyboard-driven text search and classification against a real server, asserted on the DOM, screenshots saved.

Set ``CLIPFORGE_UPDATE_DOCS=1`` to also write the README's screenshot to docs/serve.png."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

pytest.importorskip("fastapi")

from clipforge.index import SearchFilter  # noqa: E402
from clipforge.runtime.model import ZeroShotModel  # noqa: E402
from clipforge.testing.corpus import NOUNS  # noqa: E402
from clipforge.testing.server import ServerProcess  # noqa: E402

CHROMIUM = os.environ.get("CLIPFORGE_CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
DOCS = Path(__file__).resolve().parents[1] / "docs" / "serve.png"
BROKEN_IMAGES = """[...document.images].filter(i => i.getClientRects().length > 0 || !i.getAttribute('src'))
    .filter(i => !i.getAttribute('src') || (i.complete && i.naturalWidth === 0)).map(i => i.id || i.alt)"""
LABELS = ["red circle", "blue square", "green triangle", "yellow cross", "purple circle"]


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="the 'playwright' package is not installed")
    if not (Path(CHROMIUM).is_file() or shutil.which(CHROMIUM)):
        pytest.skip(
            f"no Chromium at {CHROMIUM}: install Debian's package with 'apt-get install -y chromium' "
            "(.ci/run does) or set CLIPFORGE_CHROMIUM"
        )
    with sync_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def server(index_model, shapes_index):
    args = ["-m", str(index_model), "--db", str(shapes_index.backend.path), "--threads", "1"]
    with ServerProcess(args) as srv:
        yield srv


def _next_chooser(page, choosers, timeout_s: float = 20.0):
    for _ in range(int(timeout_s * 10)):
        if choosers:
            return choosers.pop()
        page.wait_for_timeout(100)
    raise AssertionError("pressing Enter on the drop zone opened no file chooser")


@pytest.mark.slow
def test_page_search_and_classify_with_the_keyboard(
    browser, server, shapes_index, shapes_dataset, index_model, tmp_path
):
    page = browser.new_page(viewport={"width": 1000, "height": 900})
    errors, choosers = [], []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on(
        "filechooser", lambda chooser: choosers.append(chooser)
    )  # intercepting from the start: no race with the key press
    page.goto(server.url + "/")
    page.wait_for_selector("body[data-ready='1']", timeout=20_000)
    assert page.is_visible("#search-panel")
    # before any image is chosen: an empty-state hint, and no broken image (an <img> without a loaded picture)
    assert page.evaluate(BROKEN_IMAGES) == []
    assert page.is_visible("#classify-empty")

    # text search: type, press Enter; the grid holds the index's top hits, best first
    page.fill("#search-k", "10")
    page.fill("#search-text", "a photo of a red circle.")
    page.press("#search-text", "Enter")
    page.wait_for_selector("#search-results li.hit", timeout=20_000)
    ids = [int(x) for x in page.eval_on_selector_all("#search-results li.hit", "els => els.map(e => e.dataset.id)")]
    assert ids == [h.id for h in shapes_index.search(text="a photo of a red circle.", k=10, min_score="auto")]
    assert page.eval_on_selector_all("#search-results .name", "els => els.map(e => e.textContent)")
    page.wait_for_function(
        "[...document.querySelectorAll('#search-results img')].every(i => i.naturalWidth > 0)", timeout=20_000
    )

    # "matches only" (min_score auto) is the default: a query nothing in the library matches says why and
    # offers "show all", which unticks it and shows the closest images anyway
    absent = next(t for t in (f"a photo of a {n}." for n in NOUNS) if not shapes_index.search(t, min_score="auto"))
    page.fill("#search-text", absent)
    page.press("#search-text", "Enter")
    page.wait_for_selector("#search-results li.none", timeout=20_000)
    assert page.text_content("#search-results li.none").startswith("no match: nothing in this library stands out")
    page.click("#search-results li.none button")
    closest = ",".join(str(h.id) for h in shapes_index.search(absent, k=10))
    page.wait_for_function(
        f"[...document.querySelectorAll('#search-results li.hit')].map(e => e.dataset.id).join() === '{closest}'",
        timeout=20_000,
    )
    assert not page.is_checked("#search-auto")
    page.check("#search-auto")

    # image search: an example image as the query, text cleared
    example = next((shapes_dataset.root / "test" / "blue square").iterdir())
    page.set_input_files("#search-file", str(example))  # (the keyboard path to a chooser is tested below)
    assert page.is_visible("#search-query")
    page.fill("#search-text", "")
    page.click("#search-form button[type=submit]")
    expected = [h.id for h in shapes_index.search(image=example.read_bytes(), k=10, min_score="auto")]
    page.wait_for_function(
        f"document.querySelector('#search-results li.hit')?.dataset.id === '{expected[0]}'", timeout=20_000
    )
    assert [
        int(x) for x in page.eval_on_selector_all("#search-results li.hit", "els => els.map(e => e.dataset.id)")
    ] == expected
    page.fill("#search-text", "a photo of a red circle.")
    page.click("#search-clear-image")
    assert not page.is_visible("#search-query")
    page.press("#search-text", "Enter")
    page.wait_for_function(
        f"document.querySelector('#search-results li.hit')?.dataset.id === '{ids[0]}'", timeout=20_000
    )
    page.wait_for_function(
        "[...document.querySelectorAll('#search-results img')].every(i => i.naturalWidth > 0)", timeout=20_000
    )

    # a result opens the full image in the viewer (fetched with the key like thumbnails); Escape closes it
    page.click("#search-results li.hit a")
    page.wait_for_function("document.querySelector('#viewer-image')?.naturalWidth > 0", timeout=20_000)
    assert page.is_visible("#viewer") and page.text_content("#viewer-caption")
    page.keyboard.press("Escape")
    page.wait_for_function("!document.querySelector('#viewer').open", timeout=5_000)

    # filters: newest first equals Index.search with the same filter; a camera no photo has gives no results
    page.click("#search-filters summary")
    page.select_option("#filter-sort", "date")
    page.press("#search-text", "Enter")
    by_date = [
        h.id
        for h in shapes_index.search(
            "a photo of a red circle.", k=10, min_score="auto", filters=SearchFilter(sort="date")
        )
    ]
    page.wait_for_function(
        f"[...document.querySelectorAll('#search-results li.hit')].map(e => e.dataset.id).join() === "
        f"'{','.join(map(str, by_date))}'",
        timeout=20_000,
    )
    page.fill("#filter-camera", "no such camera")
    page.press("#search-text", "Enter")
    page.wait_for_function("document.querySelector('#search-results li:not(.hit)')", timeout=20_000)
    page.fill("#filter-camera", "")
    page.select_option("#filter-sort", "score")
    page.click("#search-filters summary")  # folded again; the search as before, for the screenshots
    page.press("#search-text", "Enter")
    page.wait_for_function(
        f"document.querySelector('#search-results li.hit')?.dataset.id === '{ids[0]}'", timeout=20_000
    )

    # classify: open the file chooser from the drop zone with Enter, type labels, submit with Enter
    photo = next((shapes_dataset.root / "test" / "red circle").iterdir())
    page.focus("#classify-drop")
    page.keyboard.press("Enter")
    _next_chooser(page, choosers).set_files(str(photo))
    page.wait_for_function("document.querySelector('#classify-preview')?.naturalWidth > 0", timeout=20_000)
    assert not page.is_visible("#classify-empty") and page.evaluate(BROKEN_IMAGES) == []
    page.fill("#labels", ", ".join(LABELS))
    page.focus("#classify-form button[type=submit]")
    page.keyboard.press("Enter")
    page.wait_for_selector("#classify-results li.bar", timeout=20_000)
    bars = page.eval_on_selector_all(
        "#classify-results li.bar", "els => els.map(e => [e.dataset.label, Number(e.dataset.score)])"
    )
    expected = ZeroShotModel.from_onnx(index_model).classify([photo], LABELS, top_k=len(LABELS))[0]
    assert [b[0] for b in bars] == [r["label"] for r in expected] and bars[0][0] == "red circle"
    assert bars[0][1] == pytest.approx(expected[0]["score"], abs=1e-5)
    assert not errors and not page.is_visible("#error")
    page.screenshot(path=str(tmp_path / "serve.png"), full_page=True)
    if os.environ.get("CLIPFORGE_UPDATE_DOCS"):
        page.screenshot(path=str(DOCS), full_page=True)

    # phone width: nothing overflows sideways
    page.set_viewport_size({"width": 390, "height": 844})
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.screenshot(path=str(tmp_path / "serve-phone.png"), full_page=True)
    page.close()


@pytest.mark.slow
def test_page_asks_for_the_api_key(browser, index_model):
    with ServerProcess(["-m", str(index_model), "--threads", "1"], env={"CLIPFORGE_API_KEY": "k3y"}) as srv:
        page = browser.new_page(viewport={"width": 390, "height": 700})
        page.goto(srv.url + "/")
        page.wait_for_selector("#key-form:not([hidden])", timeout=20_000)
        assert "Authorization" in page.text_content("#error")
        page.fill("#api-key", "k3y")
        page.press("#api-key", "Enter")
        page.wait_for_selector("body[data-ready='1']", timeout=20_000)
        assert "model clip" in page.text_content("#status") and not page.is_visible("#error")
        assert not page.is_visible("#search-panel")  # no --db: no search panel
        page.close()
