"""End-to-end: notebooks in a real JupyterLab in headless Debian Chromium, widgets clicked by the browser.

Skipped when Chromium or Playwright's Python package is missing, unless CATALYST_REQUIRE_BROWSER=1 (as
``make test`` sets it), where that is a failure.  Screenshots go to ``tests/artifacts/`` (not committed).
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from e2e.lab import CHROMIUM_ARGS, JupyterLab, LabPage, chromium_path

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "tests" / "artifacts"
REQUIRED = os.environ.get("CATALYST_REQUIRE_BROWSER") == "1"


def _need(what: str) -> None:
    if REQUIRED:
        pytest.fail(f"CATALYST_REQUIRE_BROWSER=1 but {what}")
    pytest.skip(what)


@pytest.fixture(scope="module")
def playwright():
    if chromium_path() is None:
        _need("Debian chromium is not installed (scripts/install.sh VENV test installs it)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _need("the playwright Python package is not installed (pip install '.[dev]')")
    with sync_playwright() as pw:
        yield pw


@pytest.fixture
def lab_page(playwright, tmp_path):
    """A function that serves a folder in a private JupyterLab and opens a notebook in Chromium."""
    opened = []

    def open_notebook(folder: Path, name: str, *, env: dict[str, str] | None = None) -> LabPage:
        lab = JupyterLab(folder, tmp_path / "lab", env={"PYTHONPATH": str(ROOT), **(env or {})}).__enter__()
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "lab" / "chromium-profile"), executable_path=chromium_path(), headless=True,
            args=CHROMIUM_ARGS, viewport={"width": 1280, "height": 1600},
            env={**os.environ, "HOME": str(tmp_path / "lab" / "home")})
        opened.append((lab, context))
        page = context.pages[0] if context.pages else context.new_page()
        page.set_default_timeout(120_000)
        return LabPage(page, lab).open(name)

    yield open_notebook
    for lab, context in opened:
        context.close()
        lab.__exit__()


def _code_cell(source: str, tags: list[str] | None = None) -> dict:
    return {"cell_type": "code", "execution_count": None, "metadata": {"tags": tags or []}, "outputs": [],
            "source": source}


def _write_notebook(path: Path, cells: list[dict]) -> None:
    nb = {"cells": cells, "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                       "language": "python"}},
          "nbformat": 4, "nbformat_minor": 5}
    path.write_text(json.dumps(nb))


def test_a_widget_button_clicked_in_the_browser_reaches_the_kernel(lab_page, tmp_path):
    folder = tmp_path / "nb"
    folder.mkdir()
    _write_notebook(folder / "click.ipynb", [
        _code_cell("import ipywidgets as w\nclicks = []\nlabel = w.Label('not pressed')\n"
                   "button = w.Button(description='Press me')\n"
                   "button.on_click(lambda _b: (clicks.append(1), setattr(label, 'value', 'pressed')))\n"
                   "w.VBox([button, label])", tags=["panel"]),
        _code_cell("print('clicks seen by the kernel:', len(clicks))"),
    ])
    lab = lab_page(folder, "click.ipynb")
    lab.run_all()  # sent as soon as the kernel connection is up: must not be dropped
    last = lab.n_cells() - 1
    lab.cell(last).get_by_text("clicks seen by the kernel: 0").wait_for()
    lab.page.get_by_role("button", name="Press me").click()
    lab.page.get_by_text("pressed", exact=True).wait_for()
    lab.run_cells(last, last + 1)
    lab.cell(last).get_by_text("clicks seen by the kernel: 1").wait_for()
    assert lab.errors() == []
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    lab.page.screenshot(path=str(ARTIFACTS / "browser_widget_click.png"), full_page=True)


def test_human_in_the_loop_notebook_approve_click_restarts_from_the_chosen_text(lab_page, tmp_path):
    """02_human_in_the_loop: run to the panel, click Approve in the rendered panel, run the rest, and
    check that the optimizer restarted from the text of the proposal that was clicked."""
    folder = tmp_path / "notebooks"
    shutil.copytree(ROOT / "notebooks", folder, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    lab = lab_page(folder, "02_human_in_the_loop.ipynb")
    panel = lab.cell_index("approval-panel")
    lab.run_cells(0, panel + 1, timeout=600)
    assert lab.errors() == []
    cell = lab.cell(panel)
    chosen = cell.locator("textarea").first.input_value()
    assert "{}" in chosen
    cell.get_by_role("button", name="Approve #1").click()
    cell.get_by_text("the next step restarts from").wait_for()
    from playwright.sync_api import expect  # the fixture above has already required playwright

    # the outcome text and the disabled state arrive as separate widget messages: wait for both
    expect(cell.get_by_role("button", name="Approve #1")).to_be_disabled(timeout=15_000)
    lab.run_cells(panel + 1, lab.n_cells(), timeout=600)
    assert lab.errors() == []
    # the cell after the panel did not decide again: the click did
    lab.cell(lab.cell_index("after-panel")).get_by_text(f"approve -> {chosen}").wait_for()
    restarted = lab.cell(lab.cell_index("restarted"))
    restarted.get_by_text(f"restarted from: {chosen}").wait_for()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    cell.scroll_into_view_if_needed()
    lab.page.screenshot(path=str(ARTIFACTS / "02_human_in_the_loop_approved.png"), full_page=True)


def test_trajectories_notebook_renders_the_inspector_and_figures(lab_page, tmp_path):
    """03_trajectories under "Run All": the inspector's plotly FigureWidget and its context table render."""
    folder = tmp_path / "notebooks"
    shutil.copytree(ROOT / "notebooks", folder, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    lab = lab_page(folder, "03_trajectories.ipynb")
    lab.run_all(timeout=600)
    assert lab.errors() == []
    inspector = lab.page.locator(".jp-Cell", has=lab.page.locator("table.catalyst-context")).first
    inspector.locator(".js-plotly-plot").first.wait_for()
    assert inspector.locator("table.catalyst-context tr").count() >= 2, "one row per context slot"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    # the two figures of the reloaded run (the last two cells) are shown by plots.show_figure: interactive
    # where the plotly renderer runs, the PNG beside it otherwise; JupyterLab lays out only the cells near
    # the view (content-visibility), so bring each into view and wait for its figure to be attached
    n = lab.n_cells()
    for index in (n - 2, n - 1):
        cell = lab.cell(index)
        cell.scroll_into_view_if_needed()
        cell.locator(".js-plotly-plot, .jp-OutputArea-output img").first.wait_for(state="attached")
    inspector.scroll_into_view_if_needed()
    lab.page.screenshot(path=str(ARTIFACTS / "03_trajectories_inspector.png"), full_page=False)
