"""One run, one object: :class:`Experiment` builds a run from its config and drives it; :func:`execute`
is the same, headless, into a run folder (``catalyst-nb run`` and sweep cells).

Modules: :mod:`.build` (config -> model, features, learner, LLM client, optimizer), :mod:`.experiment`
(the object and its driver), :mod:`.summary` (a finished run's summary), :mod:`.headless`
(:func:`execute`) and :mod:`.cli` (the ``run`` command).  Names are imported on first use, so the command line is built without torch.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from catalyst_nb.lazy import lazy_getattr

_EXPORTS = {"Experiment": "catalyst_nb.experiment.experiment", "execute": "catalyst_nb.experiment.headless"}
__all__ = sorted(_EXPORTS)

__getattr__ = lazy_getattr("catalyst_nb.experiment", _EXPORTS, globals())

if TYPE_CHECKING:
    from catalyst_nb.experiment.headless import execute
    from catalyst_nb.experiment.experiment import Experiment
