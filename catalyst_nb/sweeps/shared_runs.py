"""Cells that are the same run: one of them runs, the others take its result.

Zero-shot and the LLM-only baseline never read the few-shot training images: they choose among hard
templates by their scores on the scoring split, which is drawn from its own pool whatever ``shots`` is.
So a grid over 1, 4 and 16 shots asks each of them for the same run three times (same templates, same
LLM requests with the same seeds, same test accuracy); in the full protocol that was 40 of 300 cells and
about 8 of its 79 minutes.  Here the first cell of such a group (grid order) runs; every other cell of
the group records that cell's summary with its own axis values written back in and ``same_run_as``
naming the cell that ran, and costs nothing.  Tables and pairing read it like any other cell, so a
shared row is exactly the row a run of its own would have produced.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

from .cell import CellOutcome
from .grid import Cell

__all__ = ["SHOT_BLIND_METHODS", "follower_outcome", "followers_of", "shared_runs"]

# methods whose run does not depend on ``shots`` (see the module docstring)
SHOT_BLIND_METHODS = ("zero-shot", "llm-only")
_IGNORED = {method: ("shots",) for method in SHOT_BLIND_METHODS}


def _run_key(cell: Cell) -> tuple[Any, ...]:
    ignored = _IGNORED.get(str(cell.settings.get("method")), ())
    return (cell.label,) + tuple(sorted((k, repr(v)) for k, v in cell.settings.items() if k not in ignored))


def shared_runs(cells: Sequence[Cell]) -> dict[str, Cell]:
    """``{cell id: the cell whose run it shares}`` for every cell that needs no run of its own."""
    first: dict[tuple[Any, ...], Cell] = {}
    shared: dict[str, Cell] = {}
    for cell in cells:
        key = _run_key(cell)
        if key in first:
            shared[cell.cell_id] = first[key]
        else:
            first[key] = cell
    return shared


def follower_outcome(cell: Cell, ran: Cell, outcome: CellOutcome) -> CellOutcome:
    """``cell``'s outcome from the outcome of ``ran``, the cell whose run it shares."""
    if outcome.status != "done" or outcome.summary is None:
        return CellOutcome(cell.cell_id, "failed", error=f"the run it shares ({ran.cell_id}) failed: {outcome.error}")
    summary: dict[str, Any] = dict(outcome.summary)
    summary.update({k: v for k, v in cell.axes.items() if k in summary})
    summary["same_run_as"] = ran.cell_id
    return CellOutcome(cell.cell_id, "done", summary=summary, seconds=0.0)


def followers_of(shared: Mapping[str, Cell], cells: Sequence[Cell]) -> dict[str, list[Cell]]:
    """``{id of a cell that runs: the cells that take its result}``."""
    by_id = {cell.cell_id: cell for cell in cells}
    out: dict[str, list[Cell]] = {}
    for cell_id, ran in shared.items():
        out.setdefault(ran.cell_id, []).append(by_id[cell_id])
    return out
