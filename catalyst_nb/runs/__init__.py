"""Runs as data and as folders: the run config (:class:`RunConfig`), the run folder a run writes as it goes
(:class:`RunFolder`) and reading it back without a model (:func:`load_run`).

The runs themselves are built and driven by :class:`catalyst_nb.Experiment` (headless:
:func:`catalyst_nb.experiment.execute`, ``catalyst-nb run``), one layer up.  Names are imported on first
use, so that building the command line (which reads only the run config) does not import torch: a
mistyped flag is reported in a fraction of a second.
"""
from __future__ import annotations

from catalyst_nb.lazy import lazy_getattr

_EXPORTS = {
    "METHODS": "catalyst_nb.runs.config", "RunConfig": "catalyst_nb.runs.config", "load_toml": "catalyst_nb.runs.config",
    "RunFolder": "catalyst_nb.runs.folder", "RunFolderError": "catalyst_nb.runs.folder",
    "RunRecord": "catalyst_nb.runs.record", "load_run": "catalyst_nb.runs.record",
    "attach": "catalyst_nb.runs.attach", "AttachedRun": "catalyst_nb.runs.attach",
    "run_status": "catalyst_nb.runs.status", "RunStatus": "catalyst_nb.runs.status",
}
__all__ = sorted(_EXPORTS)


__getattr__ = lazy_getattr("catalyst_nb.runs", _EXPORTS, globals())
