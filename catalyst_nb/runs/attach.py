"""A notebook attached to a run folder that another process writes (here, or on a GPU node whose folder
is shared or synced): follow it live and decide its restarts in the same approval panel.

:func:`attach` returns an :class:`AttachedRun`, which reads like the optimizer the widgets already know:
``trajectory`` and ``events`` grow as the run appends to ``events.jsonl`` (step and event hooks fire for
each new line), ``awaiting`` is the round that waits for a decision, and ``approve`` / ``reject`` /
``suggest`` / ``preview`` are the verbs :class:`~catalyst_nb.widgets.RestartApproval` calls.  So::

    run = catalyst_nb.runs.attach("runs/catalyst-seed1")
    catalyst_nb.widgets.dashboard(run)          # live plots; the approval panel appears when the run waits

A decision goes into the run folder (checked exactly as in the notebook, first wins, recorded as decided
by ``notebook``); the waiting run picks it up within about a second.  Nothing here loads the model: a
preview of an edited text needs the run's tokenizer only.
"""
from __future__ import annotations

import json
import os
import threading
import time
from typing import Any, Callable

from catalyst_nb.hooks import HookRegistry, RemovableHandle
from catalyst_nb.runs.approval_inbox import ApprovalError, ApprovalInbox
from catalyst_nb.runs.folder import RunFolder
from catalyst_nb.runs.record import event_record
from catalyst_nb.trajectory import StepRecord, Trajectory

__all__ = ["AttachedRun", "attach"]


class AttachedRun:
    """A run folder followed from another process; see the module docstring.

    Args:
        run_dir: the run folder (it must hold a run: ``config.json``).
        follow: read new events in a background thread every ``poll`` seconds (otherwise call :meth:`poll`).
        poll: seconds between two reads.
    """

    def __init__(self, run_dir: str | os.PathLike[str], *, follow: bool = True, poll: float = 0.5) -> None:
        if not poll > 0:
            raise ValueError(f"poll={poll!r} must be > 0 seconds")
        self.folder = RunFolder(run_dir)
        self.config = self.folder.read_config()
        self.inbox = ApprovalInbox(run_dir)
        self.trajectory = Trajectory()
        self.events: list[Any] = []
        self.poll_s = poll
        self._step_hooks, self._event_hooks = HookRegistry(), HookRegistry()
        self._lock = threading.RLock()
        self._offset, self._inode, self._lines = 0, None, 0
        self._skip = 0
        self._shown: tuple[tuple[str, int], Any, dict[str, Any]] | None = None
        self._pending_key: tuple[str, int] | None = None
        self._fit: Any = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.poll()
        if follow:
            self._thread = threading.Thread(target=self._follow, name=f"attach {self.folder.path.name}", daemon=True)
            self._thread.start()

    def __repr__(self) -> str:
        return f"AttachedRun({os.fspath(self.folder.path)!r}, steps={len(self.trajectory)}, events={len(self.events)})"

    # ------------------------------------------------------------------------------------------ following

    def register_step_hook(self, hook: Callable[[Any, StepRecord], None]) -> RemovableHandle:
        """``hook(run, record)`` for every step the run appends from now on."""
        return self._step_hooks.register(hook)

    def register_event_hook(self, hook: Callable[[Any, Any], None]) -> RemovableHandle:
        """``hook(run, event)`` for every round event, and when a round starts waiting for a decision."""
        return self._event_hooks.register(hook)

    def poll(self) -> int:
        """Read what the run appended since the last call; returns the number of new lines."""
        with self._lock:
            new = 0
            for line in self._new_lines():
                record = event_record(line)
                if isinstance(record, StepRecord):
                    self.trajectory.append(record)
                    self._step_hooks(self, record)
                elif record is not None:
                    self.events.append(record)
                    self._event_hooks(self, record)
                new += 1
            pending = self.inbox.pending()
            key = None if pending is None else (pending["run_id"], int(pending["awaiting"]["round"]))
            if key != self._pending_key:
                self._pending_key = key
                self._event_hooks(self, self.awaiting)
            return new

    def _new_lines(self) -> list[dict[str, Any]]:
        path = self.folder.events_file
        try:
            st = path.stat()
        except FileNotFoundError:
            return []
        if st.st_ino != self._inode or st.st_size < self._offset:
            # rewritten (a resumed run drops the events its state had not seen, then writes them again,
            # identically): read it from the start and skip what was already delivered
            self._inode, self._offset, self._skip, self._lines = st.st_ino, 0, self._lines, 0
        with open(path, "rb") as fh:
            fh.seek(self._offset)
            chunk = fh.read()
        end = chunk.rfind(b"\n") + 1  # a line still being written is read next time
        self._offset += end
        out = []
        for raw in chunk[:end].splitlines():
            if not raw.strip():
                continue
            self._lines += 1
            if self._skip:
                self._skip -= 1
                continue
            out.append(json.loads(raw))
        return out

    def _follow(self) -> None:
        while not self._stop.wait(self.poll_s):
            try:
                self.poll()
            except (OSError, ValueError):  # the folder changing under us: read again next time
                continue

    def close(self) -> None:
        """Stop following (the folder and the run are untouched)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    # ------------------------------------------------------------------------------------------ reading

    @property
    def step_count(self) -> int:
        return len(self.trajectory)

    @property
    def learner(self) -> Any:
        """What views need of the run's learner without its weights: the tokenizer (as ``clip.tokenizer``)."""
        from types import SimpleNamespace

        from catalyst_nb.runs.approval_check import tokenizer_of

        return SimpleNamespace(clip=SimpleNamespace(tokenizer=tokenizer_of(self.config.model)), ctx=None)

    def status(self) -> Any:
        """The run's :class:`~catalyst_nb.runs.status.RunStatus` (running, waiting for approval, ...)."""
        from catalyst_nb.runs.status import run_status

        return run_status(self.folder.path)

    @property
    def awaiting(self) -> Any:
        """The round that waits for a decision now, as an ``AwaitingApproval`` (the same object while it
        waits, so a panel built on it is recognised), or ``None``."""
        from catalyst_nb.optim.approval import AwaitingApproval

        request = self.inbox.pending()
        if request is None:
            return None
        key = (request["run_id"], int(request["awaiting"]["round"]))
        with self._lock:
            if self._shown is None or self._shown[0] != key:
                self._shown = (key, AwaitingApproval.from_dict(request["awaiting"]), request)
            return self._shown[1]

    def wait_for_approval(self, timeout: float | None = None) -> Any:
        """Block until the run waits for a decision (or raise ``TimeoutError``); returns ``awaiting``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while (awaiting := self.awaiting) is None:
            if self.folder.is_finished():
                raise RuntimeError(f"{os.fspath(self.folder.path)} finished without waiting for another decision")
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"{os.fspath(self.folder.path)} did not wait for a decision within {timeout} s "
                                   f"(status: {self.status().line()})")
            time.sleep(self.poll_s)
        self.poll()
        return awaiting

    # ------------------------------------------------------------------------------------------ deciding

    def _request(self) -> dict[str, Any]:
        """The request the person is looking at: the one ``awaiting`` last returned."""
        if self._shown is None and self.awaiting is None:
            raise ApprovalError(f"{os.fspath(self.folder.path)} is not waiting for a decision "
                                f"({self.status().line()})")
        assert self._shown is not None
        return self._shown[2]

    def _fit_for(self, request: dict[str, Any]) -> Any:
        from catalyst_nb.runs.approval_check import TemplateFit

        if self._fit is None or self._fit.spec != request["fit"]:
            self._fit = TemplateFit(request["fit"])
        return self._fit

    def preview(self, text: str) -> Any:
        """What the run's context would hold for ``text`` (a ``LoadReport``); changes nothing."""
        return self._fit_for(self._request()).preview(text)

    def _decide(self, action: str, **kw: Any) -> Any:
        from catalyst_nb.runs.approval_check import decide

        request = self._request()
        decision = decide(self.folder.path, action=action, decider="notebook", fit=self._fit_for(request),
                          round_index=int(request["awaiting"]["round"]), run_id=request["run_id"], **kw)
        self.poll()
        return decision

    def approve(self, candidate_id: str, text: str | None = None) -> Any:
        """Restart from proposal ``candidate_id`` (optionally edited to ``text``); returns the ``Decision``."""
        return self._decide("approve", candidate=candidate_id, text=text)

    def reject(self) -> Any:
        """Keep the current context this round."""
        return self._decide("reject")

    def suggest(self, text: str) -> Any:
        """Restart from a person's own template."""
        return self._decide("suggest", text=text)


def attach(run_dir: str | os.PathLike[str], *, follow: bool = True, poll: float = 0.5) -> AttachedRun:
    """Follow the run in ``run_dir`` (written by another process) and decide its restarts from here."""
    return AttachedRun(run_dir, follow=follow, poll=poll)
