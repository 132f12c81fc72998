"""Reports stay small: one plotly.js per folder tree, loaded by a relative path from every page in it.

A real two-cell sweep (CoOp and the catalyst, on the tiny model, the catalyst's LLM scripted) writes the
folder that these tests and the browser test (``test_browser_reports.py``) read.
"""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from catalyst_nb.plotly_script import MISSING_SCRIPT_NOTE, find_script, page_head, script_for, script_name

REPORT_LIMIT = 300_000


def sweep_folder(out: Path) -> Path:
    """Run the two-cell sweep into ``out`` (shared with the browser test)."""
    from catalyst_nb.llm import ScriptedClient
    from catalyst_nb.experiment import execute
    from catalyst_nb.sweeps import LocalExecutor, SweepConfig, run_sweep

    class NoServer:  # the catalyst cell gets a scripted client, not a server
        base_url = "http://127.0.0.1:9/v1"

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    def cell(config, run_dir, **kw):
        # characters HTML must escape (markup itself is dropped by the parser): the report must escape them
        replies = [f"a {{}} < 5 cm & {i}" for i in range(16)]
        client = ScriptedClient(replies, kind="completion") if config.method == "catalyst" else None
        return execute(config, run_dir, **{**kw, "llm_client": client})

    config = SweepConfig.from_dict({
        "sweep": {"name": "report check"},
        "defaults": {"model": "tiny-native", "pretrained": None, "steps": 12, "rounds": 1, "n_ctx": 4, "batch_size": 8, "lr": 0.5,
                     "scoring_shots": 4, "llm": "none"},
        "grid": {"shots": [2], "seed": [1]},
        "methods": {"coop": {"method": "coop"}, "catalyst": {"method": "catalyst", "llm": "local"}},
    })
    result = run_sweep(config, out, executor=LocalExecutor(llm_server_factory=NoServer), cell_fn=cell,
                       progress=False)
    assert result.failed == 0, [r for r in result.rows if r.get("status") != "done"]
    return out


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    return sweep_folder(tmp_path_factory.mktemp("reports") / "sweep")


def _script_srcs(page: Path) -> list[str]:
    return re.findall(r'<script src="([^"]+)"', page.read_text())


def test_a_sweep_holds_one_plotly_script_that_every_report_loads(sweep):
    scripts = sorted(p.relative_to(sweep).as_posix() for p in sweep.rglob("plotly*.js"))
    assert scripts == [script_name()]
    reports = sorted(sweep.glob("cells/*/report.html"))
    assert len(reports) == 2
    for page in [*reports, sweep / "figure.html"]:
        srcs = _script_srcs(page)
        assert len(srcs) == 1, page
        assert (page.parent / srcs[0]).resolve() == (sweep / script_name()).resolve()
        assert "Plotly.newPlot" in page.read_text(), "the figures are drawn by the shared script"


def test_a_report_is_small_and_escapes_llm_text(sweep):
    for page in sweep.glob("cells/*/report.html"):
        assert page.stat().st_size < REPORT_LIMIT, (page, page.stat().st_size)
    catalyst = (sweep / "cells").glob("catalyst*/report.html")
    text = next(catalyst).read_text()
    assert "< 5 cm &" not in text and "&lt; 5 cm &amp;" in text


def test_a_run_on_its_own_gets_its_own_script(tmp_path):
    run = tmp_path / "runs" / "demo"
    run.mkdir(parents=True)
    script = script_for(run)
    assert script == run / script_name() and script.stat().st_size > 1_000_000
    assert find_script(run / "deeper") == script  # a folder below finds the tree's script
    assert script_for(tmp_path / "runs" / "other") == tmp_path / "runs" / "other" / script_name()


def test_a_page_that_lost_its_script_says_so(tmp_path):
    head = page_head(tmp_path / "a" / "b" / "report.html", tmp_path / "plotly.js")
    assert '<script src="../../plotly.js"' in head and MISSING_SCRIPT_NOTE in head


def test_the_sweep_rerun_keeps_one_script(sweep, tmp_path):
    copy = tmp_path / "sweep"
    shutil.copytree(sweep, copy)
    sweep_folder(copy)  # every cell finished: nothing reruns, the figure is rewritten
    assert len(list(copy.rglob("plotly*.js"))) == 1
