"""Runs as folders: one method, headless and resumable (``catalyst-nb run``), and reading them back."""
from __future__ import annotations

from catalyst_nb.runs.config import METHODS, RunConfig, load_toml
from catalyst_nb.runs.execute import execute
from catalyst_nb.runs.folder import RunFolder, RunFolderError
from catalyst_nb.runs.record import RunRecord, load_run

__all__ = ["METHODS", "RunConfig", "RunFolder", "RunFolderError", "RunRecord", "execute", "load_run", "load_toml"]
