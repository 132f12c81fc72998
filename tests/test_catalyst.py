"""CatalystOptimizer: phases, restart policies, approval, LLM faults, state round trips, bad input."""
from __future__ import annotations

import copy
import dataclasses

import pytest
import torch

from catalyst_nb.candidates import Source, Status
from catalyst_nb.llm import (
    Budget,
    BudgetExceeded,
    Cassette,
    LLMConnectionError,
    LLMTimeoutError,
    MeteredClient,
    RecordingClient,
    ReplayingClient,
    ScriptedClient,
)
from catalyst_nb.optim import ApprovalPending, AwaitingApproval, CatalystOptimizer, RoundEvent
from catalyst_nb.prompt_learner import PromptLearner
from catalyst_nb.trajectory import StepRecord

REPLY = "a photo of the {}.\na blurry photo of a {}.\na {} on black"
REPLY2 = "a close-up of a {}.\na {} in the dark\na grey photo of a {}"
REPLY3 = "a small {}\na {} for sale\na bright photo of a {}"


@pytest.fixture(scope="module")
def splits(tiny_splits):
    return tiny_splits


def make(clip, splits, replies, *, kind="chat", evaluation=False, **kw):
    train_f, score_f, test_f = splits
    learner = PromptLearner(clip, train_f.classnames, n_ctx=4, ctx_init="a photo of a", seed=0)
    client = replies if hasattr(replies, "complete") else ScriptedClient(replies, kind=kind)
    kw.setdefault("gradient", dict(total_steps=16, warmup_steps=1, batch_size=8, lr=0.5, seed=1))
    kw.setdefault("rounds", 2)
    opt = CatalystOptimizer(learner, train_f, scoring=score_f, client=client,
                            evaluation=test_f if evaluation else None, **kw)
    return opt, client


def kinds(units):
    return [u.kind if isinstance(u, RoundEvent) else type(u).__name__ for u in units]


def test_run_walks_stages_and_rounds_in_order_and_spends_the_budget(tiny_native, splits):
    opt, _ = make(tiny_native, splits, [REPLY, REPLY2], evaluation=True)
    units = opt.run(progress=False)
    assert opt.done and opt.step_count == 16 and opt.budget_used == 16
    events = [u for u in units if isinstance(u, RoundEvent)]
    assert [e.kind for e in events] == ["stage_end", "candidates", "llm", "proposals", "decision", "restart"] * 2 + ["stage_end"]
    assert [e.step for e in events if e.kind == "stage_end"] == [5, 10, 16]  # 16 // 3 steps per stage
    stage_ends = [e for e in events if e.kind == "stage_end"]
    assert all(0 <= e.data["scoring"]["accuracy"] <= 1 and e.data["eval"] is not None for e in stage_ends)
    steps = [u for u in units if isinstance(u, StepRecord)]
    assert [s.stage for s in steps] == [0] * 5 + [1] * 5 + [2] * 6
    assert [s.step for s in steps] == list(range(16))


def test_llm_events_record_each_calls_hashed_seed(tiny_native, splits):
    from catalyst_nb.llm.sampling_seed import sampling_seed

    opt, client = make(tiny_native, splits, [REPLY, REPLY2], llm_config=dict(seed=4))
    opt.run(progress=False)
    llm_events = [e for e in opt.events if e.kind == "llm"]
    assert [e.data["seeds"] for e in llm_events] == [[sampling_seed(4, 0, 0)], [sampling_seed(4, 1, 0)]]
    assert [r.seed for r in client.requests] == [s for e in llm_events for s in e.data["seeds"]]


def test_best_policy_restarts_from_the_best_scored_proposal_as_loaded(tiny_native, splits):
    opt, _ = make(tiny_native, splits, [REPLY, REPLY], rounds=1)
    opt.run(progress=False)
    proposals = [e for e in opt.events if e.kind == "proposals"][0].data["proposals"]
    scored = [p for p in proposals if p["loss"] is not None]
    best = min(scored, key=lambda p: (p["loss"], -p["accuracy"]))
    decision = [e for e in opt.events if e.kind == "decision"][0]
    assert decision.data["chosen"] == best["id"] and decision.data["decider"] == "auto"
    restart = [e for e in opt.events if e.kind == "restart"][0]
    assert restart.data["template"] == best["template"]
    # the restart score is the as-loaded score of the chosen proposal
    assert restart.data["scoring_after"]["loss"] == pytest.approx(best["loss"], abs=1e-5)
    assert opt.llm.get(best["id"]).status == Status.CHOSEN


def test_first_policy_takes_the_first_valid_proposal_even_if_worse(tiny_native, splits):
    opt, _ = make(tiny_native, splits, ["?? not one\n" + REPLY], rounds=1, restart="first")
    while not any(e.kind == "decision" for e in opt.events):
        opt.step()
    decision = [e for e in opt.events if e.kind == "decision"][0]
    assert decision.data["chosen"] == "r0-0" and decision.data["template"] == "a photo of the {}."


def test_none_policy_never_restarts(tiny_native, splits):
    opt, _ = make(tiny_native, splits, [REPLY, REPLY2], restart="none")
    opt.run(progress=False)
    assert not any(e.kind == "restart" for e in opt.events)
    assert [e.data["chosen"] for e in opt.events if e.kind == "decision"] == [None, None]


def test_probe_never_leaves_the_run_worse_than_plain_continuation(tiny_native, splits):
    opt, _ = make(tiny_native, splits, [REPLY], rounds=1, restart="probe", probe_steps=2, probe_top=2)
    while opt.phase != "decision":
        opt.step()
    # plain continuation, computed on a copy of the state: P steps from the current context
    saved = copy.deepcopy(opt.gradient.state_dict())
    for _ in range(2):
        opt.gradient.step()
    continuation = opt.scorer.current().loss
    opt.gradient.load_state_dict(saved)
    event = opt.step()
    assert event.kind == "decision" and set(event.data["probe"]) >= {"current"}
    assert min(event.data["probe"].values()) <= continuation + 1e-6
    assert event.data["probe"]["current"] == pytest.approx(continuation, abs=1e-6)
    if event.data["chosen"] is not None:
        opt.step()  # restart: adopts the winning branch
    assert opt.scorer.current().loss <= continuation + 1e-6
    opt.run(progress=False)
    assert opt.budget_used == opt.total_steps  # probe steps are charged to the budget


def test_human_approval_waits_and_each_answer_is_recorded(tiny_native, splits):
    opt, _ = make(tiny_native, splits, [REPLY, REPLY2, REPLY3], rounds=3, approval="human",
                  gradient=dict(total_steps=20, warmup_steps=1, batch_size=8, lr=0.5, seed=1))
    out = opt.run(progress=False)
    pending = out[-1]
    assert isinstance(pending, AwaitingApproval) and opt.awaiting is pending
    assert [p.loss for p in pending.proposals] == sorted(p.loss for p in pending.proposals)
    assert pending.recommended == pending.proposals[0].id and pending.rank(pending.recommended) == 1
    assert "a photo of a" in pending.meta_prompt and pending.replies == (REPLY,)
    with pytest.raises(ApprovalPending, match=r"approve\(.*reject\(\).*suggest\("):
        opt.step()
    with pytest.raises(KeyError, match="nope"):
        opt.approve("nope")
    with pytest.raises(ValueError, match="at most once"):
        opt.approve(pending.proposals[0].id, text="a {} and a {}")
    with pytest.raises(ValueError, match="non-empty"):
        opt.approve(pending.proposals[0].id, text="  ")
    with pytest.raises(ValueError, match="would be cut"):
        opt.approve(pending.proposals[0].id, text="a very long and detailed studio photograph of a {}")
    assert opt.awaiting is pending  # failed answers change nothing

    # round 0: approve an edited text; it is re-scored and recorded as a person's candidate
    event = opt.approve(pending.proposals[-1].id, text="a dark photo {}.")
    assert event.kind == "decision" and event.data["decider"] == "human"
    assert event.data["edited_from"] == pending.proposals[-1].id
    edited = opt.llm.get(event.data["chosen"])
    assert edited.source == Source.HUMAN and edited.scored
    restart = opt.step()
    assert restart.kind == "restart" and restart.data["template"] == "a dark photo {}."
    expected = opt.learner.context_from_ids(opt.learner.fit_text("a dark photo {}.")[0])
    assert torch.equal(opt.learner.ctx.detach(), expected)

    # round 1: reject keeps the context
    opt.run(progress=False)
    ctx = opt.learner.ctx.detach().clone()
    event = opt.reject()
    assert event.data["chosen"] is None and opt.phase == "stage" and torch.equal(opt.learner.ctx.detach(), ctx)

    # round 2: suggest a text of one's own
    opt.run(progress=False)
    event = opt.suggest("a {} on a white table")
    assert opt.llm.get(event.data["chosen"]).source == Source.HUMAN
    assert opt.step().data["template"] == "a {} on a white table"
    opt.run(progress=False)
    assert opt.done
    with pytest.raises(RuntimeError, match="no restart is waiting"):
        opt.reject()


@pytest.mark.parametrize(
    "fault, reason",
    [
        (LLMConnectionError("connection refused"), "LLMConnectionError"),
        (LLMTimeoutError("timed out"), "LLMTimeoutError"),
        ("Sure! Here are some ideas:", "no usable template"),
        ("budget", "BudgetExceeded"),
    ],
)
def test_llm_faults_skip_the_round_and_training_goes_on(tiny_native, splits, fault, reason):
    if fault == "budget":
        client = MeteredClient(ScriptedClient([REPLY, REPLY2]), budget=Budget(max_calls=1))
        opt, _ = make(tiny_native, splits, client)
        opt.run(progress=False)
        skipped = [e for e in opt.events if e.kind == "skipped"]
        assert len(skipped) == 1 and skipped[0].round == 1 and reason in skipped[0].data["reason"]
    else:
        opt, _ = make(tiny_native, splits, [fault, REPLY2])
        opt.run(progress=False)
        skipped = [e for e in opt.events if e.kind == "skipped"]
        assert len(skipped) == 1 and skipped[0].round == 0 and reason in skipped[0].data["reason"]
        assert [e.kind for e in opt.events].count("restart") == 1  # round 1 still ran
    assert opt.done and opt.step_count == 16


def _run_to_end(opt):
    while not opt.done:
        if opt.awaiting is not None:
            opt.approve(opt.awaiting.recommended)
            continue
        opt.step()


@pytest.mark.parametrize("stop_after", ["candidates", "llm", "proposals", "awaiting", "restart"])
def test_state_round_trip_mid_round_continues_bit_identically(tiny_native, splits, stop_after):
    cassette = Cassette()
    ref, _ = make(tiny_native, splits, RecordingClient(ScriptedClient([REPLY, REPLY2]), cassette), approval="human")
    _run_to_end(ref)

    part, _ = make(tiny_native, splits, ReplayingClient(cassette), approval="human")
    while True:
        if part.awaiting is not None:
            if stop_after == "awaiting":
                break
            part.approve(part.awaiting.recommended)
            continue
        unit = part.step()
        if isinstance(unit, RoundEvent) and unit.kind == stop_after:
            break
    state = copy.deepcopy(part.state_dict())
    resumed, _ = make(tiny_native, splits, ReplayingClient(cassette), approval="human")
    resumed.load_state_dict(state)
    assert (resumed.awaiting is not None) == (stop_after == "awaiting")
    _run_to_end(resumed)
    assert torch.equal(resumed.learner.ctx.detach(), ref.learner.ctx.detach())
    strip = lambda es: [(e.kind, e.round, e.step, e.data) for e in es]  # noqa: E731
    assert strip(resumed.events) == strip(ref.events)
    assert resumed.trajectory.to_dicts()[-1]["loss"] == ref.trajectory.to_dicts()[-1]["loss"]


def test_a_bad_state_changes_nothing(tiny_native, splits):
    opt, _ = make(tiny_native, splits, [REPLY, REPLY])
    for _ in range(8):
        opt.step()
    before = copy.deepcopy(opt.state_dict())
    bad = copy.deepcopy(before)
    bad["state"]["gradient"]["state"]["ctx"] = torch.zeros(3, 3)
    with pytest.raises(ValueError, match="shape"):
        opt.load_state_dict(bad)
    other = copy.deepcopy(before)
    other["config"]["candidates"] = 9
    with pytest.raises(ValueError, match="candidates"):
        opt.load_state_dict(other)
    with pytest.raises(ValueError, match="version"):
        opt.load_state_dict({"version": 99})
    after, before = opt.state_dict()["state"], before["state"]
    assert torch.equal(after["gradient"]["state"]["ctx"], before["gradient"]["state"]["ctx"])
    assert after["llm"] == before["llm"]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(candidatez=3), "candidatez"),
        (dict(candidates=0), "candidates=0"),
        (dict(rounds=-1), "rounds=-1"),
        (dict(stage_steps=8), "leaves no step"),
        (dict(probe_steps=2), "probe"),
        (dict(restart="probe", probe_steps=2), "probe_top"),
        (dict(restart="sometimes"), "restart='sometimes'"),
        (dict(preset="fancy"), "unknown preset"),
        (dict(llm_config=dict(temprature=1.0)), "temprature"),
    ],
)
def test_bad_settings_are_refused_with_the_key_named(tiny_native, splits, kwargs, match):
    with pytest.raises(ValueError, match=match):
        make(tiny_native, splits, [], **kwargs)


def test_a_scoring_split_with_other_classes_is_refused(tiny_native, splits):
    train_f, score_f, _ = splits
    learner = PromptLearner(tiny_native, train_f.classnames, n_ctx=4, seed=0)
    other = dataclasses.replace(score_f, classnames=tuple(reversed(score_f.classnames)), key="other")
    with pytest.raises(ValueError, match="scoring split"):
        CatalystOptimizer(learner, train_f, scoring=other, client=ScriptedClient([]))


def test_hooks_see_live_steps_and_round_events(tiny_native, splits):
    opt, _ = make(tiny_native, splits, [REPLY], rounds=1, restart="probe", probe_steps=1, probe_top=1)
    steps, events = [], []
    opt.register_step_hook(lambda o, r: steps.append(r.step))
    h = opt.register_event_hook(lambda o, e: events.append(e.kind))
    opt.run(progress=False)
    assert steps == sorted(set(steps)) and steps[-1] == opt.step_count - 1  # probe forks are not reported twice
    assert events[:2] == ["stage_end", "candidates"] and events[-1] == "stage_end"
    h.remove()


def test_preview_shows_padding_and_cuts_without_changing_the_context(tiny_native, splits):
    opt, _ = make(tiny_native, splits, [])
    ctx = opt.learner.ctx.detach().clone()
    report = opt.preview("a {}")
    assert report.n_padded == 3
    report = opt.preview("one two three four five six {}")
    assert [t.replace("</w>", "") for t in report.dropped] == ["one", "two"]
    assert torch.equal(opt.learner.ctx.detach(), ctx)


def test_without_an_llm_the_stages_alone_are_coop(tiny_native, splits):
    opt, _ = make(tiny_native, splits, [REPLY])
    opt_coop, _ = make(tiny_native, splits, [])
    opt_coop = CatalystOptimizer(opt_coop.learner, splits[0], scoring=splits[1], client=None, rounds=2,
                                 gradient=dict(total_steps=16, warmup_steps=1, batch_size=8, lr=0.5, seed=1))
    opt_coop.run(progress=False)
    assert [e.kind for e in opt_coop.events] == ["stage_end"] * 3
    plain = make(tiny_native, splits, [])[0].gradient
    plain.run(16, progress=False)
    assert torch.equal(plain.learner.ctx.detach(), opt_coop.learner.ctx.detach())  # same as plain CoOp


def test_projection_restart_control_restarts_from_the_best_candidate_without_an_llm(tiny_native, splits):
    base, _ = make(tiny_native, splits, [])
    opt = CatalystOptimizer(base.learner, splits[0], scoring=splits[1], client=None, rounds=2, restart_from="any",
                            gradient=dict(total_steps=16, warmup_steps=1, batch_size=8, lr=0.5, seed=1))
    opt.run(progress=False)
    kinds_ = [e.kind for e in opt.events]
    assert "llm" not in kinds_ and kinds_.count("candidates") == 2
    for cand_event, decision in zip([e for e in opt.events if e.kind == "candidates"],
                                    [e for e in opt.events if e.kind == "decision"]):
        scored = [c for c in cand_event.data["candidates"] if c["loss"] is not None]
        best = min(scored, key=lambda c: (c["loss"], -c["accuracy"]))
        assert decision.data["chosen"] == best["id"]


@pytest.mark.parametrize("momentum, schedule", [("keep", "continue"), ("reset", "rewarm")])
def test_restart_keeps_or_resets_momentum_and_schedule(tiny_native, splits, momentum, schedule):
    opt, _ = make(tiny_native, splits, [REPLY], rounds=1, momentum=momentum, schedule=schedule)
    while not any(e.kind == "restart" for e in opt.events):
        opt.step()
    state = opt.gradient.optimizer.state.get(opt.learner.ctx, {})
    if momentum == "keep":
        assert "momentum_buffer" in state and opt.gradient.schedule_step == opt.step_count
    else:
        assert not state and opt.gradient.schedule_step == 0 and opt.step_count == 8
