"""Restart decision rules: whether a round's proposal replaces the context, and why, in words.

A restart loads a hard template into the context and so throws away what the gradient steps learned.
With 4 context slots (CoOp's "a photo of a") that is every learned vector, and the best proposal of a
round often scores 10 points below the context it would replace on the scoring split; restarting
anyway (the ``best`` rule) left runs 3–10 points below CoOp.  The rules here look at the evidence the
round already has (the context's own scoring loss and the proposals' scoring losses as loaded), and say
what they chose and why, so that the decision event, the approval panel and the report can show it.

Every rule is a pure function of scores (plain ``{"loss", "accuracy"}`` mappings and candidates) that
returns a :class:`RestartChoice`; the catalyst does the scoring and the restart.

- ``first``: the first valid proposal (the paper's released code), whatever it scores.
- ``best``: the best-scored proposal, whatever it costs.
- ``margin``: the best-scored proposal only when its scoring loss is at most ``margin`` (relative)
  above the context's; otherwise the context stays.
- ``trust``: a trust region: the context moves toward the best proposal by the largest of a few step
  fractions (1, 1/2, 1/4 ...) whose blended context scores within ``margin`` of the context; when none
  does, the context stays.
- ``probe``: the branch (plain continuation or a proposal) with the lowest scoring loss after P steps.
- ``none``: the context always stays (the LLM only observes).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

from catalyst_nb.candidates import Candidate

__all__ = ["TRUST_STEPS", "RestartChoice", "choose_best", "choose_first", "choose_margin", "choose_probe", "choose_trust",
           "cost_text", "within_margin"]

Score = Mapping[str, float]

#: the step fractions ``trust`` tries, largest first (1.0 is the proposal as loaded)
TRUST_STEPS = (1.0, 0.5, 0.25)


@dataclass(frozen=True)
class RestartChoice:
    """What a rule decided.

    Attributes:
        chosen: the id to restart from, or ``None``: the context stays.
        reason: one sentence a person can read, with the numbers that decided.
        proposal: the id the rule weighed (the best or first proposal), also when it was not taken.
        step: how far the context moves toward ``chosen``: 1.0 replaces it (a plain restart), 0.5 moves
            half-way (``trust``).
    """

    chosen: str | None
    reason: str
    proposal: str | None = None
    step: float = 1.0


def _score(c: Candidate) -> dict[str, float]:
    return {"loss": float(c.loss), "accuracy": float(c.accuracy)}  # type: ignore[arg-type]


def cost_text(current: Score, after: Score) -> str:
    """``"this restart costs 11.2 points on the scoring split"`` (or gains, or leaves it level)."""
    points = 100 * (float(after["accuracy"]) - float(current["accuracy"]))
    if abs(points) < 0.05:
        return "this restart leaves the scoring accuracy level"
    verb = "gains" if points > 0 else "costs"
    return f"this restart {verb} {abs(points):.1f} points on the scoring split"


def _losses(current: Score, after: Score) -> str:
    return f"scoring loss {float(after['loss']):.4f} against the context's {float(current['loss']):.4f}"


def within_margin(current: Score, after: Score, margin: float) -> bool:
    """Whether ``after``'s scoring loss is at most ``margin`` (relative) above ``current``'s."""
    return float(after["loss"]) <= float(current["loss"]) * (1.0 + margin)


def _check_margin(margin: float) -> None:
    if not margin >= 0:
        raise ValueError(f"margin={margin!r} must be a number >= 0")


def _take(cand: Candidate | None, current: Score, what: str) -> RestartChoice:
    """Restart from ``cand`` without comparing (``first``, ``best``); the reason still gives the cost."""
    if cand is None:
        return RestartChoice(None, "no valid proposal: the context stays")
    after = _score(cand)
    return RestartChoice(cand.id, f"{what}: {cost_text(current, after)}; {_losses(current, after)}", proposal=cand.id)


def choose_first(valid: Sequence[Candidate], current: Score) -> RestartChoice:
    """The first valid proposal, whatever it scores (the paper's rule)."""
    return _take(valid[0] if valid else None, current, "first valid proposal (rule 'first' does not compare)")


def choose_best(ranked: Sequence[Candidate], current: Score) -> RestartChoice:
    """The best-scored proposal, whatever it costs."""
    return _take(ranked[0] if ranked else None, current, "best-scored proposal (rule 'best' restarts whatever it costs)")


def choose_margin(ranked: Sequence[Candidate], current: Score, *, margin: float) -> RestartChoice:
    """The best-scored proposal if its scoring loss is within ``margin`` of the context's, else keep."""
    _check_margin(margin)
    if not ranked:
        return RestartChoice(None, "no valid proposal: the context stays")
    best = ranked[0]
    after = _score(best)
    limit = f"{100 * margin:g} % above the context's"
    if within_margin(current, after, margin):
        return RestartChoice(best.id, f"restart: the best proposal's {_losses(current, after)} is within "
                                      f"{limit}; {cost_text(current, after)}", proposal=best.id)
    return RestartChoice(None, f"context kept: the best proposal's {_losses(current, after)} is more than "
                               f"{limit}; {cost_text(current, after)}", proposal=best.id)


def choose_trust(best: Candidate | None, current: Score, blended: Mapping[float, Score], *,
                 margin: float) -> RestartChoice:
    """Move toward ``best`` by the largest step whose blended context scores within ``margin``.

    Args:
        best: the best-scored proposal (``None``: nothing to move toward).
        current: the context's scoring loss and accuracy.
        blended: step fraction (0 < s <= 1; 1 is ``best`` as loaded) -> the blended context's scores.
        margin: relative loss margin, as in :func:`choose_margin`.
    """
    _check_margin(margin)
    if best is None:
        return RestartChoice(None, "no valid proposal: the context stays")
    if not blended or any(not 0 < s <= 1 for s in blended):
        raise ValueError(f"blended={dict(blended)!r} needs step fractions in (0, 1]")
    for step in sorted(blended, reverse=True):
        after = blended[step]
        if within_margin(current, after, margin):
            what = "restart" if step == 1 else f"context moved {step:g} of the way to the best proposal"
            return RestartChoice(best.id, f"{what}: {_losses(current, after)} is within {100 * margin:g} % "
                                          f"above the context's; {cost_text(current, after)}",
                                 proposal=best.id, step=step)
    smallest = min(blended)
    return RestartChoice(None, f"context kept: even {smallest:g} of the way to the best proposal gives "
                               f"{_losses(current, blended[smallest])}, more than {100 * margin:g} % above; "
                               f"a full restart: {cost_text(current, blended.get(1.0, _score(best)))}",
                         proposal=best.id)


def choose_probe(losses: Mapping[str, float], current: Score) -> RestartChoice:
    """The branch with the lowest scoring loss after the probe steps (``"current"``: no restart)."""
    if "current" not in losses:
        raise ValueError(f"probe losses {dict(losses)!r} need the 'current' branch")
    best = min(losses, key=lambda b: (losses[b], b != "current"))
    ranked = ", ".join(f"{b} {v:.4f}" for b, v in sorted(losses.items(), key=lambda kv: kv[1]))
    if best == "current":
        return RestartChoice(None, f"context kept: after the probe steps plain continuation scored best "
                                   f"(scoring loss {ranked})")
    return RestartChoice(best, f"restart: after the probe steps {best} scored below plain continuation "
                               f"(scoring loss {ranked})", proposal=best)
