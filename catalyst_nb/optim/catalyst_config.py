"""The catalyst's settings as one frozen dataclass, and the two presets.

``paper`` follows the released code where it is sound: 3 rounds of one epoch each, up to 5 candidates
taken from the stage's projections, 3 proposals under 9 words, the first valid proposal used as the
restart (unscored), momentum and schedule carried on.  The one place it does not copy the released code
is the scoring split: candidates are scored on a held-out split, never on the split that is reported.

``default`` is ours: candidates also come from the pool of templates that scored well in earlier rounds
and from one-token variants of the projection; a small base model is asked for one caption-like line per
call, 8 calls a round; every proposal is scored as it would be loaded into the context, and the
best-scoring one becomes the restart only when its scoring loss is within 5 % of the current context's
(the ``margin`` rule of :mod:`catalyst_nb.optim.restart_rule`): a restart that would throw away what the
gradient steps learned is refused.  The measurements behind these choices are in the README.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Mapping
from catalyst_nb.keys import check_known_keys

__all__ = ["CatalystConfig", "PRESETS", "RESTART_POLICIES", "resolve_config"]

RESTART_POLICIES = ("first", "best", "margin", "trust", "probe", "none")
CANDIDATE_SOURCES = ("projection", "variant", "pool")


@dataclass(frozen=True)
class CatalystConfig:
    """How a catalyst run is laid out (the gradient and LLM settings have their own configs).

    Attributes:
        rounds: LLM rounds R; each follows a gradient stage; a last stage runs to the budget.
        stage_steps: gradient steps per stage; ``0`` means ``total_steps // (rounds + 1)``.
        candidates: K, templates scored per round before the LLM is asked.
        sources: where candidates come from, in order of preference.
        variant_k: variants swap one slot for its 2nd..k-th nearest token.
        restart: ``first`` (first valid proposal, unscored choice), ``best`` (best scored proposal,
            whatever it costs), ``margin`` (the best scored proposal only when its scoring loss as loaded is
            at most ``restart_margin`` above the context's, else the context stays), ``trust`` (the
            context moves toward the best proposal by the largest of 1, 1/2, 1/4 of the way that scores
            within ``restart_margin``), ``probe`` (P steps from each of the top-M proposals and from the
            current context; the lowest scoring loss wins, so a round never leaves the run worse than
            plain continuation on the scoring split), ``none`` (the LLM observes, nothing restarts).
            The rules are in :mod:`catalyst_nb.optim.restart_rule`.
        restart_margin: relative scoring-loss margin of ``margin`` and ``trust`` (0.05: up to 5 % above
            the context's loss); other rules ignore it.
        probe_steps, probe_top: P and M for ``probe`` (other rules ignore them).
        momentum: ``keep`` (paper) or ``reset`` at a restart.
        schedule: ``continue`` (paper) or ``rewarm`` at a restart.
        pool_size: how many of the best scored templates the pool keeps.
        restart_from: ``proposals`` (the LLM's and people's) or ``any`` (the round's candidates too;
            without an LLM this is the projection-restart control that shows the LLM's own share).
        approval: ``auto`` (the policy decides) or ``human`` (the decision waits for a person).
    """

    rounds: int = 3
    stage_steps: int = 0
    candidates: int = 5
    sources: tuple[str, ...] = CANDIDATE_SOURCES
    variant_k: int = 3
    restart: str = "best"
    restart_margin: float = 0.05
    probe_steps: int = 10
    probe_top: int = 2
    momentum: str = "keep"
    schedule: str = "continue"
    pool_size: int = 20
    restart_from: str = "proposals"
    approval: str = "auto"

    def __post_init__(self) -> None:
        object.__setattr__(self, "sources", tuple(self.sources))
        checks = {
            "rounds": isinstance(self.rounds, int) and self.rounds >= 0,
            "stage_steps": isinstance(self.stage_steps, int) and self.stage_steps >= 0,
            "candidates": isinstance(self.candidates, int) and self.candidates >= 1,
            "sources": bool(self.sources) and all(s in CANDIDATE_SOURCES for s in self.sources),
            "variant_k": isinstance(self.variant_k, int) and self.variant_k >= 2,
            "restart": self.restart in RESTART_POLICIES,
            "restart_margin": (isinstance(self.restart_margin, (int, float)) and not isinstance(self.restart_margin, bool)
                               and 0 <= self.restart_margin < float("inf")),
            "probe_steps": isinstance(self.probe_steps, int) and self.probe_steps >= 1,
            "probe_top": isinstance(self.probe_top, int) and self.probe_top >= 1,
            "momentum": self.momentum in ("keep", "reset"),
            "schedule": self.schedule in ("continue", "rewarm"),
            "pool_size": isinstance(self.pool_size, int) and self.pool_size >= 1,
            "approval": self.approval in ("auto", "human"),
            "restart_from": self.restart_from in ("proposals", "any"),
        }
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise ValueError("; ".join(f"{k}={getattr(self, k)!r} is not allowed" for k in bad))

    def stage_length(self, total_steps: int) -> int:
        """Steps per stage for a budget, checked: R stages must leave steps for the last one."""
        steps = self.stage_steps or total_steps // (self.rounds + 1)
        if steps < 1:
            raise ValueError(f"total_steps={total_steps} is too small for {self.rounds} rounds")
        if self.rounds and steps * self.rounds >= total_steps:
            raise ValueError(
                f"stage_steps={steps} x rounds={self.rounds} = {steps * self.rounds} leaves no step of the "
                f"budget total_steps={total_steps} for the last stage"
            )
        return steps

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["sources"] = list(self.sources)
        return d


PRESETS: dict[str, dict[str, Any]] = {
    "paper": {
        "catalyst": dict(rounds=3, stage_steps=-1, candidates=5, sources=("projection",), restart="first",
                         momentum="keep", schedule="continue"),
        # the released code asks a chat model for 3 templates under 9 words; a chat model sees the history
        # without the projections' filler words (shown them, it copies them) and the class slot as [CLASS]
        # (shown {}, a code model fills it in)
        "llm": {"completion": dict(n_proposals=3, max_words=8, style="auto", temperature=0.7, samples=1),
                "chat": dict(n_proposals=3, max_words=8, style="auto", temperature=0.7, samples=1,
                             without_filler=True, class_word="[CLASS]")},
    },
    "default": {
        # a restart only when the best proposal scores within 5 % of the context's loss (README: restarts
        # that cannot wreck a run)
        "catalyst": dict(rounds=3, stage_steps=0, candidates=5, sources=CANDIDATE_SOURCES, restart="margin",
                         restart_margin=0.05, momentum="keep", schedule="continue"),
        # completion (base) models: one caption-like line per call, 8 calls; chat models: a list of 3
        "llm": {"completion": dict(n_proposals=8, max_words=10, style="captions", temperature=1.0, samples=8,
                                   max_tokens=24),
                "chat": dict(n_proposals=3, max_words=10, style="chat", temperature=0.7, samples=1,
                             without_filler=True, class_word="[CLASS]")},
    },
}


def resolve_config(preset: str, overrides: Mapping[str, Any], *, steps_per_epoch: int) -> CatalystConfig:
    """A preset's catalyst settings with ``overrides`` applied; unknown keys are named in the error.

    ``stage_steps=-1`` in a preset means "one epoch of the training set".
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
    check_known_keys(overrides, (f.name for f in fields(CatalystConfig)), "catalyst settings")
    base = dict(PRESETS[preset]["catalyst"])
    if base.get("stage_steps") == -1:
        base["stage_steps"] = steps_per_epoch
    merged = {**base, **overrides}
    return replace(CatalystConfig(), **merged)


def llm_settings(preset: str, client_kind: str, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """The LLM optimizer's settings for a preset and a client kind, with ``overrides`` on top."""
    spec = PRESETS[preset]["llm"]
    if "chat" in spec and "completion" in spec:
        spec = spec["chat" if client_kind == "chat" else "completion"]
    return {**spec, **overrides}
