"""Cells of a sweep that wait for approval, listed as they start waiting.

A cell with ``approval = "human"`` waits in its run folder like a single run (its worker blocks; the
other workers go on with other cells).  The sweep command cannot know when that happens from the
executor's results, which arrive only when a cell ends, so a watcher reads the cell folders' inboxes
while the sweep runs and announces each newly waiting (cell, round) once, with the command that answers it.
"""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Callable

__all__ = ["WaitingWatcher", "waiting_cells"]


def waiting_cells(root: str | Path) -> list[Any]:
    """The :class:`~catalyst_nb.runs.status.RunStatus` of every cell of the sweep in ``root`` that waits."""
    from catalyst_nb.runs.approval_inbox import APPROVALS_DIR
    from catalyst_nb.runs.folder import RunFolderError
    from catalyst_nb.runs.status import run_status

    out = []
    for inbox in sorted(Path(root, "cells").glob(f"*/{APPROVALS_DIR}")):
        try:
            status = run_status(inbox.parent)
        except RunFolderError:
            continue
        if status.waiting:
            out.append(status)
    return out


class WaitingWatcher:
    """``with WaitingWatcher(root, echo):`` announces waiting cells every ``poll`` seconds until the block ends."""

    def __init__(self, root: str | Path, echo: Callable[..., None], *, poll: float = 1.0) -> None:
        self.root = Path(root)
        self.echo = echo
        self.poll = poll
        self.announced: set[tuple[str, int]] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="sweep-approvals", daemon=True)

    def __enter__(self) -> "WaitingWatcher":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()

    def check(self) -> None:
        """Announce cells that started waiting since the last check."""
        from catalyst_nb.runs.approval_cli import answer_hint

        for status in waiting_cells(self.root):
            key = (status.run_dir.name, int(status.request["awaiting"]["round"]))
            if key not in self.announced:
                self.announced.add(key)
                self.echo(f"cell {key[0]} waits for approval (round {key[1]}): {answer_hint(status.run_dir)}",
                          flush=True)

    def _loop(self) -> None:
        while not self._stop.wait(self.poll):
            try:
                self.check()
            except OSError:  # a cell folder changing under us: look again next time
                continue
