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


def _import_graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports (anywhere in the file, late imports included; not the
    imports under ``if TYPE_CHECKING:``, which never run)."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    files = {}
    for path in (root / "catalyst_nb").rglob("*.py"):
        name = ".".join(path.relative_to(root).with_suffix("").parts)
        files[name.removesuffix(".__init__")] = path
    graph = {}
    for name, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skipped = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
                   for n in ast.walk(node)}
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        out = set()
        for node in ast.walk(tree):
            if id(node) in skipped:
                continue
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(parts + ([base] if base else []))
                out |= {f"{base}.{a.name}" if f"{base}.{a.name}" in files else base for a in node.names}
            elif isinstance(node, ast.Import):
                out |= {a.name for a in node.names}
        graph[name] = {m for m in out if m in files and m != name}
    return graph


def test_the_package_has_no_import_circle():
    graph = _import_graph()
    assert graph["catalyst_nb.sweeps.config"] >= {"catalyst_nb.sweeps.grid"}  # the graph sees late imports
    state: dict[str, int] = {}  # 1: on the path, 2: done
    path: list[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        path.append(module)
        for dep in sorted(graph[module]):
            if state.get(dep) == 1:
                raise AssertionError(f"import circle: {' -> '.join(path[path.index(dep):] + [dep])}")
            if dep not in state:
                visit(dep)
        path.pop()
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module)
