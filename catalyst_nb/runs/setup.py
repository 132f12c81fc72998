"""From a :class:`RunConfig` to the objects a run needs: model, splits, features, learner, LLM client.

Kept apart from the loops in :mod:`catalyst_nb.runs.execute` so that a notebook can build the same
objects a headless run uses (and reload a run folder into live optimizers).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import torch

from catalyst_nb.runs.config import RunConfig

__all__ = ["RunContext", "build_context", "make_learner", "fingerprint", "open_llm_client"]

log = logging.getLogger(__name__)


@dataclass
class RunContext:
    """Everything a run computes before its first step."""

    clip: Any
    classnames: tuple[str, ...]
    train: Any  # FeatureSet
    scoring: Any
    test: Any
    test_new: Any | None  # base-to-new: the new classes' test features
    task: Any  # TaskDescription


def build_context(config: RunConfig, *, progress: bool = True) -> RunContext:
    from catalyst_nb.backbone import load_clip
    from catalyst_nb.data import few_shot, load_embedded_fashion_mnist, load_fashion_mnist, split_base_new
    from catalyst_nb.features import extract_features
    from catalyst_nb.llm.examples import FASHION_MNIST_TASK
    from catalyst_nb.llm.meta_prompt import TaskDescription

    with torch.random.fork_rng():
        torch.manual_seed(config.seed)  # random-weight models (smoke runs) are the same on every run
        clip = load_clip(config.model, config.pretrained, device=config.device)
    if config.data == "embedded":
        pool, val, test = (load_embedded_fashion_mnist(s) for s in ("train", "val", "test"))
    else:
        pool, test = load_fashion_mnist("train", root=config.data_root), load_fashion_mnist("test", root=config.data_root)
        val = load_embedded_fashion_mnist("val")  # Fashion-MNIST train images the few-shot draws rarely meet
    train = few_shot(pool, shots=config.shots, seed=config.seed)
    scoring = few_shot(val, shots=min(config.scoring_shots, 32), seed=config.seed)
    test_new = None
    if config.base_to_new:
        train, _ = split_base_new(train)
        scoring, _ = split_base_new(scoring)
        test, test_new = split_base_new(test)
    feats = lambda ds: extract_features(clip, ds, progress=progress)  # noqa: E731
    task = FASHION_MNIST_TASK if "fashion" in train.name.lower() else TaskDescription(train.name, "photos", train.classnames)
    if tuple(task.classnames) != tuple(train.classnames):
        task = TaskDescription(task.dataset, task.images, tuple(train.classnames))
    return RunContext(clip=clip, classnames=tuple(train.classnames), train=feats(train), scoring=feats(scoring),
                      test=feats(test), test_new=feats(test_new) if test_new is not None else None, task=task)


def make_learner(config: RunConfig, clip: Any, classnames: tuple[str, ...]):
    from catalyst_nb.prompt_learner import PromptLearner

    return PromptLearner(clip, classnames, n_ctx=config.n_ctx, ctx_init=config.ctx_init or None,
                         seed=config.seed).to(clip.device)


def fingerprint(ctx: RunContext) -> dict[str, str]:
    """What a resumed run must share with the run it continues: weights and the exact images."""
    return {"image_weights": ctx.clip.image_weights_id, "model": ctx.clip.name, "train": ctx.train.key,
            "scoring": ctx.scoring.key, "test": ctx.test.key}


def open_llm_client(config: RunConfig) -> Any:
    """The live client a config names (``close()`` it when done); ``None`` for ``llm="none"``."""
    from catalyst_nb.llm.openai_clients import OpenAIChatClient, OpenAICompletionClient

    if config.llm == "none":
        return None
    if config.llm == "local":
        from catalyst_nb.llm.launcher import WarmingLocalClient

        return WarmingLocalClient()
    import os

    cls = OpenAIChatClient if config.llm_kind == "chat" else OpenAICompletionClient
    # servers without auth accept any placeholder; a real key comes from the environment, never a file
    return cls(config.llm_model or "default", base_url=config.llm, api_key=os.environ.get("OPENAI_API_KEY") or "EMPTY")
