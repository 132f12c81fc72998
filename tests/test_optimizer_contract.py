"""One contract for the three optimizers: one state layout checked by one helper, hooks named after the
record they pass, distinct verbs for a proposal's status and for a restart decision."""
from __future__ import annotations

import copy
import dataclasses
import subprocess
import sys

import pytest

from catalyst_nb.llm import FASHION_MNIST_TASK, ScriptedClient
from catalyst_nb.llm.optimizer import LLMPromptOptimizer, LLMRound
from catalyst_nb.optim import CatalystOptimizer, GradientPromptOptimizer
from catalyst_nb.optim.events import RoundEvent
from catalyst_nb.optimizer_state import LAYOUT, StateError
from catalyst_nb.prompt_learner import PromptLearner
from catalyst_nb.trajectory import StepRecord

REPLY = "a photo of the {}.\na blurry photo of a {}."


@pytest.fixture()
def three(tiny_native, tiny_splits):
    train_f, score_f, _ = tiny_splits
    gradient = GradientPromptOptimizer(PromptLearner(tiny_native, train_f.classnames, n_ctx=4, seed=0), train_f,
                                       total_steps=8, batch_size=8)
    llm = LLMPromptOptimizer(ScriptedClient([REPLY]), task=FASHION_MNIST_TASK)
    catalyst = CatalystOptimizer(PromptLearner(tiny_native, train_f.classnames, n_ctx=4, seed=0), train_f,
                                 scoring=score_f, client=ScriptedClient([REPLY]), rounds=1,
                                 gradient=dict(total_steps=8, warmup_steps=1, batch_size=8))
    return {"GradientPromptOptimizer": gradient, "LLMPromptOptimizer": llm, "CatalystOptimizer": catalyst}


def test_every_state_has_the_one_layout(three):
    for name, opt in three.items():
        state = opt.state_dict()
        assert tuple(state) == LAYOUT and state["identity"]["optimizer"] == name
        assert isinstance(state["version"], int) and isinstance(state["config"], dict)


@pytest.mark.parametrize("source", ["GradientPromptOptimizer", "LLMPromptOptimizer", "CatalystOptimizer"])
@pytest.mark.parametrize("target", ["GradientPromptOptimizer", "LLMPromptOptimizer", "CatalystOptimizer"])
def test_each_state_loads_into_its_own_optimizer_only(three, source, target):
    state = copy.deepcopy(three[source].state_dict())
    before = copy.deepcopy(three[target].state_dict())
    if source == target:
        three[target].load_state_dict(state)
        return
    with pytest.raises(StateError, match=f"^this is a {source} state; a {target} cannot load it$"):
        three[target].load_state_dict(state)
    after = three[target].state_dict()
    assert after["state"].keys() == before["state"].keys() and after["version"] == before["version"]


@pytest.mark.parametrize("name", ["GradientPromptOptimizer", "LLMPromptOptimizer", "CatalystOptimizer"])
def test_a_missing_or_unknown_entry_is_refused_by_name(three, name):
    state = copy.deepcopy(three[name].state_dict())
    first = next(iter(state["state"]))
    del state["state"][first]
    with pytest.raises(StateError, match=rf"missing \['{first}'\]"):
        three[name].load_state_dict(state)
    state = copy.deepcopy(three[name].state_dict())
    state["state"]["renamed"] = 1
    with pytest.raises(StateError, match=r"unknown entries \['renamed'\]"):
        three[name].load_state_dict(state)


def test_hooks_are_named_after_the_record_they_pass(three):
    seen = []
    three["GradientPromptOptimizer"].register_step_hook(lambda o, r: seen.append(type(r)))
    three["LLMPromptOptimizer"].register_llm_round_hook(lambda o, r: seen.append(type(r)))
    three["CatalystOptimizer"].register_event_hook(lambda o, e: seen.append(RoundEvent if isinstance(e, RoundEvent)
                                                                             else type(e)))
    three["GradientPromptOptimizer"].step()
    three["LLMPromptOptimizer"].ask([])
    while not three["CatalystOptimizer"].done:
        three["CatalystOptimizer"].step()
    assert seen[:2] == [StepRecord, LLMRound] and set(seen[2:]) == {RoundEvent}
    for name, opt in three.items():
        assert not hasattr(opt, "register_round_hook"), name


def test_status_verbs_and_decision_verbs_have_distinct_names(three):
    llm, catalyst = three["LLMPromptOptimizer"], three["CatalystOptimizer"]
    for verb in ("approve", "reject", "suggest"):
        assert not hasattr(llm, verb) and callable(getattr(catalyst, verb))
    for verb in ("mark_approved", "mark_rejected", "add_template"):
        assert callable(getattr(llm, verb)) and not hasattr(catalyst, verb)
    assert not hasattr(catalyst, "run_stage") and not hasattr(catalyst, "run_round")


def test_catalyst_evaluates_and_names_its_client(three, tiny_splits):
    catalyst = three["CatalystOptimizer"]
    assert isinstance(catalyst.client, ScriptedClient) and catalyst.llm.client is catalyst.client
    result = catalyst.evaluate(tiny_splits[2])
    assert result.accuracy == catalyst.gradient.evaluate(tiny_splits[2]).accuracy


def test_the_state_helper_and_the_llm_layer_import_without_torch():
    code = ("import sys; import catalyst_nb.optimizer_state, catalyst_nb.llm, catalyst_nb.optim.events; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_every_phase_has_a_handler_and_a_row_in_the_transition_table():
    from catalyst_nb.optim.catalyst import TRANSITIONS, Phase

    assert set(TRANSITIONS) == set(Phase)
    for phase in Phase:
        waits = phase in (Phase.AWAITING, Phase.DONE)  # step() refuses these: a person or nothing moves on
        assert hasattr(CatalystOptimizer, f"_do_{phase.value}") != waits, phase
    reachable, todo = {Phase.STAGE}, [Phase.STAGE]
    while todo:
        for nxt in TRANSITIONS[todo.pop()] - reachable:
            reachable.add(nxt)
            todo.append(nxt)
    assert reachable == set(Phase)


def test_an_illegal_move_is_refused(three):
    from catalyst_nb.optim.catalyst import Phase

    catalyst = three["CatalystOptimizer"]
    with pytest.raises(RuntimeError, match="from phase 'stage' to 'restart'"):
        catalyst._move(Phase.RESTART)
    assert catalyst.phase is Phase.STAGE


def test_the_pool_keeps_the_best_scored_and_replaces_by_id():
    from catalyst_nb.candidates import Candidate, Source, Status
    from catalyst_nb.optim.candidate_pool import CandidatePool

    def cand(cid, loss, acc=0.5):
        return Candidate(id=cid, template=f"a {cid} {{}}", source=Source.LLM).with_score(loss, acc)

    pool = CandidatePool(2)
    pool.add(Candidate(id="x", template="a {}", source=Source.LLM))  # unscored: ignored
    for c in (cand("a", 1.0), cand("b", 0.5), cand("c", 2.0), cand("d", 0.5, acc=0.9)):
        pool.add(c)
    assert [c.id for c in pool.ranked()] == ["d", "b"] and len(pool) == 2 and "a" not in pool
    pool.replace(dataclasses.replace(cand("b", 0.5), status=Status.CHOSEN))
    assert pool["b"].status is Status.CHOSEN and pool.best().id == "d"
    assert [c.id for c in CandidatePool.from_dicts(2, pool.to_dicts())] == [c.id for c in pool]
    with pytest.raises(ValueError, match="size=0"):
        CandidatePool(0)
