"""Run one method headless into a run folder, resumably: the engine behind ``catalyst-nb run`` and sweeps.

Every unit of work (a gradient step, a round phase, an LLM-only round) is appended to the events file and
followed by an atomic state save, so a run killed at any point loses at most the unit in flight; resuming
drops events the saved state has not seen and continues bit-identically, the LLM replayed from the run's
own cassette.  Gradient methods (CoOp, the catalyst, the projection-restart control) share one loop over
:class:`~catalyst_nb.optim.CatalystOptimizer`, so their stage boundaries and step budgets are the same.
"""
from __future__ import annotations

import logging
import math
import os
import time
from pathlib import Path
from typing import Any, Callable

from catalyst_nb.runs.config import RunConfig
from catalyst_nb.runs.folder import RunFolder, RunFolderError, claim_folder
from catalyst_nb.runs.preflight import check_run_inputs

__all__ = ["execute", "RunFolderError"]

log = logging.getLogger(__name__)

UnitCallback = Callable[[dict[str, Any]], None]


def _event_of(unit: Any) -> dict[str, Any]:
    from catalyst_nb.optim.approval import AwaitingApproval
    from catalyst_nb.optim.events import RoundEvent, json_data

    if isinstance(unit, RoundEvent):
        return {"type": "round", **unit.to_dict()}
    if isinstance(unit, AwaitingApproval):
        return {"type": "awaiting", **json_data(unit.to_dict())}
    return {"type": "step", **json_data(unit.to_dict())}


def execute(
    config: RunConfig,
    run_dir: str | os.PathLike[str],
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    llm_client: Any = None,
    on_event: UnitCallback | None = None,
) -> dict[str, Any]:
    """Run ``config`` into ``run_dir`` (or continue it with ``resume``) and return the summary.

    The folder is checked before any model loads: a fresh run into a folder that holds a run is refused
    unless ``overwrite``; ``resume`` of a folder without a run, or made with other settings, or that
    cannot be continued as it is (see :mod:`catalyst_nb.runs.folder`), is refused with what is wrong
    named; a folder another process is writing is refused (:class:`~catalyst_nb.runs.lock.FolderBusyError`).
    ``llm_client`` replaces the client the config names (a sweep passes one shared server).  A run that finished already returns its saved summary.
    """
    started = time.perf_counter()
    check_run_inputs(config)  # a typo in the model or the device is refused before the folder is touched
    with claim_folder(run_dir, config, resume=resume, overwrite=overwrite) as folder:  # one writer at a time
        if resume and folder.is_finished():
            return folder.read_summary()
        return _run(config, folder, started, resume=resume, progress=progress, llm_client=llm_client,
                    on_event=on_event)


def _run(config: RunConfig, folder: RunFolder, started: float, *, resume: bool, progress: bool, llm_client: Any,
         on_event: UnitCallback | None) -> dict[str, Any]:
    from catalyst_nb.runs.setup import build_context, fingerprint, open_llm_client
    from catalyst_nb.threads import configure_torch_threads


    ctx = build_context(config, progress=progress)
    if resume:
        folder.check_fingerprint(fingerprint(ctx))
    else:
        folder.write_config(config, fingerprint(ctx))
    own_client = None
    client = llm_client
    if config.uses_llm and client is None:
        client = own_client = open_llm_client(config)
    # the CPUs this process may use, less the local LLM server's (CATALYST_NB_THREADS overrides)
    configure_torch_threads(llm_server=own_client if config.llm == "local" else None)
    try:
        if config.method == "zero-shot":
            summary = _zero_shot(config, ctx)
        elif config.method == "llm-only":
            summary = _llm_only(config, ctx, folder, client, resume=resume, on_event=on_event)
        else:
            summary = _gradient(config, ctx, folder, client, resume=resume, progress=progress, on_event=on_event)
    finally:
        if own_client is not None and hasattr(own_client, "close"):
            own_client.close()
    summary["seconds"] = round(time.perf_counter() - started, 2)
    if summary.get("status") == "done":
        folder.write_summary(summary)
        try:
            from catalyst_nb.runs.report import write_report

            write_report(folder, summary)
        except ImportError as exc:  # plotly is a dependency; a broken install should not lose the run
            log.warning("report not written: %s", exc)
    return summary


def _common(config: RunConfig, ctx: Any) -> dict[str, Any]:
    from catalyst_nb.evaluation import evaluate_templates

    return {"method": config.method, "preset": config.preset, "seed": config.seed, "shots": config.shots,
            "steps": config.steps, "model": config.model, "data": config.data, "base_to_new": config.base_to_new,
            "zero_shot_accuracy": evaluate_templates(ctx.clip, "a photo of a {}.", ctx.test).accuracy}


def _base_new(summary: dict[str, Any], base: float, new: float | None) -> None:
    from catalyst_nb.evaluation import harmonic_mean

    if new is not None:
        summary.update(base_accuracy=base, new_accuracy=new, harmonic_mean=harmonic_mean(base, new))


def _zero_shot(config: RunConfig, ctx: Any) -> dict[str, Any]:
    """The best hand-written template on the scoring split, reported on the test split."""
    from catalyst_nb.evaluation import evaluate_templates
    from catalyst_nb.templates import HAND_WRITTEN_TEMPLATES

    scored = [(evaluate_templates(ctx.clip, t, ctx.scoring), t) for t in HAND_WRITTEN_TEMPLATES]
    best_result, best = min(scored, key=lambda rt: (rt[0].loss, -rt[0].accuracy))
    test = evaluate_templates(ctx.clip, best, ctx.test).accuracy
    summary = {**_common(config, ctx), "status": "done", "template": best, "test_accuracy": test,
               "scoring_accuracy": best_result.accuracy, "steps": 0, "stages": []}
    new = evaluate_templates(ctx.clip, best, ctx.test_new).accuracy if ctx.test_new is not None else None
    _base_new(summary, test, new)
    return summary


def _llm_only(config: RunConfig, ctx: Any, folder: RunFolder, client: Any, *, resume: bool,
              on_event: UnitCallback | None) -> dict[str, Any]:
    """OPRO-style: as many LLM rounds (and calls) as the catalyst, no gradients; hard prompts scored raw."""
    from catalyst_nb.evaluation import evaluate_templates
    from catalyst_nb.llm.cassette import ResumingClient
    from catalyst_nb.llm.errors import LLMError
    from catalyst_nb.llm.optimizer import LLMOptimizerConfig, LLMPromptOptimizer
    from catalyst_nb.optim.catalyst_config import llm_settings

    client = ResumingClient(client, folder.cassette_file)
    settings = llm_settings(config.preset, client.kind, {"seed": config.seed})
    opt = LLMPromptOptimizer(client, task=ctx.task, config=LLMOptimizerConfig.from_dict(settings))
    start = f"{config.ctx_init} {{}}." if config.ctx_init else "a photo of a {}."
    n_events = 0
    if resume and folder.state_file.exists():
        state, n_events = folder.load_state()
        folder.restore(opt.load_state_dict, state["llm"])
        folder.truncate_events(n_events)
    else:
        first = evaluate_templates(ctx.clip, start, ctx.scoring)
        opt.tell({opt.suggest(start, note="initial template").id: (first.loss, first.accuracy)})

    def raw_score(template: str) -> tuple[float, float]:
        result = evaluate_templates(ctx.clip, template, ctx.scoring)
        return result.loss, result.accuracy

    for r in range(n_events, config.rounds):  # one event per round: the events count the rounds done
        try:
            new = opt.ask(opt.scored, round=r)
            opt.tell({p.id: raw_score(p.template) for p in new})
            event = {"type": "round", "kind": "proposals", "round": r, "step": 0,
                     "data": {"proposals": [opt.get(p.id).to_dict() for p in new], "n_calls": opt.rounds[-1].n_calls},
                     "seconds": 0.0}
        except LLMError as exc:
            event = {"type": "round", "kind": "skipped", "round": r, "step": 0,
                     "data": {"reason": f"LLM error: {type(exc).__name__}: {exc}"}, "seconds": 0.0}
        folder.append_event(event)
        n_events += 1
        folder.save_state({"llm": opt.state_dict()}, n_events=n_events)
        if on_event is not None:
            on_event(event)
    best = opt.best()
    test = evaluate_templates(ctx.clip, best.template, ctx.test).accuracy
    summary = {**_common(config, ctx), "status": "done", "template": best.template, "test_accuracy": test,
               "scoring_accuracy": best.accuracy, "steps": 0, "stages": [],
               "llm": {"calls": sum(r.n_calls for r in opt.rounds), "rounds": len(opt.rounds),
                       "valid": sum(len(r.proposal_ids) for r in opt.rounds)}}
    new_acc = evaluate_templates(ctx.clip, best.template, ctx.test_new).accuracy if ctx.test_new is not None else None
    _base_new(summary, test, new_acc)
    return summary


def _gradient(config: RunConfig, ctx: Any, folder: RunFolder, client: Any, *, resume: bool, progress: bool,
              on_event: UnitCallback | None) -> dict[str, Any]:
    from catalyst_nb.llm.cassette import ResumingClient
    from catalyst_nb.optim.approval import AwaitingApproval
    from catalyst_nb.optim.catalyst import CatalystOptimizer
    from catalyst_nb.runs.setup import make_learner

    learner = make_learner(config, ctx.clip, ctx.classnames)
    overrides: dict[str, Any] = {"rounds": config.rounds}
    if config.restart is not None:
        overrides["restart"] = config.restart
    if config.probe_steps or config.probe_top:
        overrides.update(probe_steps=config.probe_steps, probe_top=config.probe_top)
    if config.method == "projection-restarts":
        overrides.update(restart_from="any", sources=("projection", "variant", "pool"))
        overrides.setdefault("restart", "best")
    llm = ResumingClient(client, folder.cassette_file) if config.method == "catalyst" else None
    warmup = min(5, max(config.steps // 10, 0))
    opt = CatalystOptimizer(
        learner, ctx.train, scoring=ctx.scoring, evaluation=ctx.test, llm=llm, task=ctx.task, preset=config.preset,
        gradient=dict(total_steps=config.steps, batch_size=config.batch_size, lr=config.lr, seed=config.seed,
                      warmup_steps=warmup),
        llm_config={"seed": config.seed}, **overrides,
    )
    n_events = 0
    if resume and folder.state_file.exists():
        state, n_events = folder.load_state()
        folder.restore(opt.load_state_dict, state["optimizer"])
        folder.truncate_events(n_events)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=opt.total_steps, initial=opt.budget_used, desc=f"{config.method} seed {config.seed}",
                   unit="step", leave=False)
    status = "done"
    try:
        while not opt.done:
            if opt.awaiting is not None:
                status = "awaiting approval"
                break
            unit = opt.step()
            event = _event_of(unit)
            folder.append_event(event)
            n_events += 1
            folder.save_state({"optimizer": opt.state_dict()}, n_events=n_events)
            if on_event is not None:
                on_event(event)
            if bar is not None and bar.n != opt.budget_used:
                bar.update(opt.budget_used - bar.n)
            if isinstance(unit, AwaitingApproval):
                status = "awaiting approval"
                break
    finally:
        if bar is not None:
            bar.close()
    summary = {**_common(config, ctx), "status": status}
    if status != "done":
        return summary
    test = opt.gradient.evaluate(ctx.test).accuracy
    stages = [{"stage": e.data["stage"], "step": e.step, "scoring_accuracy": e.data["scoring"]["accuracy"],
               "scoring_loss": e.data["scoring"]["loss"],
               "test_accuracy": (e.data.get("eval") or {}).get("accuracy")}
              for e in opt.events if e.kind == "stage_end"]
    decisions = [e for e in opt.events if e.kind == "decision"]
    summary.update(
        test_accuracy=test, scoring_accuracy=opt.scorer.current().accuracy, stages=stages,
        final_projection=learner.to_text().template, budget_used=opt.budget_used,
        restarts=[{"round": e.round, "step": e.step, "template": e.data["template"]}
                  for e in opt.events if e.kind == "restart"],
    )
    if config.method == "catalyst":
        rounds = opt.llm.rounds
        summary["llm"] = {"calls": sum(r.n_calls for r in rounds), "rounds": len(rounds),
                          "valid": sum(len(r.proposal_ids) for r in rounds),
                          "chosen": sum(1 for d in decisions if d.data["chosen"]),
                          "skipped": sum(1 for e in opt.events if e.kind == "skipped")}
    new = None
    if ctx.test_new is not None:
        new = _new_class_accuracy(config, ctx, learner)
    _base_new(summary, test, new)
    if math.isnan(test):
        summary["status"] = "collapsed"
    return summary


def _new_class_accuracy(config: RunConfig, ctx: Any, learner: Any) -> float:
    """Base-to-new: the learned (shared) context in prompts of the classes it never saw."""
    import torch

    from catalyst_nb.evaluation import evaluate_classifier
    from catalyst_nb.runs.setup import make_learner

    other = make_learner(config, ctx.clip, tuple(ctx.test_new.classnames))
    with torch.no_grad():
        other.ctx.copy_(learner.ctx.detach())
        weights = other.text_features()
    return evaluate_classifier(weights, ctx.test_new, logit_scale=ctx.clip.logit_scale).accuracy
