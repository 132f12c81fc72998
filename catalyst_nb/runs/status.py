"""A run folder's state in plain words, read from its files alone (no model, no torch).

``running``, ``waiting for approval``, ``finished``, ``failed`` or ``stopped``: what ``catalyst-nb
status`` prints, what a sweep lists for its waiting cells, and what a notebook attached to the folder
shows.  A run is judged alive by its files: a waiting run touches its heartbeat about every half second;
a working run holds the folder's lock (:func:`catalyst_nb.runs.lock.lock_holder` names its process), taken
before its config is written and dropped when it ends, however it ends.  Where there are no file locks
(Windows), a run that wrote an event in the last :data:`SILENT_S` seconds is taken to be running.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from catalyst_nb.runs.approval_inbox import ApprovalInbox
from catalyst_nb.runs.folder import RunFolder, RunFolderError
from catalyst_nb.runs.lock import fcntl, lock_holder

__all__ = ["RunStatus", "SILENT_S", "run_status"]

#: Without file locks: a run that wrote no event for this long is reported as stopped.
SILENT_S = 300.0


@dataclass(frozen=True)
class RunStatus:
    """Where a run folder stands.

    Attributes:
        run_dir: the folder.
        state: ``running``, ``waiting for approval``, ``finished``, ``failed`` or ``stopped``.
        detail: one line that says more (the round and whether the run process is there, the accuracy,
            the error, how long ago the last event was written).
        request: when waiting, the round's request (see :mod:`catalyst_nb.runs.approval_inbox`).
        alive: whether a run process is at work on the folder (as far as the files tell).
    """

    run_dir: Path
    state: str
    detail: str
    request: dict[str, Any] | None = None
    alive: bool = False

    @property
    def waiting(self) -> bool:
        return self.state == "waiting for approval"

    def line(self) -> str:
        return f"{os.fspath(self.run_dir)}: {self.state}" + (f" ({self.detail})" if self.detail else "")


def _ago(seconds: float) -> str:
    return f"{seconds:.0f} s ago" if seconds < 120 else f"{seconds / 60:.0f} min ago"


def run_status(run_dir: str | os.PathLike[str]) -> RunStatus:
    """The state of the run in ``run_dir``; :class:`RunFolderError` when it holds no run."""
    folder = RunFolder(run_dir)
    path = folder.path
    if not folder.has_run():
        raise RunFolderError(f"{os.fspath(path)} holds no run (no config.json)")
    if folder.is_finished():
        summary = folder.read_summary()
        acc = summary.get("test_accuracy")
        shown = f"test accuracy {100 * acc:.2f} %" if isinstance(acc, (int, float)) else ""
        return RunStatus(path, "finished", ", ".join(x for x in (str(summary.get("status", "done")), shown) if x))
    error = path / "error.txt"
    if error.is_file():
        lines = [ln for ln in error.read_text(encoding="utf-8", errors="replace").splitlines() if ln.strip()]
        return RunStatus(path, "failed", lines[-1].strip() if lines else "see error.txt")
    inbox = ApprovalInbox(path)
    request = inbox.pending()
    if request is not None:
        alive = inbox.waiting_alive()
        round_index = request["awaiting"]["round"]
        how = ("the run is waiting" if alive else
               "the run is not running: decide, then continue it with `catalyst-nb run ... --resume`")
        deadline = request.get("deadline")
        if deadline is not None and alive:
            how += f"; the recommendation is taken in {max(0.0, deadline - time.time()):.0f} s"
        refused = inbox.refusals(round_index)
        if refused:
            how += f"; an earlier answer was refused: {refused[-1].get('reason')}"
        return RunStatus(path, "waiting for approval", f"round {round_index}, {how}", request=request, alive=alive)
    try:
        silent = time.time() - folder.events_file.stat().st_mtime
    except FileNotFoundError:
        silent = time.time() - folder.config_file.stat().st_mtime if folder.config_file.exists() else float("inf")
    holder = lock_holder(path)
    if holder is not None:
        return RunStatus(path, "running", f"process {holder}, last event {_ago(silent)}", alive=True)
    if fcntl is None and silent < SILENT_S:
        return RunStatus(path, "running", f"last event {_ago(silent)}", alive=True)
    return RunStatus(path, "stopped", f"no run process holds the folder, last event {_ago(silent)}; continue "
                                      "it with `catalyst-nb run ... --resume`")
