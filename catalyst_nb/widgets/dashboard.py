"""One call for the whole view: the trajectory inspector, the approval panel when one is due, and the
accuracy per stage, all following the same optimizer."""
from __future__ import annotations

from typing import Any

from catalyst_nb.widgets.approval import RestartApproval
from catalyst_nb.widgets.inspector import TrajectoryInspector
from catalyst_nb.widgets.stage_accuracy import StageAccuracy

__all__ = ["Dashboard", "dashboard"]


class Dashboard:
    """Composes :class:`TrajectoryInspector`, :class:`RestartApproval` and :class:`StageAccuracy`.

    The approval slot holds a panel while ``optimizer.awaiting`` is set and the last decided panel
    (disabled, with its outcome) after.  It follows the optimizer's event stream: the ``awaiting`` event
    brings the panel, whoever drives the optimizer (a loop, a run, a cell).  Under IPython the steps still
    queued in the inspector are drawn after every cell (a ``post_run_cell`` callback).
    """

    def __init__(self, optimizer: Any, **inspector_options: Any) -> None:
        import ipywidgets as w

        self.optimizer = optimizer
        self.inspector = TrajectoryInspector(optimizer, **inspector_options)
        self.approval: RestartApproval | None = None
        self.stages = StageAccuracy(optimizer) if hasattr(optimizer, "events") else None
        self.approval_box = w.VBox()
        parts = [self.inspector.widget, self.approval_box]
        if self.stages is not None:
            parts.append(self.stages.widget)
        self.widget = w.VBox(parts)
        self._handle = (optimizer.register_event_hook(lambda _opt, _event: self.refresh())
                        if hasattr(optimizer, "register_event_hook") else None)
        self._ipython = _ipython()
        if self._ipython is not None:
            self._ipython.events.register("post_run_cell", self._after_cell)
        self.refresh()

    def _after_cell(self, _result: Any) -> None:
        self.inspector.flush()

    def close(self) -> None:
        """Stop following the optimizer and the notebook's cells."""
        if self._handle is not None:
            self._handle.remove()
            self._handle = None
        if self._ipython is not None:
            self._ipython.events.unregister("post_run_cell", self._after_cell)
            self._ipython = None
        self.inspector.detach()
        if self.stages is not None:
            self.stages.detach()

    def refresh(self) -> None:
        """Show a new approval panel if the optimizer waits for a decision this panel does not cover."""
        awaiting = getattr(self.optimizer, "awaiting", None)
        if awaiting is not None and (self.approval is None or self.approval.awaiting is not awaiting):
            self.approval = RestartApproval(self.optimizer, awaiting)
            self.approval_box.children = (self.approval.widget,)

    def _ipython_display_(self) -> None:  # pragma: no cover - exercised in notebooks
        from IPython.display import display

        self.refresh()
        display(self.widget)


def _ipython() -> Any:
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython comes with ipywidgets
        return None
    return get_ipython()


def dashboard(optimizer: Any, **inspector_options: Any) -> Dashboard:
    """The inspector, the approval panel and the accuracy per stage for ``optimizer``; display the result."""
    return Dashboard(optimizer, **inspector_options)
