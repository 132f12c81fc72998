"""The catalyst: gradient stages and LLM rounds as one step-wise optimizer (the paper's method).

One run is R rounds of::

    gradient stage (S steps) -> stage_end -> candidates scored -> LLM asked -> proposals scored
        -> decision -> restart -> next stage ... and after round R a last stage to the step budget.

:meth:`CatalystOptimizer.step` advances one unit: a gradient step (a :class:`StepRecord`) or one phase of
a round (a typed :class:`~catalyst_nb.optim.events.RoundEvent`); every event it emits is also what it
returns, so a caller that records the returned units records every event.  Where it is in a round is a
:class:`Phase`, and :data:`TRANSITIONS` lists every move between phases.  With ``approval="human"`` the
decision phase emits and returns an :class:`AwaitingApproval` event and nothing moves until
:meth:`approve`, :meth:`reject` or :meth:`suggest` is called; it never blocks and never opens a widget.  Every candidate, whatever its source, is one
:class:`Candidate` record scored on the scoring split *as it would be loaded into the context*.

Faults of the LLM (server down, timeout, budget spent, a reply with nothing usable) skip the round,
recorded with the reason; the gradient stages go on.  ``state_dict()`` holds everything (both optimizers,
the pool, the events, the round in progress, a pending approval), so a run continues bit-identically
after a restart of the kernel, with the LLM replayed from a cassette.
"""
from __future__ import annotations

import logging
import time
from dataclasses import replace
from enum import Enum
from typing import Any, Callable, Mapping

from catalyst_nb.candidates import Candidate, Status, rank_candidates
from catalyst_nb.evaluation import EvalResult
from catalyst_nb.features import FeatureSet
from catalyst_nb.hooks import HookRegistry, RemovableHandle
from catalyst_nb.llm.client import LLMClient
from catalyst_nb.llm.errors import LLMError
from catalyst_nb.llm.examples import describe_task
from catalyst_nb.llm.meta_prompt import TaskDescription
from catalyst_nb.llm.optimizer import LLMOptimizerConfig, LLMPromptOptimizer
from catalyst_nb.optim.approval import DECIDERS, ApprovalPending
from catalyst_nb.optim.candidate_pool import CandidatePool
from catalyst_nb.optim.candidate_sources import gather_candidates, projection_templates, variant_templates
from catalyst_nb.optim.catalyst_config import CatalystConfig, llm_settings, resolve_config
from catalyst_nb.optim.events import (AwaitingApproval, CandidatesScored, Decision, LLMCall, ProposalsScored, Restart,
                                     RoundEvent, Skipped, StageEnd)
from catalyst_nb.optim.gradient import GradientPromptOptimizer
from catalyst_nb.optim.probing import CURRENT, adopt_fork, run_forks
from catalyst_nb.optimizer_state import StateError, check_state, pack_state
from catalyst_nb.prompt_learner import LoadReport, PromptLearner
from catalyst_nb.scoring import TemplateScorer
from catalyst_nb.templates import check_template
from catalyst_nb.trajectory import StepRecord, Trajectory

__all__ = ["CatalystOptimizer", "Phase", "TRANSITIONS"]

log = logging.getLogger(__name__)

_STATE_VERSION = 2  # 2: the common layout of catalyst_nb.optimizer_state, typed events, phases "skip"/"awaiting"
_STATE_KEYS = ("preset", "gradient", "llm", "events", "pool", "round", "phase", "stage_start", "probe_spent",
               "round_proposals", "round_cands", "chosen", "awaiting", "probe_states")

Unit = StepRecord | RoundEvent


class Phase(str, Enum):
    """Where the catalyst is; :meth:`CatalystOptimizer.step` runs the phase's handler ``_do_<value>``."""

    STAGE = "stage"            # gradient steps until the stage's last step
    STAGE_END = "stage_end"    # score (and evaluate) the context
    CANDIDATES = "candidates"  # projections, variants and pool templates scored
    LLM = "llm"                # the LLM asked
    PROPOSALS = "proposals"    # its proposals scored
    SKIP = "skip"              # the LLM's reply had nothing usable: the round ends, recorded as skipped
    DECISION = "decision"      # the restart policy decides (or asks a person)
    AWAITING = "awaiting"      # a person decides: approve(), reject() or suggest()
    RESTART = "restart"        # the chosen template loaded
    DONE = "done"              # the last stage ended


#: Every move the catalyst makes; anything else is a bug (:meth:`CatalystOptimizer._move` refuses it).
TRANSITIONS: Mapping[Phase, frozenset[Phase]] = {
    Phase.STAGE: frozenset({Phase.STAGE_END}),
    Phase.STAGE_END: frozenset({Phase.CANDIDATES, Phase.STAGE, Phase.DONE}),  # STAGE: no LLM, no restarts (CoOp)
    Phase.CANDIDATES: frozenset({Phase.LLM, Phase.DECISION}),
    Phase.LLM: frozenset({Phase.PROPOSALS, Phase.DECISION, Phase.SKIP, Phase.STAGE}),  # STAGE: an LLM fault
    Phase.PROPOSALS: frozenset({Phase.DECISION}),
    Phase.SKIP: frozenset({Phase.STAGE}),
    Phase.DECISION: frozenset({Phase.AWAITING, Phase.RESTART, Phase.STAGE}),
    Phase.AWAITING: frozenset({Phase.RESTART, Phase.STAGE}),
    Phase.RESTART: frozenset({Phase.STAGE}),
    Phase.DONE: frozenset(),
}


class _NoLLM:
    """The client of a catalyst without an LLM: people may still suggest, nothing is ever sent."""

    kind = "chat"
    model = "none"

    def complete(self, request: Any) -> Any:
        raise LLMError("no LLM client was given to this run")


def _score_dict(result: Any) -> dict[str, float]:
    return {"accuracy": float(result.accuracy), "loss": float(result.loss)}


class CatalystOptimizer:
    """Gradient descent on the soft context, interleaved with an LLM that proposes restart templates.

    Args:
        learner: the prompt learner (its context is what both optimizers move).
        train: cached training features.
        scoring: the split candidates and proposals are scored on (never the reported split).
        client: the LLM client (any :class:`~catalyst_nb.llm.LLMClient`; a replaying client for exact
            reruns), or ``None``: no LLM round at all.  Without an LLM and with ``restart_from="any"`` the rounds
            restart from the best scored candidate (the projection-restart control); with the default
            ``restart_from="proposals"`` only the stages run, which is CoOp with per-stage evaluations.
        task: what the images are, for the meta-prompt (default: from the training split's name).
        evaluation: an optional split evaluated at each stage end, for plots (not used for decisions).
        preset: ``"default"`` or ``"paper"`` (see :mod:`catalyst_nb.optim.catalyst_config`).
        approval: ``"auto"`` or ``"human"``.
        gradient: :class:`GradientConfig` fields (and ``epochs``) for the gradient optimizer.
        llm_config: :class:`LLMOptimizerConfig` fields on top of the preset's.
        **config: :class:`CatalystConfig` fields on top of the preset's.
    """

    def __init__(
        self,
        learner: PromptLearner,
        train: FeatureSet,
        *,
        scoring: FeatureSet,
        client: LLMClient | None,
        task: TaskDescription | None = None,
        evaluation: FeatureSet | None = None,
        preset: str = "default",
        approval: str = "auto",
        gradient: Mapping[str, Any] | None = None,
        llm_config: Mapping[str, Any] | None = None,
        **config: Any,
    ) -> None:
        if scoring is None:
            raise ValueError("scoring split is required: candidates are scored on it (never on the reported split)")
        if evaluation is not None and evaluation.key == scoring.key:
            raise ValueError("the scoring split and the evaluation split are the same features; score on a held-out split")
        if scoring.key == train.key:
            log.warning("scoring on the training features: candidate scores will favour what the context fits")
        self.gradient = GradientPromptOptimizer(learner, train, **dict(gradient or {}))
        self.learner = learner
        steps_per_epoch = self.gradient.steps_per_epoch  # follows drop_last
        self.config: CatalystConfig = resolve_config(preset, {**config, "approval": approval}, steps_per_epoch=steps_per_epoch)
        self.preset = preset
        self.stage_steps = self.config.stage_length(self.gradient.config.total_steps)
        self.scorer = TemplateScorer(learner, scoring)
        self.scoring_key = scoring.key
        self.evaluation = evaluation.to(learner.ctx.device) if evaluation is not None else None
        task = task or describe_task(train.name, learner.classnames)  # the one rule the run layer uses too
        settings = llm_settings(preset, getattr(client, "kind", "chat"), dict(llm_config or {}))
        self.uses_llm = client is not None
        self.llm = LLMPromptOptimizer(client if client is not None else _NoLLM(), task=task,
                                      config=LLMOptimizerConfig.from_dict(settings))
        self.events: list[RoundEvent] = []
        self.pool = CandidatePool(self.config.pool_size)
        self._round = 0
        self._phase = Phase.STAGE
        self._stage_start = 0
        self._probe_spent = 0
        self._round_proposals: list[str] = []
        self._round_cands: dict[str, Candidate] = {}
        self._chosen: dict[str, Any] | None = None
        self._awaiting: AwaitingApproval | None = None
        self._probe_states: dict[str, dict[str, Any]] = {}
        self._event_hooks = HookRegistry()
        self._muted = False

    # ------------------------------------------------------------------------------------------ reading

    @property
    def trajectory(self) -> Trajectory:
        return self.gradient.trajectory

    @property
    def total_steps(self) -> int:
        return self.gradient.config.total_steps

    @property
    def step_count(self) -> int:
        """Gradient steps taken on the live context."""
        return self.gradient.step_count

    @property
    def budget_used(self) -> int:
        """Gradient steps charged to the budget: live steps plus discarded probe branches."""
        return self.gradient.step_count + self._probe_spent

    @property
    def round(self) -> int:
        """The 0-based round in progress (``rounds`` during the last stage)."""
        return self._round

    @property
    def phase(self) -> Phase:
        return self._phase

    @property
    def done(self) -> bool:
        return self._phase is Phase.DONE

    @property
    def awaiting(self) -> AwaitingApproval | None:
        """The restart waiting for a person (``approval="human"``), or ``None``."""
        return self._awaiting

    @property
    def client(self) -> LLMClient | None:
        """The LLM client, or ``None`` for a run without an LLM."""
        return self.llm.client if self.uses_llm else None

    def best(self) -> Candidate | None:
        """The best-scoring template of the whole run (pool: candidates and proposals)."""
        return self.pool.best()

    def evaluate(self, split: FeatureSet) -> EvalResult:
        """Accuracy and loss of the current soft prompt on ``split`` (e.g. the test split at the end)."""
        return self.gradient.evaluate(split)

    def preview(self, text: str) -> LoadReport:
        """What the context would hold if ``text`` were loaded now (padding, cuts); changes nothing."""
        return self.learner.fit_text(check_template(text))[1]

    def __repr__(self) -> str:
        return (f"CatalystOptimizer(preset={self.preset!r}, round={self._round}/{self.config.rounds}, "
                f"phase={self._phase.value!r}, steps={self.budget_used}/{self.total_steps}, "
                f"restart={self.config.restart!r}, approval={self.config.approval!r})")

    # ------------------------------------------------------------------------------------------ hooks

    def register_step_hook(self, hook: Callable[[Any, StepRecord], None]) -> RemovableHandle:
        """``hook(catalyst, record)`` after every live gradient step (not after probe steps)."""
        def relay(_opt: GradientPromptOptimizer, record: StepRecord) -> None:
            if not self._muted:
                hook(self, record)
        return self.gradient.register_step_hook(relay)

    def register_event_hook(self, hook: Callable[[Any, RoundEvent], None]) -> RemovableHandle:
        """``hook(catalyst, event)`` after every round event (a typed :class:`RoundEvent`, awaiting included)."""
        return self._event_hooks.register(hook)

    def _emit(self, kind: type[RoundEvent], started: float, *, round_index: int | None = None,
              **payload: Any) -> RoundEvent:
        event = kind(round=self._round if round_index is None else round_index, step=self.gradient.step_count,
                     seconds=time.perf_counter() - started, **payload)
        event = RoundEvent.from_dict(event.to_dict())  # the stored form: plain JSON data
        self.events.append(event)
        if isinstance(event, AwaitingApproval):
            self._awaiting = event  # observers of this event see the optimizer waiting on it
        self._event_hooks(self, event)
        return event

    def _move(self, to: Phase) -> None:
        if to not in TRANSITIONS[self._phase]:
            raise RuntimeError(f"catalyst cannot move from phase {self._phase.value!r} to {to.value!r}")
        self._phase = to

    # ------------------------------------------------------------------------------------------ stepping

    def _stage_target(self) -> int:
        """Live step count at which the current stage ends."""
        if self._round < self.config.rounds:
            return self._stage_start + self.stage_steps
        return self.total_steps - self._probe_spent

    def step(self) -> Unit:
        """Advance one unit: a gradient step or one phase of a round. Returns what happened: the step
        record or the one event the phase emitted."""
        if self._phase is Phase.AWAITING:
            raise ApprovalPending(self._round)
        if self._phase is Phase.DONE:
            raise RuntimeError("the run is finished (all rounds and the last stage are done)")
        handler = getattr(self, f"_do_{self._phase.value}")
        return handler()

    def _do_stage(self) -> Unit:
        if self.gradient.step_count >= self._stage_target():
            self._move(Phase.STAGE_END)
            return self._do_stage_end()
        self.gradient.stage = self._round
        return self.gradient.step()

    def _do_stage_end(self) -> RoundEvent:
        started = time.perf_counter()
        scoring = _score_dict(self.scorer.current())
        evaluation = _score_dict(self.gradient.evaluate(self.evaluation)) if self.evaluation is not None else None
        event = self._emit(StageEnd, started, stage=self._round, scoring=scoring, scoring_key=self.scoring_key,
                           eval=evaluation)
        if self._round >= self.config.rounds:
            self._move(Phase.DONE)
        elif self.uses_llm or self.config.restart_from == "any":
            self._move(Phase.CANDIDATES)
        else:  # no LLM and nothing else to restart from: the stages alone (CoOp)
            self._finish_round()
        return event

    def _do_candidates(self) -> RoundEvent:
        started = time.perf_counter()
        c = self.config
        variants = variant_templates(self.learner, k=c.variant_k,
                                     metric=self.gradient.config.projection_metric) if "variant" in c.sources else []
        projections = projection_templates(self.trajectory, self._round) if "projection" in c.sources else []
        if not projections and "projection" in c.sources:
            projections = [self.learner.to_text(metric=self.gradient.config.projection_metric).template]
        strip = self.learner.strip_fillers
        cands = gather_candidates(round_index=self._round, k=c.candidates, sources=c.sources,
                                  projections=[strip(t) for t in projections], variants=[strip(t) for t in variants],
                                  pool=list(self.pool))
        scored = self._score(cands)
        self._round_cands = {s.id: s for s in scored}
        for s in scored:
            self.pool.add(s)
        self._move(Phase.LLM if self.uses_llm else Phase.DECISION)
        return self._emit(CandidatesScored, started, candidates=tuple(scored))

    def _score(self, candidates: list[Candidate]) -> list[Candidate]:
        results = self.scorer.score([c.template for c in candidates])
        out = []
        for cand, res in zip(candidates, results):
            if not res.ok:
                out.append(replace(cand, status=Status.INVALID, note=res.error or ""))
                continue
            out.append(cand.with_score(res.loss, res.accuracy, raw_loss=res.raw_loss,  # type: ignore[arg-type]
                                       raw_accuracy=res.raw_accuracy, loaded=res.loaded))
        return out

    def _skip(self, reason: str, started: float) -> RoundEvent:
        self._finish_round()
        return self._emit(Skipped, started, round_index=self._round - 1, reason=reason)

    def _finish_round(self) -> None:
        self._move(Phase.STAGE)
        self._round += 1
        self._stage_start = self.gradient.step_count
        self._round_proposals, self._round_cands = [], {}
        self._chosen, self._awaiting, self._probe_states = None, None, {}

    def _do_llm(self) -> RoundEvent:
        started = time.perf_counter()
        try:
            new = self.llm.ask(self.pool.ranked(), round=self._round)
        except LLMError as exc:
            return self._skip(f"LLM error: {type(exc).__name__}: {exc}", started)
        record = self.llm.rounds[-1]
        self._round_proposals = [p.id for p in new]
        if new:
            self._move(Phase.PROPOSALS)
        else:  # nothing to score: decide among the candidates, or end the round (the next step says so)
            self._move(Phase.SKIP if self.config.restart_from == "proposals" else Phase.DECISION)
        return self._emit(LLMCall, started, meta_prompt=record.meta_prompt, replies=tuple(record.replies),
                          dropped=tuple({"line": r.line, "reason": r.reason} for r in record.rejected),
                          n_valid=len(new), n_calls=record.n_calls, latency_s=record.latency_s,
                          seeds=tuple(record.seeds))

    def _do_skip(self) -> RoundEvent:
        return self._skip("no usable template in the LLM's reply", time.perf_counter())

    def _do_proposals(self) -> RoundEvent:
        started = time.perf_counter()
        proposals = [self.llm.get(pid) for pid in self._round_proposals]
        scored = self._score(proposals)
        valid = {s.id: s for s in scored if s.scored}
        if valid:
            self.llm.tell(valid)
        for s in scored:
            if not s.scored:
                self.llm.mark(s.id, Status.INVALID, note=s.note)
        final = [self.llm.get(p.id) for p in proposals]
        for p in final:
            self.pool.add(p)
        self._move(Phase.DECISION)
        return self._emit(ProposalsScored, started, proposals=tuple(final))

    # ------------------------------------------------------------------------------------------ decision

    def _get(self, cid: str) -> Candidate:
        """A candidate of this round or a proposal, by id."""
        if cid in self._round_cands:
            return self._round_cands[cid]
        return self.llm.get(cid)

    def _choices(self) -> list[Candidate]:
        """What a restart may start from: this round's proposals, and its candidates with ``restart_from="any"``."""
        out = [self.llm.get(pid) for pid in self._round_proposals]
        if self.config.restart_from == "any":
            out += list(self._round_cands.values())
        return out

    def _recommend(self) -> tuple[str | None, dict[str, float] | None]:
        """The policy's choice among this round's choices (None: keep the context) and probe losses."""
        valid = [p for p in self._choices() if p.scored]
        policy = self.config.restart
        if policy == "none" or not valid:
            return None, None
        if policy == "first":
            return valid[0].id, None
        ranked = rank_candidates(valid)
        if policy == "best":
            return ranked[0].id, None
        return self._probe(ranked[: self.config.probe_top])

    def _probe(self, top: list[Candidate]) -> tuple[str | None, dict[str, float]]:
        """Run P steps from each proposal and from the current context on forks; lowest scoring loss wins.

        The forks run in :mod:`catalyst_nb.optim.probing` (as one batch of contexts where memory allows);
        the live optimizer ends exactly where it started, and the branches' end states are kept so the
        winner can be adopted (its P steps then become live steps) and the rest charged to the budget.
        """
        branches = {CURRENT: None, **{c.id: c.template for c in top}}
        self._muted = True
        try:
            forks = run_forks(self.gradient, self.scorer, branches, steps=self.config.probe_steps,
                              load_template=self._load_template)
        finally:
            self._muted = False
        self._probe_states, losses = forks.states, forks.losses
        best = min(losses, key=lambda b: (losses[b], b != CURRENT))
        return (None if best == CURRENT else best), losses

    def _do_decision(self) -> Unit:
        started = time.perf_counter()
        recommended, probe = self._recommend()
        if self.config.approval == "human":
            ranked = rank_candidates(self._choices())
            record = self.llm.rounds[-1] if self.uses_llm and self.llm.rounds else None
            self._move(Phase.AWAITING)
            return self._emit(
                AwaitingApproval, started, proposals=tuple(ranked), recommended=recommended,
                current=_score_dict(self.scorer.current()), meta_prompt=record.meta_prompt if record else "",
                replies=tuple(record.replies) if record else (),
                dropped=tuple((r.line, r.reason) for r in record.rejected) if record else (),
                policy=self.config.restart, probe=probe,
            )
        return self._decide(recommended, decider="auto", probe=probe, started=started)

    def _decide(self, chosen: str | None, *, decider: str, probe: Mapping[str, float] | None = None,
                edited_from: str | None = None, started: float | None = None) -> RoundEvent:
        started = time.perf_counter() if started is None else started
        template = self._get(chosen).template if chosen else None
        data = {"decider": decider, "policy": self.config.restart, "chosen": chosen, "template": template,
                "edited_from": edited_from, "probe": dict(probe) if probe else None}
        self._awaiting = None
        if chosen is None:
            # with probes, plain continuation already ran P steps on a fork: adopt them, charge the rest
            self._adopt("current" if "current" in self._probe_states else None)
            event = self._emit(Decision, started, **data)
            self._finish_round()
            return event
        self._chosen = {"id": chosen, "template": template}
        self._move(Phase.RESTART)
        return self._emit(Decision, started, **data)

    def _adopt(self, branch: str | None) -> None:
        """Make a probe branch the live state (its P steps become live steps, replayed to observers);
        the steps of the other branches are charged to the budget."""
        if branch is not None:
            adopt_fork(self.gradient, self._probe_states[branch])
        P = self.config.probe_steps
        self._probe_spent += P * sum(1 for b in self._probe_states if b != branch)
        self._probe_states = {}

    # ------------------------------------------------------------------------------------------ people

    def approve(self, candidate_id: str, text: str | None = None, *, decider: str = "human") -> RoundEvent:
        """Restart from proposal ``candidate_id`` (optionally edited to ``text``, which is re-scored).

        ``decider`` is recorded in the decision event: who decided (``human`` here, ``cli``, ``notebook``
        or ``timeout`` when the decision came through a run folder).
        """
        pending = self._require_awaiting(decider)
        ids = [c.id for c in pending.proposals]
        if candidate_id not in ids:
            raise KeyError(f"no proposal {candidate_id!r} in round {pending.round}; choose one of {ids}")
        if text is not None and check_template(text) != self._get(candidate_id).template:
            edited = self._human_candidate(text, note=f"edited from {candidate_id}")
            return self._decide(edited.id, decider=decider, edited_from=candidate_id)
        return self._decide(candidate_id, decider=decider, probe=pending.probe)

    def reject(self, *, decider: str = "human") -> RoundEvent:
        """Keep the current context; the next stage continues from it."""
        pending = self._require_awaiting(decider)
        return self._decide(None, decider=decider, probe=pending.probe)

    def suggest(self, text: str, *, decider: str = "human") -> RoundEvent:
        """Restart from a person's own template (scored first, recorded as a human candidate)."""
        self._require_awaiting(decider)
        cand = self._human_candidate(text, note="suggested at approval")
        return self._decide(cand.id, decider=decider)

    def _require_awaiting(self, decider: str) -> AwaitingApproval:
        if decider not in DECIDERS:
            raise ValueError(f"decider={decider!r} is not one of {DECIDERS}")
        if self._awaiting is None:
            raise RuntimeError("no restart is waiting for approval (use approval='human'; see .awaiting)")
        return self._awaiting

    def _human_candidate(self, text: str, *, note: str) -> Candidate:
        text = check_template(text)
        _, report = self.learner.fit_text(text)
        if report.dropped:
            raise ValueError(
                f"{text!r} is longer than the context (n_ctx={self.learner.n_ctx}): {list(report.dropped)} would "
                "be cut; shorten it or use a learner with more context slots"
            )
        cand = self.llm.add_template(text, note=note, round=self._round)
        (scored,) = self._score([cand])
        if not scored.scored:
            self.llm.mark(cand.id, Status.INVALID, note=scored.note)
            raise ValueError(f"{text!r} cannot be loaded into the context: {scored.note}")
        self.llm.tell({cand.id: scored})
        cand = self.llm.get(cand.id)
        self._round_proposals.append(cand.id)
        self.pool.add(cand)
        return cand

    # ------------------------------------------------------------------------------------------ restart

    def _load_template(self, template: str) -> LoadReport:
        report = self.gradient.load_text(template, reset_momentum=self.config.momentum == "reset")
        if self.config.schedule == "rewarm":
            self.gradient.rewarm()
        return report

    def _do_restart(self) -> RoundEvent:
        started = time.perf_counter()
        assert self._chosen is not None
        cid, template = self._chosen["id"], self._chosen["template"]
        before = _score_dict(self.scorer.current())
        adopted = cid if cid in self._probe_states else None
        slot_ids, report = self.learner.fit_text(template)
        if adopted is None:  # an adopted probe branch already ran P steps from this template
            self._load_template(template)
        self._adopt(adopted)
        if cid in self._round_cands:
            chosen = replace(self._round_cands[cid], status=Status.CHOSEN)
            self._round_cands[cid] = chosen
        else:
            chosen = self.llm.mark(cid, Status.CHOSEN)
        self.pool.replace(chosen)
        data = {"id": cid, "template": template, "loaded": self.learner.loaded_template(slot_ids),
                "report": {"tokens": list(report.tokens), "n_padded": report.n_padded, "dropped": list(report.dropped),
                           "ignored_text": report.ignored_text},
                "scoring_before": before, "scoring_after": _score_dict(self.scorer.current()),
                "probe_steps_adopted": self.config.probe_steps if adopted else 0}
        event = self._emit(Restart, started, **data)
        self._finish_round()
        return event

    # ------------------------------------------------------------------------------------------ loops

    def run(self, *, progress: bool = True) -> list[Unit]:
        """Everything up to the end, or until a restart needs approval (then ``.awaiting`` is set)."""
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=self.total_steps, initial=self.budget_used, desc="catalyst", unit="step", leave=False)
        out: list[Unit] = []
        try:
            while not self.done and self._phase is not Phase.AWAITING:
                unit = self.step()
                out.append(unit)
                if bar is not None:
                    bar.n = self.budget_used
                    if isinstance(unit, RoundEvent):
                        bar.set_postfix_str(f"round {self._round}: {unit.kind}", refresh=False)
                    bar.refresh() if isinstance(unit, RoundEvent) else bar.update(0)
        finally:
            if bar is not None:
                bar.close()
        return out

    # ------------------------------------------------------------------------------------------ state

    def _identity(self) -> dict[str, Any]:
        return {"scoring_features": self.scoring_key}

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue bit-identically (no client, no key: only the LLM's record)."""
        return pack_state(optimizer="CatalystOptimizer", version=_STATE_VERSION, config=self.config.to_dict(),
                          identity=self._identity(), state={
                              "preset": self.preset,
                              "gradient": self.gradient.state_dict(),
                              "llm": self.llm.state_dict(),
                              "events": [e.to_dict() for e in self.events],
                              "pool": self.pool.to_dicts(),
                              "round": self._round,
                              "phase": self._phase.value,
                              "stage_start": self._stage_start,
                              "probe_spent": self._probe_spent,
                              "round_proposals": list(self._round_proposals),
                              "round_cands": [c.to_dict() for c in self._round_cands.values()],
                              "chosen": dict(self._chosen) if self._chosen else None,
                              "awaiting": self._awaiting.to_dict() if self._awaiting else None,
                              "probe_states": dict(self._probe_states),
                          })

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a :meth:`state_dict`. Everything (both inner optimizers' states too) is checked before
        anything changes."""
        entries = check_state(state, optimizer="CatalystOptimizer", version=_STATE_VERSION, keys=_STATE_KEYS,
                              config=self.config.to_dict(), identity=self._identity())
        try:
            phase = Phase(entries["phase"])
            events = [RoundEvent.from_dict(e) for e in entries["events"]]
            pool = CandidatePool.from_dicts(self.config.pool_size, entries["pool"])
            round_cands = [Candidate.from_dict(c) for c in entries["round_cands"]]
            awaiting = AwaitingApproval.from_dict(entries["awaiting"]) if entries["awaiting"] else None
            numbers = {k: int(entries[k]) for k in ("round", "stage_start", "probe_spent")}
        except (KeyError, TypeError, ValueError) as exc:
            raise StateError(f"CatalystOptimizer state is damaged: {exc}") from None
        if (phase is Phase.AWAITING) != (awaiting is not None):
            raise StateError(f"CatalystOptimizer state is damaged: phase {phase.value!r} with awaiting={awaiting!r}")
        gradient = self.gradient._validate_state(entries["gradient"])  # noqa: SLF001 - checked before anything changes
        llm = self.llm._validate_state(entries["llm"])  # noqa: SLF001
        self.gradient._apply_state(gradient)  # noqa: SLF001
        self.llm._apply_state(llm)  # noqa: SLF001
        self.events = events
        self.pool = pool
        self._round = numbers["round"]
        self._phase = phase
        self._stage_start = numbers["stage_start"]
        self._probe_spent = numbers["probe_spent"]
        self._round_proposals = list(entries["round_proposals"])
        self._round_cands = {c.id: c for c in round_cands}
        self._chosen = dict(entries["chosen"]) if entries["chosen"] else None
        self._awaiting = awaiting
        self._probe_states = dict(entries["probe_states"])
