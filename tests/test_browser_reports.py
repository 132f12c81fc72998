"""Reports and notebooks looked at in the real browser (headless Debian Chromium through Playwright).

* A report from a sweep folder's cell opens with every network request refused and draws its figures
  from the sweep folder's one plotly.js; a report moved out of its folder says what is missing.
* A committed notebook opened in JupyterLab without running it shows every figure (interactive where
  JupyterLab trusts the output, its PNG where it does not).
* Every committed notebook, converted to HTML as a code host or nbviewer shows it (no JavaScript of the
  notebook runs there: figures are their static PNGs), fits a normal window width with its images drawn.

Screenshots go to ``tests/artifacts/`` (not committed) for a person to look at.  Skipped when Chromium or
Playwright's Python package is missing, unless CATALYST_REQUIRE_BROWSER=1 (``make test``).
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from e2e.lab import CHROMIUM_ARGS, JupyterLab, LabPage, chromium_path
from test_reports import sweep_folder

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "tests" / "artifacts"
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
WINDOW = {"width": 1280, "height": 900}  # a laptop's browser window


def _outputs(notebook: Path) -> list[dict]:
    cells = json.loads(notebook.read_text())["cells"]
    return [out for c in cells if c["cell_type"] == "code" for out in c.get("outputs", [])]


def _figure_count(notebook: Path) -> int:
    return sum(1 for out in _outputs(notebook) if "application/vnd.plotly.v1+json" in out.get("data", {}))


def _need(what: str) -> None:
    if os.environ.get("CATALYST_REQUIRE_BROWSER") == "1":
        pytest.fail(f"CATALYST_REQUIRE_BROWSER=1 but {what}")
    pytest.skip(what)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    if chromium_path() is None:
        _need("Debian chromium is not installed (scripts/install.sh VENV test installs it)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _need("the playwright Python package is not installed (pip install '.[dev]')")
    home = tmp_path_factory.mktemp("chromium-home")
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS,
                                      env={**os.environ, "HOME": str(home)})
        yield chromium
        chromium.close()


@pytest.fixture
def offline_page(browser):
    """A page whose every request other than ``file://`` is refused and recorded."""
    context = browser.new_context(viewport=WINDOW)
    refused: list[str] = []
    context.route(lambda url: not url.startswith("file://"),
                  lambda route: (refused.append(route.request.url), route.abort()))
    page = context.new_page()
    page.set_default_timeout(60_000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page, refused, errors
    context.close()


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    return sweep_folder(tmp_path_factory.mktemp("reports") / "sweep")


def _shot(page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=True)
    return path


def test_a_sweep_cells_report_draws_its_figures_offline(offline_page, sweep):
    page, refused, errors = offline_page
    report = next((sweep / "cells").glob("catalyst*/report.html"))
    page.goto(report.as_uri())
    page.locator(".js-plotly-plot .plot-container svg.main-svg").first.wait_for()
    assert page.locator(".js-plotly-plot").count() == 2
    assert page.locator(".js-plotly-plot .scatterlayer .trace").count() >= 3, "accuracy (2 splits) + loss lines"
    assert page.locator(".missing-plotly").count() == 0
    assert page.locator("table tr").count() >= 2, "the proposals table"
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), "nothing cut off"
    assert refused == [] and errors == []
    _shot(page, "report_sweep_cell.png")
    page.goto((sweep / "figure.html").as_uri())
    page.locator(".js-plotly-plot .scatterlayer .trace").first.wait_for()
    assert refused == [] and errors == []
    _shot(page, "report_sweep_figure.png")


def test_a_report_moved_out_of_its_folder_says_the_script_is_missing(offline_page, sweep, tmp_path):
    page, refused, _ = offline_page
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(next((sweep / "cells").glob("coop*/report.html")), alone / "report.html")
    page.goto((alone / "report.html").as_uri())
    page.locator(".missing-plotly").wait_for()
    assert "keep the page inside its folder" in page.locator(".missing-plotly").inner_text()
    assert refused == []


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_a_committed_notebook_reads_well_where_no_javascript_runs(browser, notebook, tmp_path):
    """As on a code host or nbviewer: the committed outputs as HTML, no kernel, no notebook JavaScript."""
    from nbconvert import HTMLExporter

    html, _ = HTMLExporter(template_name="lab").from_filename(str(notebook))
    page_file = tmp_path / f"{notebook.stem}.html"
    page_file.write_text(html)
    context = browser.new_context(viewport=WINDOW, java_script_enabled=False)
    context.route(lambda url: not url.startswith(("file://", "data:")), lambda route: route.abort())
    try:
        page = context.new_page()
        page.goto(page_file.as_uri())
        overflow = page.evaluate(
            "Array.from(document.querySelectorAll('.jp-OutputArea-output, .jp-InputArea-editor'))"
            ".filter(e => e.scrollWidth > e.clientWidth + 1 && getComputedStyle(e).overflowX === 'visible')"
            ".map(e => e.innerText.slice(0, 80))")
        assert overflow == [], f"outputs wider than the page: {overflow}"
        broken = page.evaluate("Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0)).length")
        assert broken == 0, "images that did not draw"
        assert page.locator(".jp-OutputArea-output img").count() >= _figure_count(notebook), "figures' PNGs"
        _shot(page, f"notebook_{notebook.stem}.png")
    finally:
        context.close()


@pytest.mark.parametrize("notebook", [p for p in NOTEBOOKS if _figure_count(p)], ids=lambda p: p.stem)
def test_a_committed_notebook_opened_in_jupyterlab_shows_its_figures_without_running(browser, notebook, tmp_path):
    folder = tmp_path / "notebooks"
    shutil.copytree(notebook.parent, folder, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    settings = tmp_path / "lab" / "settings" / "@jupyterlab" / "notebook-extension"
    settings.mkdir(parents=True)  # every cell in the page, not only those scrolled into view
    (settings / "tracker.jupyterlab-settings").write_text('{"windowingMode": "none"}')
    with JupyterLab(folder, tmp_path / "lab", env={"PYTHONPATH": str(ROOT)}) as lab:
        context = browser.new_context(viewport=WINDOW)
        try:
            page = context.new_page()
            page.set_default_timeout(120_000)
            LabPage(page, lab).open(notebook.name)
            drawn = page.locator(".jp-OutputArea-output .js-plotly-plot .main-svg, .jp-OutputArea-output img")
            drawn.first.wait_for()
            shown = page.evaluate("""() => Array.from(document.querySelectorAll('.jp-OutputArea-output'))
                .filter(o => o.querySelector('.js-plotly-plot .main-svg') || o.querySelector('img')).length""")
            assert shown >= _figure_count(notebook)
            clipped = page.evaluate("""() => Array.from(document.querySelectorAll('.jp-OutputArea-output img'))
                .filter(i => i.getBoundingClientRect().right > i.closest('.jp-OutputArea-output').getBoundingClientRect().right + 1)
                .map(i => i.naturalWidth)""")
            assert clipped == [], f"figures cut off at the right edge (natural widths {clipped})"
            drawn.first.scroll_into_view_if_needed()
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / f"jupyterlab_{notebook.stem}.png"))  # the first figure in view
        finally:
            context.close()
