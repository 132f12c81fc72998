"""The probe restart policy's forks: train the current context and the top proposals side by side.

Probing asks "where would P more steps take us?" for the current context and for each of the top M
proposals, and keeps the branch with the lowest scoring loss.  Each fork starts from the same optimizer
state (same step, same epoch order and generator, so the same minibatches), a proposal's fork after its
template was loaded the way a restart loads it (momentum reset and schedule rewarm per the preset).

Run one fork after another, that is M + 1 stages of P steps.  Here the forks run as **one batch of
contexts**: every step is one forward and one backward through the text tower for all forks
(:meth:`~catalyst_nb.prompt_learner.PromptLearner.text_features_batch`), the per-fork losses summed, so
each context receives its own gradient, and each fork then takes its own SGD update with its own
momentum and learning rate.  On a GPU that costs about one stage instead of M + 1; on the CPU the same
arithmetic in fewer, larger kernel calls.  The result equals running the forks separately up to float
rounding (tested to 1e-5: losses, contexts, momentum).  The separate way remains for memory: when the
forks' class prompts do not fit the optimizer's text-memory budget at once (``class_chunk``), or on
request (``batched=False``).

Each fork ends as a full :meth:`GradientPromptOptimizer.state_dict`, so the chosen one is *adopted*
(:func:`adopt_fork`): loaded as the live state, with its steps replayed to the step hooks once.
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import torch
import torch.nn.functional as F

from catalyst_nb.optim.gradient import GradientPromptOptimizer, NonFiniteContextError, NonFiniteLossError
from catalyst_nb.scoring import TemplateScorer
from catalyst_nb.trajectory import StepRecord

__all__ = ["CURRENT", "ForkRun", "adopt_fork", "forks_fit_at_once", "run_forks"]

#: The branch that continues from the current context (no template loaded).
CURRENT = "current"


@dataclass
class ForkRun:
    """What probing produced.

    Attributes:
        losses: scoring-split loss of each branch after its P steps.
        states: each branch's optimizer state after its P steps (for :func:`adopt_fork`).
        batched: whether the forks ran as one batch.
        seconds: wall time of the forks (steps and scoring).
    """

    losses: dict[str, float]
    states: dict[str, dict[str, Any]] = field(repr=False)
    batched: bool
    seconds: float


def forks_fit_at_once(gradient: GradientPromptOptimizer, n_forks: int) -> bool:
    """Whether ``n_forks`` forks' class prompts fit one text-tower pass within the optimizer's memory
    budget (its ``class_chunk``: classes encoded at once with autograd)."""
    return gradient.class_chunk >= n_forks * len(gradient.learner.classnames)


def run_forks(
    gradient: GradientPromptOptimizer,
    scorer: TemplateScorer,
    branches: Mapping[str, str | None],
    *,
    steps: int,
    load_template: Callable[[str], Any],
    batched: bool | None = None,
) -> ForkRun:
    """Run ``steps`` steps from each branch and score where each ends; the live optimizer ends unchanged.

    Args:
        gradient: the live optimizer; its current state is every fork's origin.
        scorer: scores each branch's context at the end (the scoring split).
        branches: name -> template to load first (``None``: continue from the current context).
        steps: P, steps per fork.
        load_template: loads a template into ``gradient`` as a restart would (the caller's restart rules).
        batched: one batch of contexts (True), one fork after another (False), or whichever fits the
            memory budget (None, the default: batched when :func:`forks_fit_at_once`).

    Raises:
        NonFiniteLossError: a fork's loss or context became NaN/inf (the live state is restored first).

    Step hooks are not silenced here: a caller whose observers must not see fork steps mutes them
    around the call (steps of batched forks never reach the hooks).
    """
    if steps < 1:
        raise ValueError(f"steps={steps!r} must be >= 1")
    if not branches:
        raise ValueError("branches is empty: nothing to probe")
    started = time.perf_counter()
    origin = _snapshot(gradient)
    if batched is None:
        batched = len(branches) > 1 and forks_fit_at_once(gradient, len(branches))
    try:
        starts: dict[str, dict[str, Any]] = {}
        for name, template in branches.items():
            _restore(gradient, origin)
            if template is not None:
                load_template(template)
            starts[name] = _snapshot(gradient)
        if batched:
            _restore(gradient, origin)
            states = _batched(gradient, starts, steps)
        else:
            states = {}
            for name, start in starts.items():
                _restore(gradient, start)
                for _ in range(steps):
                    gradient.step()
                states[name] = _snapshot(gradient)
        losses = {}
        for name, state in states.items():
            with torch.no_grad():
                gradient.learner.ctx.copy_(state["state"]["ctx"].to(gradient.learner.ctx.device))
            losses[name] = float(scorer.current().loss)
    finally:
        _restore(gradient, origin)
    return ForkRun(losses=losses, states=states, batched=batched, seconds=time.perf_counter() - started)


def _snapshot(gradient: GradientPromptOptimizer) -> dict[str, Any]:
    """The optimizer's state, detached from it: torch's optimizer ``state_dict`` hands out its live
    momentum tensors (and loading one keeps them), so a later step would change the snapshot."""
    state = gradient.state_dict()  # the common layout: the entries are under "state"
    state["state"]["optimizer"] = copy.deepcopy(state["state"]["optimizer"])
    return state


def _restore(gradient: GradientPromptOptimizer, state: Mapping[str, Any]) -> None:
    """Load a snapshot without letting the optimizer keep (and later change) its tensors."""
    gradient.load_state_dict({**state, "state": {**state["state"], "optimizer": copy.deepcopy(state["state"]["optimizer"])}})


def adopt_fork(gradient: GradientPromptOptimizer, state: Mapping[str, Any]) -> list[StepRecord]:
    """Make a fork's end state the live one; its steps are replayed to the step hooks (observers see
    every live step once).  Returns the adopted records."""
    seen = len(gradient.trajectory)
    gradient.load_state_dict(dict(state))
    adopted = list(gradient.trajectory[seen:])
    gradient.replay_step_hooks(adopted)
    return adopted


# ------------------------------------------------------------------------------------------ batched


@dataclass
class _Fork:
    """One fork's own optimizer state while the batch runs."""

    start: dict[str, Any]
    momentum: torch.Tensor | None
    schedule_step: int
    schedule_total: int
    records: list[StepRecord] = field(default_factory=list)
    lr: float = 0.0


def _momentum_of(state: Mapping[str, Any]) -> torch.Tensor | None:
    entries = list(state["state"]["optimizer"].get("state", {}).values())
    buf = entries[0].get("momentum_buffer") if entries else None
    return None if buf is None else buf.clone()


def _batched(gradient: GradientPromptOptimizer, starts: Mapping[str, dict[str, Any]], steps: int) -> dict[str, dict[str, Any]]:
    """The forks as one batch of contexts; ``gradient`` holds the origin and draws the shared batches."""
    learner, c = gradient.learner, gradient.config
    device = learner.ctx.device
    names = list(starts)
    forks = [_Fork(start=starts[n], momentum=_momentum_of(starts[n]),
                   schedule_step=int(starts[n]["state"]["schedule_step"]),
                   schedule_total=int(starts[n]["state"]["schedule_total"]))
             for n in names]
    contexts = torch.stack([starts[n]["state"]["ctx"] for n in names]).to(device, learner.ctx.dtype)
    first_step, stage = int(starts[names[0]]["state"]["step"]), int(starts[names[0]]["state"]["stage"])
    scale = learner.clip.logit_scale.to(device)
    for j in range(steps):
        began = time.perf_counter()
        feats, labels = gradient.draw_batch()
        ctx = contexts.detach().requires_grad_(True)
        with gradient.autocast():
            text = learner.text_features_batch(ctx)
        logits = scale * torch.einsum("bd,fcd->fbc", feats.float(), text.float())
        losses = torch.stack([F.cross_entropy(lg, labels) for lg in logits])
        values = losses.detach().tolist()
        bad = next((v for v in values if not math.isfinite(v)), None)
        if bad is not None:
            raise NonFiniteLossError(first_step + j, bad)
        (grad,) = torch.autograd.grad(losses.sum(), ctx)
        accuracy = (logits.detach().argmax(-1) == labels).float().mean(-1).tolist()
        updated = []
        with torch.no_grad():
            for i, fork in enumerate(forks):
                fork.lr = gradient.learning_rate_at(fork.schedule_step, fork.schedule_total)
                p, d_p = contexts[i], grad[i]
                if c.weight_decay:
                    d_p = d_p.add(p, alpha=c.weight_decay)
                if c.momentum:  # torch.optim.SGD's update (dampening 0, no Nesterov)
                    if fork.momentum is None:
                        fork.momentum = d_p.detach().clone()
                    else:
                        fork.momentum.mul_(c.momentum).add_(d_p)
                    d_p = fork.momentum
                new = p.add(d_p, alpha=-fork.lr)
                if not bool(torch.isfinite(new).all()):
                    raise NonFiniteContextError(first_step + j, values[i])
                updated.append(new)
        contexts = torch.stack(updated)
        seconds = (time.perf_counter() - began) / len(forks)
        for i, fork in enumerate(forks):
            fork.records.append(_record(gradient, contexts[i], step=first_step + j, stage=stage, loss=values[i],
                                        accuracy=accuracy[i], grad_norm=float(grad[i].norm()), lr=fork.lr,
                                        seconds=seconds))
            fork.schedule_step += 1
    data = gradient.state_dict()["state"]  # the shared data order after the P draws
    return {name: _end_state(fork, contexts[i], data, steps) for i, (name, fork) in enumerate(zip(names, forks))}


def _record(gradient: GradientPromptOptimizer, ctx: torch.Tensor, *, step: int, stage: int, loss: float,
            accuracy: float, grad_norm: float, lr: float, seconds: float) -> StepRecord:
    """The step record a separate step would have written (projection of the fork's context included)."""
    projected = None
    every = gradient.config.project_every
    if every and step % every == 0:
        learner = gradient.learner
        with torch.no_grad():
            learner.ctx.copy_(ctx)
        projected = learner.to_text(metric=gradient.config.projection_metric)
    return StepRecord(
        step=step, loss=loss, accuracy=accuracy, grad_norm=grad_norm, lr=lr,
        context_text=projected.text if projected else None,
        template=projected.template if projected else None,
        token_ids=projected.token_ids[0] if projected else None,
        distance=(sum(projected.distances[0]) / len(projected.distances[0])) if projected else None,
        seconds=seconds, stage=stage,
    )


def _end_state(fork: _Fork, ctx: torch.Tensor, data: Mapping[str, Any], steps: int) -> dict[str, Any]:
    """The fork's start state moved on by its ``steps`` steps, as :meth:`GradientPromptOptimizer.state_dict`."""
    start = fork.start["state"]
    entries = dict(start)
    optimizer = copy.deepcopy(start["optimizer"])
    groups = optimizer["param_groups"]
    groups[0]["lr"] = fork.lr
    if fork.momentum is not None:
        param = groups[0]["params"][0]
        optimizer["state"] = {param: {**optimizer["state"].get(param, {}), "momentum_buffer": fork.momentum.cpu().clone()}}
    entries.update(
        ctx=ctx.detach().cpu().clone(),
        optimizer=optimizer,
        step=int(start["step"]) + steps,
        schedule_step=fork.schedule_step,
        generator=data["generator"].clone(),
        perm=data["perm"].clone(),
        pos=data["pos"],
        trajectory=[*start["trajectory"], *(r.to_dict() for r in fork.records)],
    )
    return {**fork.start, "state": entries}
