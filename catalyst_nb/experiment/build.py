"""From a :class:`~catalyst_nb.runs.RunConfig` to the objects a run needs: model, splits, features, learner,
LLM client and optimizer.

The one place where a config becomes objects: :class:`~catalyst_nb.experiment.Experiment` calls these
builders for the notebook, ``catalyst-nb run`` and every sweep cell alike, so the three give the same run
for the same config.  Nothing here drives a run or writes a file.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

import torch

from catalyst_nb.llm.launcher import WarmingLocalClient
from catalyst_nb.runs.config import RunConfig

__all__ = ["RunContext", "build_context", "make_learner", "fingerprint", "open_llm_client", "build_optimizer",
           "llm_overrides", "LazyLocalServer"]

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
    """Load the model and the data, draw the few-shot splits and extract (cached) features."""
    from catalyst_nb.backbone import load_clip
    from catalyst_nb.data import few_shot, load_embedded_fashion_mnist, load_fashion_mnist, split_base_new
    from catalyst_nb.features import extract_features
    from catalyst_nb.llm.examples import describe_task

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
    return RunContext(clip=clip, classnames=tuple(train.classnames), train=feats(train), scoring=feats(scoring),
                      test=feats(test), test_new=feats(test_new) if test_new is not None else None,
                      task=describe_task(train.name, train.classnames))


def make_learner(config: RunConfig, clip: Any, classnames: tuple[str, ...]):
    from catalyst_nb.prompt_learner import PromptLearner

    g = config.gradient
    return PromptLearner(clip, classnames, n_ctx=g.n_ctx, ctx_init=g.ctx_init or None, seed=config.seed).to(clip.device)


def fingerprint(ctx: RunContext) -> dict[str, str]:
    """What a resumed run must share with the run it continues: weights and the exact images."""
    return {"image_weights": ctx.clip.image_weights_id, "model": ctx.clip.name, "train": ctx.train.key,
            "scoring": ctx.scoring.key, "test": ctx.test.key}


class LazyLocalServer(WarmingLocalClient):
    """The run's client for a local LLM: the embedded Gemma's server starts loading at once, in the
    background, while the first gradient stage runs, and is waited for at the first call (not before);
    with ``chat`` (``llm = "local-chat"``) the 1.1 GB chat model's server starts at the first call.

    Its cores are lent, not reserved (``lends_cores``): a call is synchronous, so torch keeps every free
    core for the stages and the server computes on the free cores during a call.  A resumed run whose calls
    all replay from its cassette starts a server it does not use (about 1-3 s of one core, in the
    background); the stages no longer wait for a start in the first round.
    """

    def __init__(self, *, chat: bool = False) -> None:
        super().__init__(chat=chat, warm=not chat)


def open_llm_client(config: RunConfig) -> Any:
    """The live client a config names (``close()`` it when done); ``None`` for ``llm="none"``."""
    from catalyst_nb.llm.openai_clients import OpenAIChatClient, OpenAICompletionClient

    llm = config.llm
    if llm.source == "none":
        return None
    if llm.source == "local-chat":
        return LazyLocalServer(chat=True)
    if llm.source == "local":
        return LazyLocalServer()
    cls = OpenAIChatClient if llm.kind == "chat" else OpenAICompletionClient
    # servers without auth accept any placeholder; a real key comes from the environment, never a file
    return cls(llm.model or "default", base_url=llm.source, api_key=os.environ.get("OPENAI_API_KEY") or "EMPTY")


def llm_overrides(config: RunConfig) -> dict[str, Any]:
    """The LLM optimizer's settings the config sets on top of its preset's (the seed always)."""
    given = {"samples": config.llm.samples, "temperature": config.llm.temperature}
    out = {"seed": config.seed, **{k: v for k, v in given.items() if v is not None}}
    if config.uses_llm and config.llm.source == "local":  # the embedded model's server decodes a round's
        out["batch_samples"] = True                          # samples together (not the random-edit control)
    return out


def build_optimizer(config: RunConfig, ctx: RunContext, client: Any, *, approval: str = "auto") -> Any:
    """The optimizer of ``config.method``: the catalyst's loop for every gradient method (CoOp is the
    catalyst without rounds' restarts, the projection control the catalyst without an LLM), the LLM
    optimizer for ``llm-only``, nothing for ``zero-shot``."""
    if config.method == "zero-shot":
        return None
    if config.method == "llm-only":
        from catalyst_nb.llm.optimizer import LLMOptimizerConfig, LLMPromptOptimizer
        from catalyst_nb.optim.catalyst_config import llm_settings

        settings = llm_settings(config.catalyst.preset, client.kind, llm_overrides(config))
        return LLMPromptOptimizer(client, task=ctx.task, config=LLMOptimizerConfig.from_dict(settings))
    from catalyst_nb.optim.catalyst import CatalystOptimizer

    c, g = config.catalyst, config.gradient
    overrides: dict[str, Any] = {"rounds": c.rounds}
    if c.restart is not None:
        overrides["restart"] = c.restart
    overrides.update(restart_margin=c.restart_margin, probe_steps=c.probe_steps, probe_top=c.probe_top)
    if c.momentum is not None:
        overrides["momentum"] = c.momentum
    if c.restart_schedule is not None:
        overrides["schedule"] = c.restart_schedule
    if config.method == "projection-restarts":
        overrides.update(restart_from="any", sources=("projection", "variant", "pool"))
        overrides.setdefault("restart", "best")
    gradient: dict[str, Any] = dict(total_steps=config.steps, batch_size=g.batch_size, lr=g.lr, seed=config.seed,
                                    schedule=g.schedule, drop_last=g.drop_last)
    if g.warmup_steps is not None:  # otherwise the gradient optimizer's own rule, the only one
        gradient["warmup_steps"] = g.warmup_steps
    if config.method == "random-edits":
        client = _random_edit_client(config, ctx)
    return CatalystOptimizer(
        make_learner(config, ctx.clip, ctx.classnames), ctx.train, scoring=ctx.scoring, evaluation=ctx.test,
        client=client if config.method in ("catalyst", "random-edits") else None, task=ctx.task, preset=c.preset, approval=approval,
        gradient=gradient, llm_config=llm_overrides(config), **overrides,
    )


def _random_edit_client(config: RunConfig, ctx: RunContext) -> Any:
    """The random-edit control's proposal source: the preset's word limit, the CLIP vocabulary's words.

    It needs no cassette: its edits come from each request's hashed sampling seed, so a resumed run
    repeats them."""
    from catalyst_nb.llm.random_edits import RandomEditClient, vocabulary_words
    from catalyst_nb.optim.catalyst_config import llm_settings

    max_words = llm_settings(config.catalyst.preset, "completion", {}).get("max_words")
    return RandomEditClient(vocabulary_words(ctx.clip.tokenizer), max_words=max_words)
