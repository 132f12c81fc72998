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

from catalyst_nb.backbone import (
    EMBEDDED_MODEL,
    EMBEDDED_TAG,
    ClipBackbone,
    ModelNotFoundError,
    WeightsIntegrityError,
    WeightsUnavailableError,
    encode_text_from_embeddings,
    list_package_models,
    load_clip,
)
from catalyst_nb.data import (
    FASHION_MNIST_CLASSNAMES,
    CorruptDataError,
    CorruptImageError,
    DatasetNotFoundError,
    ImageDataset,
    ImageNotFoundError,
    base_new_split,
    few_shot,
    load_coop_split,
    load_embedded_fashion_mnist,
    load_fashion_mnist,
    load_image_folder,
    split_base_new,
)
from catalyst_nb.devices import resolve_device
from catalyst_nb.evaluation import EvalResult, evaluate_classifier, evaluate_templates, harmonic_mean, summarize_seeds
from catalyst_nb.features import Augmentation, FeatureSet, extract_features
from catalyst_nb.optim import GradientConfig, GradientPromptOptimizer, NonFiniteLossError
from catalyst_nb.projection import nearest_tokens
from catalyst_nb.prompt_learner import ContextText, LoadReport, PromptLearner
from catalyst_nb.trajectory import StepRecord, Trajectory

__version__ = "0.1.0"

__all__ = [
    "Augmentation",
    "ClipBackbone",
    "ContextText",
    "CorruptDataError",
    "CorruptImageError",
    "DatasetNotFoundError",
    "EMBEDDED_MODEL",
    "EMBEDDED_TAG",
    "EvalResult",
    "FASHION_MNIST_CLASSNAMES",
    "FeatureSet",
    "GradientConfig",
    "GradientPromptOptimizer",
    "ImageDataset",
    "ImageNotFoundError",
    "LoadReport",
    "ModelNotFoundError",
    "NonFiniteLossError",
    "PromptLearner",
    "StepRecord",
    "Trajectory",
    "WeightsIntegrityError",
    "WeightsUnavailableError",
    "base_new_split",
    "encode_text_from_embeddings",
    "evaluate_classifier",
    "evaluate_templates",
    "extract_features",
    "few_shot",
    "harmonic_mean",
    "list_package_models",
    "load_clip",
    "load_coop_split",
    "load_embedded_fashion_mnist",
    "load_fashion_mnist",
    "load_image_folder",
    "nearest_tokens",
    "resolve_device",
    "split_base_new",
    "summarize_seeds",
]
