"""The sweep folder: which config made it, one run folder per cell, and each cell's state.

Layout::

    OUT/sweep.json             the config's canonical form and hash, the cell ids
    OUT/cells/<cell_id>/       the cell's run folder (the run layer's files) plus
                     cell.json   the cell's settings, to tell a cell of another config apart
                     outcome.json how the last attempt ended (status, the run's summary or the error)
                     error.txt   the traceback of the last failure, if the last attempt failed
    OUT/results.csv, OUT/table.md, OUT/figure.html
    OUT/plotly-X.Y.Z.min.js    the one copy of plotly.js that figure.html and every cell's report.html load

Why the hash: rerunning a sweep skips finished cells, so a folder made by a different grid would
silently mix results of different settings into one table.  A folder whose hash differs is refused;
with ``force`` it is adopted, and only cells whose own settings changed are started over.
"""
from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from catalyst_nb.plotly_script import ensure_script
from catalyst_nb.state_io import atomic_write_json
from .config import SweepConfig
from .grid import Cell

__all__ = ["SweepFolder", "SweepFolderError", "CELL_FILE", "ERROR_FILE", "OUTCOME_FILE", "SUMMARY_FILE"]

SWEEP_FILE = "sweep.json"
CELL_FILE = "cell.json"
ERROR_FILE = "error.txt"
SUMMARY_FILE = "summary.json"
OUTCOME_FILE = "outcome.json"
# The run layer writes config.json before the first unit of work and state.pt after each; a folder with
# neither holds no run that could be resumed (a cell that failed while loading its model, say).
_RUN_STARTED = ("config.json", "state.pt")


class SweepFolderError(ValueError):
    """The output folder belongs to something else (another sweep's config, or not a sweep at all)."""


def _cell_record(cell: Cell) -> dict[str, Any]:
    return {"cell_id": cell.cell_id, "label": cell.label, "axes": cell.axes, "settings": cell.settings}


def _same(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)


@dataclass(frozen=True)
class SweepFolder:
    root: Path

    @classmethod
    def prepare(cls, root: str | Path, config: SweepConfig, cells: Iterable[Cell], *, force: bool = False) -> SweepFolder:
        """Claim ``root`` for ``config`` (see the module docstring for what is refused and what ``force`` does)."""
        root = Path(root)
        cells = list(cells)
        marker = root / SWEEP_FILE
        digest = config.config_hash()
        if marker.is_file():
            try:
                previous = json.loads(marker.read_text())
            except (OSError, json.JSONDecodeError) as exc:
                raise SweepFolderError(f"{marker} cannot be read ({exc}); move the folder away or pass --force") from None
            if previous.get("config_hash") != digest and not force:
                raise SweepFolderError(
                    f"{root} holds a sweep made by a different config (hash {str(previous.get('config_hash'))[:12]}, "
                    f"this config {digest[:12]}); choose another --out, or pass --force to reuse it "
                    "(cells whose settings changed are started over)"
                )
        elif root.is_dir() and any(root.iterdir()) and not force:
            raise SweepFolderError(f"{root} is not empty and is not a sweep folder (no {SWEEP_FILE}); choose another --out")
        folder = cls(root)
        (root / "cells").mkdir(parents=True, exist_ok=True)
        for cell in cells:
            cell_dir = folder.cell_dir(cell)
            record_path = cell_dir / CELL_FILE
            if record_path.is_file():
                try:
                    stale = not _same(json.loads(record_path.read_text()), _cell_record(cell))
                except (OSError, json.JSONDecodeError):
                    stale = True
                if stale:  # a cell of other settings: its run cannot be resumed or reused, start it over
                    shutil.rmtree(cell_dir)
        atomic_write_json(marker, {
            "name": config.name, "config_hash": digest, "config": config.canonical(),
            "cells": [c.cell_id for c in cells], "written": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        })
        ensure_script(root)  # before any cell runs, so that every cell's report finds it here
        return folder

    def cell_dir(self, cell: Cell | str) -> Path:
        return self.root / "cells" / (cell if isinstance(cell, str) else cell.cell_id)

    def _outcome(self, cell: Cell) -> dict[str, Any] | None:
        try:
            data = json.loads((self.cell_dir(cell) / OUTCOME_FILE).read_text())
        except (OSError, json.JSONDecodeError):
            return None
        return data if isinstance(data, dict) else None

    def state(self, cell: Cell) -> str:
        """``done`` (finished: the run layer's summary, or a recorded finished outcome such as a
        collapsed run), ``partial`` (a run started: resume it) or ``new``."""
        cell_dir = self.cell_dir(cell)
        if (cell_dir / SUMMARY_FILE).is_file():
            return "done"
        outcome = self._outcome(cell) or {}
        # a finished run without its summary file is done only when the run layer writes none for it
        # (a collapsed run); one whose summary.json was deleted is resumed, which writes it again
        if outcome.get("status") == "done" and (outcome.get("summary") or {}).get("status", "done") != "done":
            return "done"
        if any((cell_dir / name).is_file() for name in _RUN_STARTED):
            return "partial"
        return "new"

    def claim(self, cell: Cell) -> Path:
        """Create the cell's folder with its settings recorded; returns the folder."""
        cell_dir = self.cell_dir(cell)
        cell_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(cell_dir / CELL_FILE, _cell_record(cell))
        return cell_dir

    def record(self, cell_id: str, status: str, summary: dict[str, Any] | None, error: str | None) -> None:
        """Keep how a cell's attempt ended next to its run (a finished one is then skipped on reruns)."""
        atomic_write_json(self.cell_dir(cell_id) / OUTCOME_FILE, {"status": status, "summary": summary, "error": error})

    def record_shared(self, cell: Cell, status: str, summary: dict[str, Any] | None, error: str | None) -> None:
        """Record the outcome of a cell that shares another cell's run, with its summary file when done
        (so every finished cell's folder holds a ``summary.json``, as a run of its own would)."""
        self.claim(cell)
        summary_path = self.cell_dir(cell) / SUMMARY_FILE
        if status == "done" and summary is not None:
            atomic_write_json(summary_path, summary)
        else:
            summary_path.unlink(missing_ok=True)
        self.record(cell.cell_id, status, summary, error)

    def summary(self, cell: Cell) -> dict[str, Any] | None:
        """The finished run's summary (the run layer's file first, else the recorded outcome's)."""
        try:
            return json.loads((self.cell_dir(cell) / SUMMARY_FILE).read_text())
        except (OSError, json.JSONDecodeError):
            outcome = self._outcome(cell)
            return outcome.get("summary") if outcome and outcome.get("status") == "done" else None
