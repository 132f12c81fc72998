"""The tutorial notebooks stay small, short and on the public API (their execution is nbval's job)."""
from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
PUBLIC_MODULES = {"catalyst_nb", "catalyst_nb.llm", "catalyst_nb.optim", "catalyst_nb.plots", "catalyst_nb.runs", "catalyst_nb.sweeps",
                  "catalyst_nb.widgets"}


def _cells(path: Path) -> list[dict]:
    return json.loads(path.read_text())["cells"]


def _source(cell: dict) -> str:
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def test_there_are_tutorial_notebooks():
    assert len(NOTEBOOKS) >= 4, [p.name for p in NOTEBOOKS]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_small_and_opens_with_what_the_reader_learns(path):
    assert path.stat().st_size < 1_000_000, f"{path.name} is {path.stat().st_size} bytes"
    cells = _cells(path)
    assert cells[0]["cell_type"] == "markdown" and "you will learn" in _source(cells[0]).lower()
    code = [c for c in cells if c["cell_type"] == "code"]
    assert len(code) <= 14, f"{len(code)} code cells"
    for c in code:
        lines = _source(c).splitlines()
        assert len(lines) <= 16, f"a {len(lines)}-line cell:\n{_source(c)[:200]}"
        for out in c.get("outputs", []):
            if "application/vnd.plotly.v1+json" in out.get("data", {}):
                # where no JavaScript runs (code hosts, nbviewer, untrusted) only the PNG shows
                assert "image/png" in out["data"], f"a plotly figure without its static image:\n{_source(c)[:200]}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_uses_the_public_api_only(path):
    for c in _cells(path):
        if c["cell_type"] != "code":
            continue
        tree = ast.parse(re.sub(r"^\s*[!%].*$", "", _source(c), flags=re.M))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("catalyst_nb"):
                assert node.module in PUBLIC_MODULES, f"imports from {node.module}"
                assert not any(a.name.startswith("_") for a in node.names), f"private name from {node.module}"
            if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
                raise AssertionError(f"uses private attribute {node.attr}")
