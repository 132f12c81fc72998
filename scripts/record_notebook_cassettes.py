"""Re-record the LLM cassettes that tutorial notebooks replay, from the embedded Gemma server.

A notebook replays ``ReplayingClient("cassettes/NAME.json")``. When the catalyst's requests change (a new
meta-prompt, other candidates), the recorded requests no longer match and a replayed round is skipped.
This script runs each such notebook once with every ``ReplayingClient("cassettes/...")`` swapped for a
``RecordingClient`` on a fresh local server (in smoke mode, as CI runs them), then runs the unchanged
notebook against the new cassettes and saves it with its light outputs (widget and figure outputs are
stripped, so committed notebooks stay small).

Usage: ``python scripts/record_notebook_cassettes.py [notebooks/02_human_in_the_loop.ipynb ...]``
"""
from __future__ import annotations

import argparse
import copy
import os
import re
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
REPLAY = re.compile(r'ReplayingClient\("(cassettes/[^"]+\.json)"\)')
HEAVY = ("application/vnd.jupyter.widget-view+json", "application/vnd.plotly.v1+json", "text/html", "image/png")


def _run(nb: nbformat.NotebookNode, folder: Path) -> None:
    NotebookClient(nb, timeout=1800, kernel_name="python3", resources={"metadata": {"path": str(folder)}}).execute()


def _strip(nb: nbformat.NotebookNode) -> None:
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        if cell.cell_type != "code":
            continue
        kept = []
        for out in cell.outputs:
            if out.output_type == "stream" and out.name == "stderr":
                continue
            if "data" in out:
                if any(k in out["data"] for k in HEAVY):
                    continue
                out.get("metadata", {}).clear()
            kept.append(out)
        cell.outputs = kept


def record(path: Path) -> list[str]:
    nb = nbformat.read(path, as_version=4)
    cassettes = sorted({m for c in nb.cells if c.cell_type == "code" for m in REPLAY.findall(c.source)})
    if not cassettes:
        return []
    recording = copy.deepcopy(nb)
    for cell in recording.cells:
        if cell.cell_type == "code":
            cell.source = REPLAY.sub(r'RecordingClient(_recording_server.completion_client(), path="\1")', cell.source)
    recording.cells.insert(0, nbformat.v4.new_code_cell(
        "from catalyst_nb.llm import LocalLLMServer, RecordingClient\n_recording_server = LocalLLMServer().start()"))
    recording.cells.append(nbformat.v4.new_code_cell("_recording_server.stop()"))
    for name in cassettes:
        (path.parent / name).unlink(missing_ok=True)
    _run(recording, path.parent)
    for name in cassettes:
        os.chmod(path.parent / name, 0o644)
    _run(nb, path.parent)  # the committed notebook, replaying what was just recorded
    _strip(nb)
    nbformat.write(nb, path)
    return cassettes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path, default=sorted((ROOT / "notebooks").glob("*.ipynb")))
    args = parser.parse_args()
    os.environ.setdefault("CATALYST_NB_SMOKE", "1")
    for path in args.notebooks:
        done = record(path.resolve())
        print(f"{path}: {', '.join(done) if done else 'replays no cassette'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
