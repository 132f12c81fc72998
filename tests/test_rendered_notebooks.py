"""The committed notebooks carry the outputs of a full run made by the current sources.

``scripts/render_notebooks.py`` writes the outputs and a marker (a hash of the sources that produced
them); these tests recompute the marker, and check that the marker itself notices what it should.
"""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def _load_render():
    spec = importlib.util.spec_from_file_location("render_notebooks", ROOT / "scripts" / "render_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("render_notebooks", module)
    spec.loader.exec_module(module)
    return module


render = _load_render()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_outputs_were_produced_by_the_current_sources(path):
    problem = render.marker_problem(path)
    assert problem is None, (f"{path.name}: {problem}; re-render with "
                             f"`python scripts/render_notebooks.py notebooks/{path.name}` and commit it")


def _notebook(*cells: tuple[str, str]) -> dict:
    return {"cells": [{"id": f"c{i}", "cell_type": kind, "source": src, "metadata": {}, "execution_count": 1,
                       "outputs": []} if kind == "code" else
                      {"id": f"c{i}", "cell_type": kind, "source": src, "metadata": {}}
                      for i, (kind, src) in enumerate(cells)],
            "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


def _marked(tmp_path: Path, nb: dict, files: list[str]) -> Path:
    nb["metadata"]["catalyst_nb"] = {"rendered": {"smoke": False, "files": files,
                                                  "sha256": render.digest(nb, set(files) | set(render.data_files()))}}
    path = tmp_path / "n.ipynb"
    path.write_text(json.dumps(nb))
    return path


def test_the_marker_follows_code_cells_and_named_files_not_markdown(tmp_path):
    nb = _notebook(("markdown", "# title"), ("code", "print(1)"))
    path = _marked(tmp_path, nb, ["catalyst_nb/smoke.py"])
    assert render.marker_problem(path) is None

    nb["cells"][0]["source"] = "# another title"  # prose does not change outputs
    path.write_text(json.dumps(nb))
    assert render.marker_problem(path) is None

    nb["cells"][1]["source"] = "print(2)"
    path.write_text(json.dumps(nb))
    assert "sources changed" in render.marker_problem(path)


def test_the_marker_notices_a_changed_library_file_and_cleared_outputs(tmp_path, monkeypatch):
    library = tmp_path / "lib.py"
    library.write_text("x = 1\n")
    monkeypatch.setattr(render, "ROOT", tmp_path)
    monkeypatch.setattr(render, "data_files", lambda: [])
    nb = _notebook(("code", "print(1)"))
    path = _marked(tmp_path, nb, ["lib.py"])
    assert render.marker_problem(path) is None
    library.write_text("x = 2\n")
    assert "sources changed" in render.marker_problem(path)
    library.unlink()
    assert "gone: lib.py" in render.marker_problem(path)

    library.write_text("x = 1\n")
    nb = json.loads(path.read_text())
    nb["cells"][0]["execution_count"] = None
    path.write_text(json.dumps(nb))
    assert "no execution count" in render.marker_problem(path)


def test_a_notebook_without_marker_or_from_a_smoke_run_is_stale(tmp_path):
    path = tmp_path / "n.ipynb"
    path.write_text(json.dumps(_notebook(("code", "print(1)"))))
    assert "never rendered" in render.marker_problem(path)
    path = _marked(tmp_path, _notebook(("code", "print(1)")), [])
    nb = json.loads(path.read_text())
    nb["metadata"]["catalyst_nb"]["rendered"]["smoke"] = True
    path.write_text(json.dumps(nb))
    assert "smoke run" in render.marker_problem(path)


@pytest.mark.slow
def test_render_runs_at_full_budget_and_records_the_modules_the_kernel_loaded(tmp_path, monkeypatch):
    pytest.importorskip("nbclient")
    for name, value in (("CATALYST_NB_SMOKE", "1"), ("HF_HUB_OFFLINE", "1"), ("PYTHONPATH", str(ROOT))):
        monkeypatch.setenv(name, value)  # restored afterwards: the script changes them for its kernel
    path = tmp_path / "tiny.ipynb"
    path.write_text(json.dumps(_notebook(
        ("code", "from catalyst_nb.smoke import smoke_budget\nprint('budget:', smoke_budget('full', 'smoke'))"))))
    assert render.main([str(path)]) == 0
    nb = json.loads(path.read_text())
    assert "".join(nb["cells"][0]["outputs"][0]["text"]) == "budget: full\n"
    assert len(nb["cells"]) == 1, "the module probe is not left in the notebook"
    marker = nb["metadata"]["catalyst_nb"]["rendered"]
    assert "catalyst_nb/smoke.py" in marker["files"] and "catalyst_nb/runs/execute.py" not in marker["files"]
    assert render.marker_problem(path) is None
    assert render.main(["--check", str(path)]) == 0



def test_widget_state_keeps_plain_widgets_and_drops_bundled_javascript():
    import nbformat

    nb = nbformat.from_dict(_notebook(("code", "panel")))
    nb.metadata["widgets"] = {render.WIDGET_STATE: {"version_major": 2, "version_minor": 0, "state": {
        "button": {"model_name": "ButtonModel", "state": {"description": "Approve #1", "disabled": True}},
        "figure": {"model_name": "AnyModel", "state": {"_esm": "x" * 100_000, "_data": []}},
    }}}
    assert render.drop_bundled_widget_code(nb) == 1
    assert set(nb.metadata["widgets"][render.WIDGET_STATE]["state"]) == {"button"}
    assert render.drop_bundled_widget_code(nbformat.from_dict(_notebook(("code", "1")))) == 0
