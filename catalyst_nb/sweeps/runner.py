"""The sweep loop: claim the folder, skip finished cells, run the rest through an executor, report.

The cell function is a parameter (default: the run layer's ``execute``) so that the loop's own logic
(skipping, resuming, recording failures, aggregating) is tested without loading any model.
``results.csv`` is rewritten after every cell, so an interrupted sweep still leaves its rows; the table
and the figure are written at the end, also after an interrupt.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence

from .aggregate import compare_to_baseline, difference_series, figure_series, flag_collapsed, group_rows, \
    paired_columns, result_rows
from catalyst_nb.state_io import atomic_write_text
from .budget import SweepBudget
from .cell import CellFunction, CellOutcome, CellTask
from .config import SweepConfig
from .figure import draw_figure, write_figure_html
from .folder import SweepFolder
from .grid import Cell, expand
from .local_executor import LocalExecutor
from .shared_runs import follower_outcome, followers_of, shared_runs
from .table import markdown_table

__all__ = ["Executor", "SweepResult", "run_sweep", "write_reports", "RESULTS_FILE", "TABLE_FILE", "FIGURE_FILE"]

RESULTS_FILE = "results.csv"
TABLE_FILE = "table.md"
FIGURE_FILE = "figure.html"


class Executor(Protocol):
    name: str

    def run(self, tasks: Sequence[CellTask], cell_fn: CellFunction | None = None) -> Any: ...


@dataclass(frozen=True)
class SweepResult:
    """What a sweep produced: per-cell rows, seed-averaged groups, the table text and the files.

    ``ran`` cells ran now, ``skipped`` had finished before, ``shared`` took another cell's run."""

    folder: Path
    rows: list[dict[str, Any]]
    groups: list[dict[str, Any]]
    table: str
    ran: int
    skipped: int
    failed: int
    shared: int = 0
    paths: dict[str, Path] = field(default_factory=dict)


def _axes(cells: Sequence[Cell]) -> list[str]:
    return list(cells[0].axes) if cells else []


def _csv_text(rows: Sequence[dict[str, Any]]) -> str:
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: ("" if v is None else v) for k, v in row.items()} for row in rows)
    return buffer.getvalue()


def write_reports(config: SweepConfig, folder: Path, cells: Sequence[Cell], outcomes: dict[str, CellOutcome], *,
                  figure: bool = True) -> tuple[list[dict[str, Any]], list[dict[str, Any]], str, dict[str, Path]]:
    """results.csv, table.md and figure.html from the outcomes so far (all written atomically)."""
    axes = _axes(cells)
    rows = flag_collapsed(result_rows(cells, outcomes), margin=config.collapse_margin, axes=axes)
    groups = group_rows(rows, axes=axes)
    if config.baseline is not None:
        groups = compare_to_baseline(groups, config.baseline)
        rows = paired_columns(rows, groups, axes=axes)
    all_classes = any(not cell.settings.get("base_to_new", False) for cell in cells)
    table = markdown_table(groups, base_to_new=config.base_to_new, all_classes=all_classes, title=config.name)
    paths = {"results": atomic_write_text(folder / RESULTS_FILE, _csv_text(rows)),
             "table": atomic_write_text(folder / TABLE_FILE, table)}
    if figure:
        panels = [("test accuracy", figure_series(groups, metric="test"))] if all_classes else []
        if config.base_to_new:
            panels.append(("base-to-new harmonic mean", figure_series(groups, metric="harmonic_mean")))
        if config.baseline is not None:
            if all_classes:
                panels.append((f"test accuracy minus {config.baseline} (paired, 95% CI)",
                               difference_series(groups, metric="test")))
            if config.base_to_new:
                panels.append((f"harmonic mean minus {config.baseline} (paired, 95% CI)",
                               difference_series(groups, metric="harmonic_mean")))
        paths["figure"] = write_figure_html(draw_figure(panels, title=config.name), folder / FIGURE_FILE)
    return rows, groups, table, paths


def run_sweep(config: SweepConfig, out: str | Path, *, executor: Executor | None = None,
              cell_fn: CellFunction | None = None, force: bool = False, progress: bool = True,
              on_budget: Callable[[SweepBudget], None] | None = None) -> SweepResult:
    """Run every unfinished cell of ``config`` into ``out`` and write the reports.

    Finished cells (``summary.json`` present) are read, not rerun; interrupted ones are resumed
    (``resume=True``); a failing cell is recorded and the others go on.  Cells that would repeat another
    cell's run (:mod:`~catalyst_nb.sweeps.shared_runs`) take its result when it finishes.  ``on_budget`` is called with
    the sweep's time budget (:class:`SweepBudget`) after every finished cell (the CLI echoes its line).
    """
    from tqdm.auto import tqdm

    cells = expand(config)
    folder = SweepFolder.prepare(out, config, cells, force=force)
    shared = shared_runs(cells)
    followers = followers_of(shared, cells)
    outcomes: dict[str, CellOutcome] = {}
    tasks: list[CellTask] = []

    def settle_followers(ran: Cell, outcome: CellOutcome) -> None:
        for cell in followers.get(ran.cell_id, ()):
            follower = follower_outcome(cell, ran, outcome)
            folder.record_shared(cell, follower.status, follower.summary, follower.error)
            outcomes[cell.cell_id] = follower

    for cell in cells:
        if cell.cell_id in shared:
            continue
        state = folder.state(cell)
        summary = folder.summary(cell) if state == "done" else None
        if summary is not None:
            outcomes[cell.cell_id] = CellOutcome(cell.cell_id, "done", summary=summary)
            settle_followers(cell, outcomes[cell.cell_id])
            continue
        run_dir = folder.claim(cell)
        tasks.append(CellTask(cell.cell_id, dict(cell.settings), str(run_dir), resume=state == "partial"))
    skipped = len(cells) - len(tasks) - len(shared)
    budget = SweepBudget(total=len(cells), skipped=skipped, shared=len(shared))
    by_id = {cell.cell_id: cell for cell in cells}
    executor = executor or LocalExecutor()
    failed = 0
    bar = tqdm(total=len(cells), initial=skipped + len(shared), desc="sweep", unit="cell", disable=not progress, dynamic_ncols=True)
    try:
        for outcome in executor.run(tasks, cell_fn):
            outcomes[outcome.cell_id] = outcome
            folder.record(outcome.cell_id, outcome.status, outcome.summary, outcome.error)
            settle_followers(by_id[outcome.cell_id], outcome)
            failed += outcome.status == "failed"
            budget.record(outcome.seconds, failed=outcome.status == "failed")
            if on_budget is not None:
                on_budget(budget)
            bar.update(1)
            bar.set_postfix_str(f"{failed} failed, last {outcome.cell_id}" if failed else f"last {outcome.cell_id}")
            write_reports(config, folder.root, cells, outcomes, figure=False)
    finally:
        bar.close()
        rows, groups, table, paths = write_reports(config, folder.root, cells, outcomes)
    return SweepResult(folder=folder.root, rows=rows, groups=groups, table=table, ran=len(tasks), skipped=skipped,
                       failed=failed, shared=len(shared), paths=paths)
