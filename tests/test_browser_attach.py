"""End-to-end: a notebook in a real JupyterLab (headless Debian Chromium) attached to a run folder that a
separate `catalyst-nb run --approval human` process writes; the restart is decided in the rendered panel.

Skipped like the other browser tests when Chromium or Playwright is missing (a failure under
CATALYST_REQUIRE_BROWSER=1).  The assertion is on what the run recorded in its folder, not on the click:
inside JupyterLab's notebook Playwright's computed button position can disagree with the drawn layout, so
the button is clicked at its drawn position (the centre of its bounding box) with the mouse.
"""
from __future__ import annotations

import json
import subprocess
import time

import pytest

from catalyst_nb.runs.approval_inbox import ApprovalInbox
from test_browser_notebooks import ARTIFACTS, _code_cell, _write_notebook, lab_page, playwright  # noqa: F401
from test_runs import _cli_args, _env, llm_url  # noqa: F401 - llm_url is a fixture

pytestmark = pytest.mark.browser

EDITED = "a neat {}"


@pytest.fixture
def waiting_run(tmp_path, llm_url):
    """A `catalyst-nb run --approval human` process (one round) writing ``tmp_path/nb/run``."""
    folder = tmp_path / "nb" / "run"
    folder.parent.mkdir()
    args = _cli_args(llm_url, folder)
    args[args.index("--rounds") + 1] = "1"
    proc = subprocess.Popen(args + ["--approval", "human"], env=_env(tmp_path), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    yield proc, folder
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def test_a_notebook_attached_to_a_run_folder_approves_the_edited_second_proposal(lab_page, waiting_run):
    from playwright.sync_api import expect

    proc, folder = waiting_run
    notebook_dir = folder.parent
    _write_notebook(notebook_dir / "attach.ipynb", [
        _code_cell("from catalyst_nb.runs import attach\nfrom catalyst_nb.widgets import dashboard\n"
                   "run = attach('run')\nrun.wait_for_approval(timeout=900)\n"
                   "dash = dashboard(run)\ndash", tags=["dashboard"]),
    ])
    lab = lab_page(notebook_dir, "attach.ipynb")
    inbox = ApprovalInbox(folder)
    deadline = time.monotonic() + 900
    while inbox.pending() is None:  # the run process loads its model and trains its first stage
        assert proc.poll() is None and time.monotonic() < deadline, "the run did not come to wait for a decision"
        time.sleep(0.2)
    lab.run_cells(0, 1, timeout=900)
    assert lab.errors() == []
    request = ApprovalInbox(folder).pending()
    assert request is not None, proc.stderr.read()[-2000:] if proc.poll() is not None else "the run is not waiting"
    second = request["awaiting"]["data"]["proposals"][1]
    cell = lab.cell(lab.cell_index("dashboard"))
    editor = cell.locator("textarea").nth(1)
    assert editor.input_value() == second["template"]
    editor.fill(EDITED)
    cell.get_by_text("neat").first.wait_for()  # the kernel has the new text: its preview shows it
    button = cell.get_by_role("button", name="Approve #2")
    button.scroll_into_view_if_needed()
    box = button.bounding_box()
    lab.page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    cell.get_by_text("the next step restarts from").wait_for()
    expect(button).to_be_disabled(timeout=15_000)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-2000:]
    events = [json.loads(line) for line in (folder / "events.jsonl").read_text().splitlines()]
    decision = next(e for e in events if e.get("kind") == "decision")
    restart = next(e for e in events if e.get("kind") == "restart")
    assert decision["data"]["decider"] == "notebook"
    assert decision["data"]["edited_from"] == second["id"]
    assert restart["data"]["template"] == EDITED
    assert ApprovalInbox(folder).decision(0).candidate_id == second["id"]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    lab.page.screenshot(path=str(ARTIFACTS / "attached_run_approved.png"), full_page=True)
