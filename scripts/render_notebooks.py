"""Execute every tutorial notebook at its full budget and write the outputs into the committed notebooks.

    python scripts/render_notebooks.py                 all notebooks in notebooks/
    python scripts/render_notebooks.py notebooks/01_quickstart.ipynb
    python scripts/render_notebooks.py --check         only say which committed outputs are stale (exit 1)

Why: a reader who opens a tutorial on a code host, or in JupyterLab without running it, should see what a
real run gives (full budgets, the real local LLM where the notebook uses it), not the smoke run that CI
does.  CI still executes every notebook in smoke mode under nbval; the cells nbval compares print only
what does not depend on the budget.

The outputs carry a marker in the notebook's metadata (``catalyst_nb.rendered``): a SHA-256 over the
notebook's code cells, the files under ``notebooks/`` its code names (its LLM cassettes), the library
modules the kernel had loaded at the end of the run and the library's data files (model weights,
embedded images).  ``tests/test_rendered_notebooks.py`` recomputes it and fails when the committed
outputs were produced by other sources than the current ones.

The kernel gets this checkout first on ``PYTHONPATH``, ``CATALYST_NB_SMOKE`` unset and
``HF_HUB_OFFLINE=1``; widget state is stored so that the panels show their final state.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any, Iterable

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
PACKAGE = ROOT / "catalyst_nb"
MARKER_KEY = "catalyst_nb"
MAX_BYTES = 1_000_000
# the library's files that are read as data, not imported: a change to them changes results
DATA_SUFFIXES = (".pt", ".npz", ".json")
_MODULES_PROBE = (
    "import json as _j, sys as _s\n"
    "print('CATALYST_NB_MODULES=' + _j.dumps(sorted({m.__file__ for n, m in list(_s.modules.items())\n"
    "    if (n == 'catalyst_nb' or n.startswith('catalyst_nb.')) and getattr(m, '__file__', None)})))"
)


def _source(cell: dict[str, Any]) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def data_files() -> list[str]:
    """The library's data files (relative to the repository root), sorted."""
    return sorted(p.relative_to(ROOT).as_posix() for p in PACKAGE.rglob("*")
                  if p.is_file() and p.suffix in DATA_SUFFIXES and "__pycache__" not in p.parts)


def referenced_files(nb: dict[str, Any], notebook: Path) -> list[str]:
    """Files beside the notebook that its code names in a string (its cassettes), relative to the root."""
    code = "\n".join(_source(c) for c in nb["cells"] if c["cell_type"] == "code")
    found = set()
    for literal in re.findall(r"""["']([\w./-]+\.\w+)["']""", code):
        path = (notebook.parent / literal).resolve()
        if path.is_file() and ROOT in path.parents and path.suffix != ".ipynb":
            found.add(path.relative_to(ROOT).as_posix())
    return sorted(found)


def digest(nb: dict[str, Any], files: Iterable[str]) -> str:
    """SHA-256 over the notebook's code cells and the named files' contents (a missing file counts)."""
    h = hashlib.sha256()
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            h.update(b"cell\0" + _source(cell).encode() + b"\0")
    for rel in sorted(set(files)):
        path = ROOT / rel
        h.update(b"file\0" + rel.encode() + b"\0")
        h.update(hashlib.sha256(path.read_bytes()).digest() if path.is_file() else b"missing")
    return h.hexdigest()


def marker_problem(notebook: Path) -> str | None:
    """Why the committed outputs of ``notebook`` were not produced by the current sources; ``None`` if they were."""
    nb = json.loads(notebook.read_text())
    rendered = nb.get("metadata", {}).get(MARKER_KEY, {}).get("rendered")
    if not rendered:
        return "it was never rendered (no catalyst_nb.rendered marker in its metadata)"
    if rendered.get("smoke"):
        return "its outputs come from a smoke run"
    missing = [rel for rel in rendered["files"] if not (ROOT / rel).is_file()]
    if missing:
        return f"files it was rendered from are gone: {', '.join(missing)}"
    files = set(rendered["files"]) | set(referenced_files(nb, notebook)) | set(data_files())
    now = digest(nb, files)
    if now != rendered["sha256"]:
        return f"its sources changed since it was rendered (sha256 {rendered['sha256'][:12]}, now {now[:12]})"
    unexecuted = sum(1 for c in nb["cells"] if c["cell_type"] == "code" and c.get("execution_count") is None)
    if unexecuted:
        return f"{unexecuted} code cells have no execution count (outputs cleared after rendering?)"
    return None


def _module_files(output_cell: dict[str, Any]) -> list[str]:
    for out in output_cell.get("outputs", []):
        for line in "".join(out.get("text", "")).splitlines():
            if line.startswith("CATALYST_NB_MODULES="):
                files = [Path(f).resolve() for f in json.loads(line.split("=", 1)[1])]
                outside = [f for f in files if ROOT not in f.parents]
                if outside:
                    raise RuntimeError(f"the kernel imported catalyst_nb from {outside[0].parent}, not from {ROOT}")
                return sorted(f.relative_to(ROOT).as_posix() for f in files)
    raise RuntimeError("the kernel did not report its loaded modules: " + json.dumps(output_cell.get("outputs"))[:500])


WIDGET_STATE = "application/vnd.jupyter.widget-state+json"


def drop_bundled_widget_code(nb: Any) -> int:
    """Remove the saved state of widgets that carry their own JavaScript (anywidget's ``_esm``: 5 MB for
    each plotly FigureWidget); returns how many were removed.  The other widgets (buttons, labels, text)
    keep their final state; a live figure's place shows its text form, and the notebook shows the figure
    itself with ``plots.show_figure`` (interactive and PNG) once the run is over."""
    state = nb.metadata.get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    bundled = [key for key, model in state.items() if "_esm" in model.get("state", {})]
    for key in bundled:
        del state[key]
    return len(bundled)


def render(notebook: Path, *, timeout: int) -> tuple[float, int]:
    """Execute ``notebook`` in place at its full budget; returns (seconds, bytes written)."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(notebook, as_version=4)
    probe = nbformat.v4.new_code_cell(_MODULES_PROBE)
    nb.cells.append(probe)
    started = time.perf_counter()
    NotebookClient(nb, timeout=timeout, kernel_name="python3", store_widget_state=True, record_timing=False,
                   resources={"metadata": {"path": str(notebook.parent)}}).execute()
    seconds = time.perf_counter() - started
    nb.cells.pop()
    drop_bundled_widget_code(nb)
    plain = json.loads(nbformat.writes(nb))
    files = sorted(set(_module_files(probe)) | set(referenced_files(plain, notebook)) | set(data_files()))
    nb.metadata[MARKER_KEY] = {"rendered": {
        "by": "scripts/render_notebooks.py", "smoke": False, "seconds": round(seconds, 1),
        "sha256": digest(plain, files), "files": files,
    }}
    nbformat.write(nb, notebook)
    return seconds, notebook.stat().st_size


def _kernel_env() -> None:
    """What the kernel inherits: this checkout first, full budgets, no hub downloads."""
    os.environ.pop("CATALYST_NB_SMOKE", None)
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: every notebooks/*.ipynb")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds one cell may run (default 3600)")
    parser.add_argument("--check", action="store_true", help="only report stale notebooks; exit 1 if any")
    args = parser.parse_args(argv)
    paths = [p.resolve() for p in args.notebooks] or sorted(NOTEBOOKS.glob("*.ipynb"))
    for p in paths:
        if not p.is_file() or p.suffix != ".ipynb":
            print(f"error: {p} is not a notebook file", file=sys.stderr)
            return 2
    if args.check:
        stale = [(p, marker_problem(p)) for p in paths]
        for p, problem in stale:
            print(f"{p.name}: {problem or 'up to date'}")
        return 1 if any(problem for _, problem in stale) else 0
    _kernel_env()
    total = time.perf_counter()
    too_big = []
    for p in paths:
        print(f"{p.name}: running at full budget ...", flush=True)
        seconds, size = render(p, timeout=args.timeout)
        print(f"{p.name}: {seconds:.0f} s, {size / 1e6:.2f} MB", flush=True)
        if size >= MAX_BYTES:
            too_big.append(p.name)
    print(f"wall time: {time.perf_counter() - total:.0f} s for {len(paths)} notebooks")
    if too_big:
        print(f"error: over {MAX_BYTES // 1000} KB: {', '.join(too_big)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
