"""catalyst_nb: notebook-first CLIP prompt tuning, gradient descent and an LLM optimizer working together.

The public names below are the whole API that notebooks and later layers use:

* backbone: :func:`load_clip` (open_clip names/tags/checkpoints, and the embedded offline model);
* soft prompts: :class:`PromptLearner` (CoOp context; ``to_text`` / ``load_text``);
* data: :class:`ImageDataset` and its loaders, :func:`few_shot`, base/new splits;
* features: :func:`extract_features` (cached, with augmented views);
* optimizers: :class:`GradientPromptOptimizer` (step-wise CoOp) and the LLM layer in :mod:`catalyst_nb.llm`;
* records and metrics: :class:`Trajectory`, :class:`StepRecord`, :func:`evaluate_templates`, :func:`harmonic_mean`.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# Public name -> module that defines it.  Imports are lazy (PEP 562) so that `import catalyst_nb.llm`
# or the LLM server command does not pay for importing torch and open_clip.
_EXPORTS: dict[str, str] = {
    **dict.fromkeys(
        ["EMBEDDED_MODEL", "EMBEDDED_TAG", "ClipBackbone", "ModelNotFoundError", "WeightsIntegrityError",
         "WeightsUnavailableError", "encode_text_from_embeddings", "list_package_models", "load_clip"],
        "catalyst_nb.backbone",
    ),
    **dict.fromkeys(
        ["FASHION_MNIST_CLASSNAMES", "CorruptDataError", "CorruptImageError", "DatasetNotFoundError",
         "ImageDataset", "ImageNotFoundError", "base_new_split", "few_shot", "load_coop_split",
         "load_embedded_fashion_mnist", "load_fashion_mnist", "load_image_folder", "split_base_new"],
        "catalyst_nb.data",
    ),
    "resolve_device": "catalyst_nb.devices",
    **dict.fromkeys(
        ["EvalResult", "evaluate_classifier", "evaluate_templates", "harmonic_mean", "summarize_seeds"],
        "catalyst_nb.evaluation",
    ),
    **dict.fromkeys(["Augmentation", "FeatureSet", "extract_features"], "catalyst_nb.features"),
    **dict.fromkeys(
        ["GradientConfig", "GradientPromptOptimizer", "NonFiniteLossError", "ApprovalPending", "AwaitingApproval",
         "CatalystConfig", "CatalystOptimizer", "PRESETS", "RoundEvent"],
        "catalyst_nb.optim",
    ),
    "nearest_tokens": "catalyst_nb.projection",
    **dict.fromkeys(["TemplateScore", "TemplateScorer"], "catalyst_nb.scoring"),
    **dict.fromkeys(["ContextText", "LoadReport", "PromptLearner"], "catalyst_nb.prompt_learner"),
    **dict.fromkeys(["StepRecord", "Trajectory"], "catalyst_nb.trajectory"),
    **dict.fromkeys(["PLACEHOLDER", "TemplateError", "check_template", "fill_template"], "catalyst_nb.templates"),
    **dict.fromkeys(["Candidate", "Source", "Status"], "catalyst_nb.candidates"),
    **dict.fromkeys(["smoke_budget", "smoke_mode"], "catalyst_nb.smoke"),
    **dict.fromkeys(
        ["Budget", "BudgetExceeded", "LLMError", "LocalLLMServer", "MeteredClient", "OpenAIChatClient",
         "OpenAICompletionClient", "RecordingClient", "ReplayMiss", "ReplayingClient", "ScoredTemplate",
         "ScriptedClient", "TaskDescription", "UsageLedger", "LLMPromptOptimizer", "LLMOptimizerConfig", "LLMRound"],
        "catalyst_nb.llm",
    ),
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'catalyst_nb' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


if TYPE_CHECKING:  # static analysers and IDEs see exactly the names above (a test keeps the two in step)
    from catalyst_nb.backbone import (EMBEDDED_MODEL, EMBEDDED_TAG, ClipBackbone, ModelNotFoundError,
                                      WeightsIntegrityError, WeightsUnavailableError, encode_text_from_embeddings,
                                      list_package_models, load_clip)
    from catalyst_nb.candidates import Candidate, Source, Status
    from catalyst_nb.data import (FASHION_MNIST_CLASSNAMES, CorruptDataError, CorruptImageError, DatasetNotFoundError,
                                  ImageDataset, ImageNotFoundError, base_new_split, few_shot, load_coop_split,
                                  load_embedded_fashion_mnist, load_fashion_mnist, load_image_folder, split_base_new)
    from catalyst_nb.devices import resolve_device
    from catalyst_nb.evaluation import (EvalResult, evaluate_classifier, evaluate_templates, harmonic_mean,
                                        summarize_seeds)
    from catalyst_nb.features import Augmentation, FeatureSet, extract_features
    from catalyst_nb.llm import (Budget, BudgetExceeded, LLMError, LLMOptimizerConfig, LLMPromptOptimizer, LLMRound,
                                 LocalLLMServer, MeteredClient, OpenAIChatClient, OpenAICompletionClient,
                                 RecordingClient, ReplayingClient, ReplayMiss, ScoredTemplate, ScriptedClient,
                                 TaskDescription, UsageLedger)
    from catalyst_nb.optim import (PRESETS, ApprovalPending, AwaitingApproval, CatalystConfig, CatalystOptimizer,
                                   GradientConfig, GradientPromptOptimizer, NonFiniteLossError, RoundEvent)
    from catalyst_nb.projection import nearest_tokens
    from catalyst_nb.prompt_learner import ContextText, LoadReport, PromptLearner
    from catalyst_nb.scoring import TemplateScore, TemplateScorer
    from catalyst_nb.smoke import smoke_budget, smoke_mode
    from catalyst_nb.templates import PLACEHOLDER, TemplateError, check_template, fill_template
    from catalyst_nb.trajectory import StepRecord, Trajectory
