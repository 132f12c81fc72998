"""Run one config headless into a run folder, resumably: what ``catalyst-nb run`` and every sweep cell call.

It is :class:`~catalyst_nb.experiment.Experiment` with a folder, driven to its end: every unit of work (a
gradient step, a round phase, an LLM-only round) is appended to the events file and followed by an atomic
state save, so a run killed at any point loses at most the unit in flight; resuming drops events the saved
state has not seen and continues bit-identically, the LLM replayed from the run's own cassette.
"""
from __future__ import annotations

import os
import time
from typing import Any, Callable

from catalyst_nb.runs.config import RunConfig
from catalyst_nb.runs.folder import RunFolder

__all__ = ["execute"]


def execute(
    config: RunConfig,
    run_dir: str | os.PathLike[str],
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    llm_client: Any = None,
    approval: str | None = None,
    on_event: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Run ``config`` into ``run_dir`` (or continue it with ``resume``) and return the summary.

    The folder is checked before any model loads: a fresh run into a folder that holds a run is refused
    unless ``overwrite``; ``resume`` of a folder without a run, or made with other settings, is refused
    with every difference named.  ``llm_client`` replaces the client the config names (a sweep passes
    one shared server).  ``approval`` overrides the config's; with ``human`` each restart waits in the run
    folder for a decision (``catalyst-nb approve``, a notebook attached to the folder) and ``on_event``
    hears ``{"type": "waiting", ...}`` when it starts waiting.  A run that finished already returns its
    saved summary.
    """
    from catalyst_nb.experiment.experiment import Experiment

    started = time.perf_counter()
    if resume:
        folder = RunFolder.for_resume(run_dir, config)
        if folder.is_finished():
            return folder.read_summary()
    with Experiment(config, folder=run_dir, resume=resume, overwrite=overwrite, llm_client=llm_client,
                    approval=approval, approval_inbox=True, progress=progress, on_event=on_event) as experiment:
        summary = experiment.run(progress=progress)
    summary["seconds"] = round(time.perf_counter() - started, 2)
    return summary
