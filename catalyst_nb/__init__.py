"""catalyst_nb: CLIP prompt tuning where gradient descent and an LLM optimizer work together (MaaO).

One run is one :class:`Experiment`, built from one :class:`RunConfig` (data: a dict, a TOML file or
keywords, with ``[gradient]``, ``[catalyst]`` and ``[llm]`` tables).  It loads the model and data, caches
the features, builds the optimizer the method needs and drives it; ``catalyst-nb run`` and every sweep
cell build their runs the same way, so a notebook and the command line give the same run::

    from catalyst_nb import Experiment

    with Experiment(method="catalyst", shots=16, steps=250) as exp:
        summary = exp.run()                      # the summary dict, as summary.json holds it
        accuracy = exp.evaluate("test").accuracy

The optimizers it drives are public too, for work below the experiment: :class:`GradientPromptOptimizer`
(step-wise CoOp on a :class:`PromptLearner`), :class:`LLMPromptOptimizer` (an LLM proposes templates
from scored ones) and :class:`CatalystOptimizer` (gradient stages interleaved with LLM rounds that choose
restart points; with ``approval="human"`` a restart waits as an :class:`AwaitingApproval`).  Around them:
the backbone (:func:`load_clip`), data (:func:`few_shot` and the loaders), features
(:func:`extract_features`), metrics (:func:`evaluate_templates`, :func:`harmonic_mean`), records
(:class:`Trajectory`, :func:`load_run` for a run folder) and LLM clients.  Everything else lives in the
subpackages: :mod:`catalyst_nb.data`, :mod:`catalyst_nb.llm`, :mod:`catalyst_nb.optim`,
:mod:`catalyst_nb.runs`, :mod:`catalyst_nb.sweeps`, :mod:`catalyst_nb.widgets`, :mod:`catalyst_nb.plots`.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from catalyst_nb.lazy import lazy_getattr

__version__ = "0.1.0"

# Public name -> module that defines it.  Imports are lazy (PEP 562) so that `import catalyst_nb.llm`
# or the LLM server command does not pay for importing torch and open_clip.  At most 30 names: the rest
# stay in the subpackages (a test counts).
_EXPORTS: dict[str, str] = {
    "Experiment": "catalyst_nb.experiment",
    "RunConfig": "catalyst_nb.runs.config",
    "load_run": "catalyst_nb.runs.record",
    **dict.fromkeys(["ModelNotFoundError", "WeightsUnavailableError", "load_clip"], "catalyst_nb.backbone"),
    **dict.fromkeys(["ImageDataset", "few_shot", "load_coop_split", "load_embedded_fashion_mnist", "load_image_folder"],
                    "catalyst_nb.data"),
    "resolve_device": "catalyst_nb.devices",
    **dict.fromkeys(["EvalResult", "evaluate_templates", "harmonic_mean"], "catalyst_nb.evaluation"),
    "extract_features": "catalyst_nb.features",
    **dict.fromkeys(["AwaitingApproval", "CatalystOptimizer", "GradientPromptOptimizer"], "catalyst_nb.optim"),
    "PromptLearner": "catalyst_nb.prompt_learner",
    "Trajectory": "catalyst_nb.trajectory",
    "smoke_budget": "catalyst_nb.smoke",
    **dict.fromkeys(["LLMPromptOptimizer", "LocalLLMServer", "OpenAIChatClient", "ReplayingClient", "ScriptedClient",
                     "TaskDescription"], "catalyst_nb.llm"),
}

__all__ = sorted(_EXPORTS)


__getattr__ = lazy_getattr("catalyst_nb", _EXPORTS, globals())


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


if TYPE_CHECKING:  # static analysers and IDEs see exactly the names above (a test keeps the two in step)
    from catalyst_nb.backbone import ModelNotFoundError, WeightsUnavailableError, load_clip
    from catalyst_nb.data import (ImageDataset, few_shot, load_coop_split, load_embedded_fashion_mnist,
                                  load_image_folder)
    from catalyst_nb.devices import resolve_device
    from catalyst_nb.evaluation import EvalResult, evaluate_templates, harmonic_mean
    from catalyst_nb.experiment import Experiment
    from catalyst_nb.features import extract_features
    from catalyst_nb.llm import (LLMPromptOptimizer, LocalLLMServer, OpenAIChatClient, ReplayingClient,
                                 ScriptedClient, TaskDescription)
    from catalyst_nb.optim import AwaitingApproval, CatalystOptimizer, GradientPromptOptimizer
    from catalyst_nb.prompt_learner import PromptLearner
    from catalyst_nb.runs.config import RunConfig
    from catalyst_nb.runs.record import load_run
    from catalyst_nb.smoke import smoke_budget
    from catalyst_nb.trajectory import Trajectory
