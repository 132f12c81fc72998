"""A finished run's summary (what ``summary.json`` holds and ``catalyst-nb run`` prints), one function per
kind of optimizer.

Every summary reads the optimizer's records as they are stored (each event's ``to_dict()`` JSON), so it is
the same whether the run just happened or was resumed from a folder.
"""
from __future__ import annotations

import math
from typing import Any, Iterable, Mapping

from catalyst_nb.runs.config import RunConfig

__all__ = ["common_summary", "zero_shot_summary", "llm_only_summary", "gradient_summary", "best_hand_written"]


def common_summary(config: RunConfig, ctx: Any) -> dict[str, Any]:
    from catalyst_nb.evaluation import evaluate_templates

    return {"method": config.method, "preset": config.catalyst.preset, "seed": config.seed, "shots": config.shots,
            "steps": config.steps, "model": config.model, "data": config.data, "base_to_new": config.base_to_new,
            "zero_shot_accuracy": evaluate_templates(ctx.clip, "a photo of a {}.", ctx.test).accuracy}


def _base_new(summary: dict[str, Any], base: float, new: float | None) -> None:
    from catalyst_nb.evaluation import harmonic_mean

    if new is not None:
        summary.update(base_accuracy=base, new_accuracy=new, harmonic_mean=harmonic_mean(base, new))


def best_hand_written(ctx: Any) -> tuple[str, Any]:
    """The hand-written template with the lowest scoring loss, and its scoring result (zero-shot's choice)."""
    from catalyst_nb.evaluation import evaluate_templates
    from catalyst_nb.templates import HAND_WRITTEN_TEMPLATES

    scored = [(evaluate_templates(ctx.clip, t, ctx.scoring), t) for t in HAND_WRITTEN_TEMPLATES]
    result, template = min(scored, key=lambda rt: (rt[0].loss, -rt[0].accuracy))
    return template, result


def zero_shot_summary(config: RunConfig, ctx: Any, evaluate: Any) -> dict[str, Any]:
    """The best hand-written template on the scoring split, reported on the test split."""
    template, scoring = best_hand_written(ctx)
    test = evaluate("test").accuracy
    summary = {**common_summary(config, ctx), "status": "done", "template": template, "test_accuracy": test,
               "scoring_accuracy": scoring.accuracy, "steps": 0, "stages": []}
    _base_new(summary, test, evaluate("new").accuracy if ctx.test_new is not None else None)
    return summary


def llm_only_summary(config: RunConfig, ctx: Any, opt: Any, evaluate: Any) -> dict[str, Any]:
    best = opt.best()
    test = evaluate("test").accuracy
    summary = {**common_summary(config, ctx), "status": "done", "template": best.template, "test_accuracy": test,
               "scoring_accuracy": best.accuracy, "steps": 0, "stages": [],
               "llm": {"calls": sum(r.n_calls for r in opt.rounds), "rounds": len(opt.rounds),
                       "valid": sum(len(r.proposal_ids) for r in opt.rounds)}}
    _base_new(summary, test, evaluate("new").accuracy if ctx.test_new is not None else None)
    return summary


def _stages(events: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    from catalyst_nb.optim.events import stage_end_rows

    return [{"stage": row["stage"], "step": row["step"], "scoring_accuracy": row["scoring_accuracy"],
             "scoring_loss": row["scoring_loss"], "test_accuracy": row["eval_accuracy"]}
            for row in stage_end_rows(events)]


def gradient_summary(config: RunConfig, ctx: Any, opt: Any, evaluate: Any) -> dict[str, Any]:
    """CoOp, the catalyst and the projection control: per-stage accuracies, restarts, LLM use."""
    events = [e.to_dict() for e in opt.events]
    test = evaluate("test").accuracy
    summary = {**common_summary(config, ctx), "status": "done", "test_accuracy": test,
               "scoring_accuracy": opt.scorer.current().accuracy, "stages": _stages(events),
               "final_projection": opt.learner.to_text().template, "budget_used": opt.budget_used,
               "restarts": [{"round": e["round"], "step": e["step"], "template": e["data"]["template"]}
                            for e in events if e["kind"] == "restart"]}
    if config.method in ("catalyst", "random-edits"):
        rounds = opt.llm.rounds
        summary["llm"] = {"calls": sum(r.n_calls for r in rounds), "rounds": len(rounds),
                          "valid": sum(len(r.proposal_ids) for r in rounds),
                          "chosen": sum(1 for e in events if e["kind"] == "decision" and e["data"]["chosen"]),
                          "skipped": sum(1 for e in events if e["kind"] == "skipped")}
    _base_new(summary, test, evaluate("new").accuracy if ctx.test_new is not None else None)
    if math.isnan(test):
        summary["status"] = "collapsed"
    return summary
