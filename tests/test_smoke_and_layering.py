"""The smoke switch, and the layering rule: the core never imports widgets or plotly."""
from __future__ import annotations

import subprocess
import sys

import pytest

from catalyst_nb.smoke import smoke_budget, smoke_mode


def test_smoke_budget_follows_the_environment(monkeypatch):
    monkeypatch.delenv("CATALYST_NB_SMOKE", raising=False)
    assert smoke_mode() is False and smoke_budget(200, 20) == 200
    monkeypatch.setenv("CATALYST_NB_SMOKE", "1")
    assert smoke_mode() is True and smoke_budget(200, 20) == 20
    monkeypatch.setenv("CATALYST_NB_SMOKE", "0")
    assert smoke_budget(200, 20) == 200
    monkeypatch.setenv("CATALYST_NB_SMOKE", "maybe")
    with pytest.raises(ValueError, match="'maybe'"):
        smoke_budget(200, 20)


CORE = ["catalyst_nb", "catalyst_nb.optim", "catalyst_nb.trajectory", "catalyst_nb.prompt_learner",
        "catalyst_nb.evaluation", "catalyst_nb.llm", "catalyst_nb.data", "catalyst_nb.features", "catalyst_nb.cli"]


def test_core_imports_neither_widgets_nor_plotly():
    code = (
        "import importlib, sys\n"
        f"for m in {CORE!r}:\n"
        "    importlib.import_module(m)\n"
        "try:\n"
        "    importlib.import_module('catalyst_nb.optim.catalyst')\n"
        "except ModuleNotFoundError:\n"
        "    pass\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('plotly', 'ipywidgets', 'anywidget')\n"
        "             or m.startswith('catalyst_nb.widgets') or m == 'catalyst_nb.plots')\n"
        "print(bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_plot_information_needs_no_plotly():
    code = "import sys, catalyst_nb.plots; print('plotly' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
