"""Runs as folders: one method, headless and resumable (``catalyst-nb run``), and reading them back.

Names are imported on first use, so that building the command line (which reads only the run config)
does not import torch: a mistyped flag is reported in a fraction of a second.
"""
from __future__ import annotations

from catalyst_nb.lazy import lazy_getattr

_EXPORTS = {
    "METHODS": "catalyst_nb.runs.config", "RunConfig": "catalyst_nb.runs.config", "load_toml": "catalyst_nb.runs.config",
    "execute": "catalyst_nb.runs.execute", "RunFolder": "catalyst_nb.runs.folder",
    "RunFolderError": "catalyst_nb.runs.folder", "RunRecord": "catalyst_nb.runs.record",
    "load_run": "catalyst_nb.runs.record", "attach": "catalyst_nb.runs.attach", "AttachedRun": "catalyst_nb.runs.attach",
    "run_status": "catalyst_nb.runs.status", "RunStatus": "catalyst_nb.runs.status",
}
__all__ = sorted(_EXPORTS)


__getattr__ = lazy_getattr("catalyst_nb.runs", _EXPORTS, globals())
