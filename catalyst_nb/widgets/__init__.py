"""Notebook views of an optimizer: thin widgets that read public state and act through public methods.

Importing this package needs ipywidgets and plotly; the core (``catalyst_nb.optim`` and below) never
imports it.
"""
from __future__ import annotations

from catalyst_nb.widgets.approval import RestartApproval, preview_html
from catalyst_nb.widgets.dashboard import Dashboard, dashboard
from catalyst_nb.widgets.inspector import TrajectoryInspector, context_table
from catalyst_nb.widgets.stage_accuracy import StageAccuracy

__all__ = ["Dashboard", "RestartApproval", "StageAccuracy", "TrajectoryInspector", "context_table", "dashboard",
           "preview_html"]
