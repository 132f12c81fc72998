"""Runs as folders: one method, headless and resumable (``catalyst-nb run``), and reading them back.

Names are imported on first use, so that building the command line (which reads only the run config)
does not import torch: a mistyped flag is reported in a fraction of a second.
"""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "METHODS": "catalyst_nb.runs.config", "RunConfig": "catalyst_nb.runs.config", "load_toml": "catalyst_nb.runs.config",
    "execute": "catalyst_nb.runs.execute", "RunFolder": "catalyst_nb.runs.folder",
    "RunFolderError": "catalyst_nb.runs.folder", "RunRecord": "catalyst_nb.runs.record",
    "load_run": "catalyst_nb.runs.record",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'catalyst_nb.runs' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
