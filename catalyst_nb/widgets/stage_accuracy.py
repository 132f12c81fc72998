"""StageAccuracy: accuracy at each stage boundary, redrawn as the optimizer's round events arrive."""
from __future__ import annotations

from typing import Any

from catalyst_nb import plots

__all__ = ["StageAccuracy"]


class StageAccuracy:
    """A live :func:`catalyst_nb.plots.stage_accuracy_figure` over an optimizer's ``events``.

    Round events are rare (a few per run), so every one triggers a full redraw.
    """

    def __init__(self, optimizer: Any, *, follow: bool = True) -> None:
        import plotly.graph_objects as go

        self.optimizer = optimizer
        self.figure = go.FigureWidget(plots.stage_accuracy_figure(plots.stage_accuracy_info([])))
        self.widget = self.figure
        self._handle = optimizer.register_event_hook(lambda _opt, _event: self.refresh()) if (
            follow and hasattr(optimizer, "register_event_hook")) else None
        self.refresh()

    def info(self) -> dict[str, Any]:
        return plots.stage_accuracy_info(getattr(self.optimizer, "events", ()))

    def refresh(self) -> None:
        fresh = plots.stage_accuracy_figure(self.info())
        with self.figure.batch_update():
            self.figure.data = ()
            for trace in fresh.data:
                self.figure.add_trace(trace)

    def detach(self) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None

    def _ipython_display_(self) -> None:  # pragma: no cover - exercised in notebooks
        from IPython.display import display

        display(self.widget)
