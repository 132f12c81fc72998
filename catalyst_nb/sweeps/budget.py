"""The sweep's own time budget as it runs: cells done, time per cell, time left.

A sweep of a hundred cells on two cores runs for most of an hour, so the person who started it needs
to know early whether it will fit.  :class:`SweepBudget` is the running account the sweep loop updates
after every finished cell; its :meth:`~SweepBudget.line` is what the command line echoes (the library
itself never prints).  Time left is the cells still to run times the *wall* time per finished cell so
far, which already accounts for cells running side by side (``--jobs``) and for a busy machine.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

__all__ = ["SweepBudget"]


@dataclass
class SweepBudget:
    """Running account of one sweep invocation.

    Attributes:
        total: cells in the grid.
        skipped: cells finished before this invocation (read, not run).
        shared: cells that take another cell's run (:mod:`~catalyst_nb.sweeps.shared_runs`), never run.
        done: cells finished in this invocation (failed ones included).
        failed: of those, how many failed.
        cell_seconds: each finished cell's own run time (in its worker).
    """

    total: int
    skipped: int = 0
    shared: int = 0
    done: int = 0
    failed: int = 0
    cell_seconds: list[float] = field(default_factory=list)
    started: float = -1.0  # perf_counter() at construction unless given

    def __post_init__(self) -> None:
        if self.started < 0:
            self.started = time.perf_counter()
        if self.total < 0 or self.skipped < 0 or self.shared < 0 or self.skipped + self.shared > self.total:
            raise ValueError(f"total={self.total!r}, skipped={self.skipped!r}, shared={self.shared!r}: need "
                             "0 <= skipped + shared <= total")

    def record(self, seconds: float, *, failed: bool = False) -> None:
        """Count one finished cell that ran for ``seconds``."""
        self.done += 1
        self.failed += bool(failed)
        self.cell_seconds.append(float(seconds))

    @property
    def remaining(self) -> int:
        return self.total - self.skipped - self.shared - self.done

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    @property
    def per_cell(self) -> float | None:
        """Mean run time of a finished cell (its own time, as if alone); None before the first."""
        return sum(self.cell_seconds) / len(self.cell_seconds) if self.cell_seconds else None

    @property
    def time_left(self) -> float | None:
        """Estimated seconds to the end: remaining cells times the wall time per finished cell."""
        return self._left(self.elapsed)

    def _left(self, elapsed: float) -> float | None:
        return self.remaining * elapsed / self.done if self.done else None

    def line(self) -> str:
        """``sweep 12/108 cells (3 skipped, 1 failed): 41.2 s per cell, 8.3 min so far, about 66.0 min left``."""
        elapsed = self.elapsed
        finished = self.skipped + self.shared + self.done
        notes = [f"{self.skipped} skipped"] if self.skipped else []
        notes += [f"{self.shared} shared"] if self.shared else []
        notes += [f"{self.failed} failed"] if self.failed else []
        head = f"sweep {finished}/{self.total} cells" + (f" ({', '.join(notes)})" if notes else "")
        per_cell, left = self.per_cell, self._left(elapsed)
        if per_cell is None or left is None:
            return f"{head}: {elapsed / 60:.1f} min so far"
        return (f"{head}: {per_cell:.1f} s per cell, {elapsed / 60:.1f} min so far, "
                f"about {left / 60:.1f} min left")
