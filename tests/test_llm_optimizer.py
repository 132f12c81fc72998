"""LLMPromptOptimizer: ask/tell with scripted clients, people's actions, faults and state."""

from __future__ import annotations

import copy
import json

import pytest

from catalyst_nb.llm import (
    Budget,
    BudgetExceeded,
    LLMAuthError,
    LLMConnectionError,
    LLMRateLimitError,
    LLMResponseError,
    LLMServerError,
    LLMTimeoutError,
    MeteredClient,
    OpenAIChatClient,
    ReplayMiss,
    ScoredTemplate,
    ScriptedClient,
    TaskDescription,
)
from catalyst_nb.candidates import Candidate
from catalyst_nb.llm.optimizer import LLMPromptOptimizer
from catalyst_nb.llm.client import request_key
from catalyst_nb.llm.sampling_seed import sampling_seed
from catalyst_nb.optimizer_state import StateError
from llm_fixtures.fake_openai import FakeOpenAIServer, Reply, chat_body

SECRET = "sk-test-SECRET-optimizer-7"
FMNIST = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
TASK = TaskDescription("Fashion-MNIST", "grayscale photos of clothing items", FMNIST)
HISTORY = [
    ScoredTemplate("a photo of a {}.", 1.12, 0.62, source="init"),
    ScoredTemplate("a blurry photo of a {}.", 1.31, 0.55, source="grad"),
]
REPLY = "Here are new templates:\n1. a studio photo of a {}.\n2. a close-up of a sneaker\n3. a photo of a {}.\n4. a {} on black"


def make(replies, kind="chat", **kw) -> tuple[LLMPromptOptimizer, ScriptedClient]:
    client = ScriptedClient(replies, kind=kind)
    return LLMPromptOptimizer(client, task=TASK, **kw), client


def test_ask_returns_parsed_pending_proposals_and_records_the_round():
    opt, client = make([REPLY])
    new = opt.ask(HISTORY)
    assert [p.template for p in new] == ["a studio photo of a {}.", "a close-up of a {}", "a {} on black"]
    assert [p.id for p in new] == ["r0-0", "r0-1", "r0-2"]
    assert all(p.status == "pending" and p.source == "llm" and p.round == 0 and p.raw_reply == REPLY for p in new)
    (rnd,) = opt.rounds
    assert rnd.replies == (REPLY,) and rnd.proposal_ids == ("r0-0", "r0-1", "r0-2")
    assert sorted(r.code for r in rnd.rejected) == ["prose", "tried"]
    assert any("Sneaker" in n for n in rnd.notes)
    assert rnd.history_size == 2 and not rnd.empty
    # the request really contains the history, worst first, as chat messages
    sent = client.requests[0]
    assert sent.kind == "chat" and sent.temperature == 0.7
    user = sent.messages[-1].content
    assert user.index("a blurry photo of a {}.") < user.index("template: a photo of a {}.")


def test_completion_client_gets_the_completion_prompt_and_per_round_seeds():
    opt, client = make([" a {} in a shop\n2. a {} on a model", " a folded {}"], kind="completion", seed=10)
    opt.ask(HISTORY)
    opt.ask(HISTORY)
    assert [r.seed for r in client.requests] == [sampling_seed(10, 0, 0), sampling_seed(10, 1, 0)]
    assert client.requests[0].prompt.endswith("1.")
    assert [p.template for p in opt.proposals] == ["a {} in a shop", "a {} on a model", "a folded {}"]


def test_surplus_is_capped_to_n_proposals_unless_kept():
    reply = "\n".join(f"a {{}} variant {i}" for i in range(6))
    opt, _ = make([reply], n_proposals=2)
    assert len(opt.ask(HISTORY)) == 2
    assert [r.code for r in opt.rounds[0].rejected].count("surplus") == 4
    opt, _ = make([reply], n_proposals=2, keep_surplus=True)
    assert len(opt.ask(HISTORY)) == 6


def test_proposals_identical_to_earlier_proposals_are_dropped():
    opt, _ = make(["a {} on black", "A {} on black.\na {} in colour"])
    opt.ask(HISTORY)
    second = opt.ask(HISTORY)
    assert [p.template for p in second] == ["a {} in colour"]
    assert [r.code for r in opt.rounds[1].rejected] == ["tried"]


@pytest.mark.parametrize("reply", ["", "   \n\n", "Sure! I can help with that.", ["", ""]])
def test_zero_valid_proposals_is_a_recorded_empty_round(reply):
    opt, _ = make([reply])
    assert opt.ask(HISTORY) == ()
    (rnd,) = opt.rounds
    assert rnd.empty and rnd.proposal_ids == ()
    assert rnd.empty_completion == (not any(t.strip() for t in ([reply] if isinstance(reply, str) else reply)))
    if rnd.empty_completion:
        assert "empty completion" in rnd.notes
    assert opt.proposals == ()


@pytest.mark.parametrize(
    "error",
    [
        LLMConnectionError("refused"),
        LLMTimeoutError("slow"),
        LLMAuthError("401", status_code=401),
        LLMRateLimitError("429", status_code=429),
        LLMServerError("500", status_code=500),
        LLMResponseError("garbage"),
        ReplayMiss("miss", request_key="k"),
    ],
)
def test_failed_call_leaves_state_unchanged(error):
    opt, _ = make([REPLY, error, "a {} after"])
    opt.ask(HISTORY)
    opt.mark_approved("r0-0")
    before = copy.deepcopy(opt.state_dict())
    with pytest.raises(type(error)):
        opt.ask(HISTORY)
    assert opt.state_dict() == before
    assert [p.id for p in opt.ask(HISTORY)] == ["r1-0"]  # next round numbering is unaffected


def test_budget_stop_leaves_state_unchanged():
    client = MeteredClient(ScriptedClient([REPLY, REPLY]), budget=Budget(max_calls=1))
    opt = LLMPromptOptimizer(client, task=TASK)
    opt.ask(HISTORY)
    before = copy.deepcopy(opt.state_dict())
    with pytest.raises(BudgetExceeded, match="max_calls=1"):
        opt.ask(HISTORY)
    assert opt.state_dict() == before


def test_real_sdk_faults_leave_state_unchanged():
    replies = [
        Reply(body=chat_body("a {} on a hanger")),
        Reply(status=401, body={"error": {"message": "bad key"}}),
        Reply(status=429, body={"error": {"message": "slow down"}}),
        Reply(status=500, body={"error": {"message": "boom"}}),
        Reply(body=b"{garbage"),
        Reply(body=chat_body("")),
    ]
    with FakeOpenAIServer(*replies) as srv:
        client = OpenAIChatClient("fake-model", base_url=srv.base_url, api_key=SECRET, max_retries=0)
        opt = LLMPromptOptimizer(client, task=TASK)
        assert [p.template for p in opt.ask(HISTORY)] == ["a {} on a hanger"]
        before = copy.deepcopy(opt.state_dict())
        for error in (LLMAuthError, LLMRateLimitError, LLMServerError, LLMResponseError):
            with pytest.raises(error):
                opt.ask(HISTORY)
            assert opt.state_dict() == before
        assert opt.ask(HISTORY) == ()  # empty completion: a recorded empty round
        assert opt.rounds[-1].empty_completion
        state_text = json.dumps(opt.state_dict())
    assert SECRET not in state_text and SECRET not in repr(opt)


def test_people_add_revise_and_mark_proposals():
    opt, _ = make([REPLY])
    opt.ask(HISTORY)
    mine = opt.add_template("a {} photographed from above", note="top view")
    assert (mine.id, mine.source, mine.status, mine.note) == ("h1", "human", "pending", "top view")
    with pytest.raises(ValueError, match="same as proposal 'h1'"):
        opt.add_template("A {} photographed from above.")
    with pytest.raises(ValueError, match="at most once"):
        opt.add_template("a {} and a {}")
    revised = opt.revise("r0-0", "a studio photo of the {}")
    assert revised.template == "a studio photo of the {}" and revised.original == "a studio photo of a {}."
    assert revised.edits == ("a studio photo of a {}.",) and revised.revised
    opt.revise("r0-0", "a studio shot of the {}")
    assert opt.get("r0-0").edits == ("a studio photo of a {}.", "a studio photo of the {}")
    assert opt.mark_approved("r0-0").status == "approved"
    assert opt.mark_rejected("r0-1", reason="too generic").status == "rejected"
    assert opt.get("r0-1").note == "too generic"
    assert {p.id for p in opt.pending} == {"r0-2", "h1"}
    assert opt.mark_approved("r0-1").status == "approved"  # a person may change their mind
    with pytest.raises(KeyError, match="'nope'"):
        opt.mark_approved("nope")


def test_tell_and_score_record_scores_all_or_nothing():
    opt, _ = make([REPLY])
    opt.ask(HISTORY)
    opt.mark_rejected("r0-2")
    with pytest.raises(ValueError, match="rejected"):
        opt.tell({"r0-0": (0.9, 0.7), "r0-2": (0.8, 0.7)})
    assert opt.scored == ()  # nothing recorded from the failed tell
    with pytest.raises(ValueError, match="accuracy"):
        opt.tell({"r0-0": (0.9, 70.0)})
    opt.tell({"r0-0": (0.9, 0.7)})
    with pytest.raises(ValueError, match="already scored"):
        opt.tell({"r0-0": (0.5, 0.7)})
    with pytest.raises(ValueError, match="status 'scored'"):
        opt.revise("r0-0", "x {}")

    calls = []

    def scorer(text: str):
        calls.append(text)
        return (len(text) / 10, 0.5)

    scored = opt.score(scorer)  # pending and approved, not rejected or scored
    assert calls == ["a close-up of a {}"]
    assert [p.id for p in scored] == ["r0-1"] and scored[0].loss == pytest.approx(1.8)
    assert opt.best().id == "r0-0"
    hist = opt.scored_history()
    assert [h.source for h in hist] == ["llm:r0-0", "llm:r0-1"]

    def broken(text: str):
        raise RuntimeError("CLIP crashed")

    opt.add_template("a {} on a mannequin")
    with pytest.raises(RuntimeError):
        opt.score(broken)
    assert opt.get("h1").status == "pending"


def test_state_dict_round_trip_is_plain_json_and_checked():
    opt, _ = make([REPLY, ""], seed=5)
    opt.ask(HISTORY)
    opt.ask(HISTORY)
    opt.add_template("a {} on a hanger")
    opt.revise("r0-0", "a studio shot of a {}")
    opt.tell({"r0-0": (0.8, 0.71)})
    state = json.loads(json.dumps(opt.state_dict()))
    fresh, _ = make([], seed=5)
    fresh.load_state_dict(state)
    assert fresh.state_dict() == opt.state_dict()
    assert fresh.proposals == opt.proposals and fresh.rounds == opt.rounds
    assert fresh.add_template("a {} folded").id == "h2"  # counters restored
    other, _ = make([], seed=6)
    with pytest.raises(ValueError, match="seed"):
        other.load_state_dict(state)
    with pytest.raises(ValueError, match="version"):
        fresh.load_state_dict({"version": 99})
    bad = copy.deepcopy(state)
    bad["state"]["proposals"][0]["status"] = "maybe"
    with pytest.raises(ValueError, match="maybe"):
        fresh.load_state_dict(bad)


def test_bad_arguments_name_the_value():
    with pytest.raises(ValueError, match="TaskDescription"):
        LLMPromptOptimizer(ScriptedClient([]), task="fashion")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="n_proposals"):
        LLMPromptOptimizer(ScriptedClient([]), task=TASK, n_proposals=0)
    opt, _ = make(["a {}"])
    with pytest.raises(ValueError, match=r"history\[0\]"):
        opt.ask([("a {}", 1.0, 0.5)])  # type: ignore[list-item]
    assert opt.rounds == ()


def test_unscored_candidate_is_refused_as_history():
    opt, _ = make(["a {}"])
    with pytest.raises(ValueError, match="without a score"):
        opt.ask([Candidate(id="x", template="a {}", source="llm")])
    assert opt.rounds == ()


def test_round_hooks_see_every_round_and_can_be_removed():
    opt, _ = make([REPLY, "a {} in colour"])
    seen = []
    handle = opt.register_llm_round_hook(lambda o, r: seen.append((r.index, r.proposal_ids)))
    opt.ask(HISTORY)
    handle.remove()
    opt.ask(HISTORY)
    assert seen == [(0, ("r0-0", "r0-1", "r0-2"))]
    assert [r.index for r in opt.rounds] == [0, 1]


def test_samples_make_several_calls_per_round_with_distinct_seeds():
    client = ScriptedClient(["a {} on a rail", "a {} on a rail", "a folded {}"], kind="completion")
    opt = LLMPromptOptimizer(client, task=TASK, style="captions", samples=3, seed=7, n_proposals=8)
    new = opt.ask(HISTORY)
    assert [r.seed for r in client.requests] == [sampling_seed(7, 0, i) for i in range(3)]
    assert opt.rounds[0].seeds == tuple(r.seed for r in client.requests)  # recorded with the round
    assert len(set(opt.rounds[0].seeds)) == 3
    assert all(r.stop == ("\n",) for r in client.requests)
    assert client.requests[0].prompt.endswith("a photo of a {}.\n")  # best last, bare lines
    assert "loss" not in client.requests[0].prompt
    assert [p.template for p in new] == ["a {} on a rail", "a folded {}"]
    assert opt.rounds[0].n_calls == 3 and [r.code for r in opt.rounds[0].rejected] == ["tried"]


def test_batch_samples_sends_a_round_s_samples_as_the_choices_of_one_call():
    """Same samples, same prompt, one call: n = samples x n, seeded by the round's first sample seed."""
    client = ScriptedClient([("a {} on a rail", "a {} on a rail", "a folded {}")] * 2, kind="completion")
    opt = LLMPromptOptimizer(client, task=TASK, style="captions", samples=3, seed=7, n_proposals=8,
                             batch_samples=True)
    new = opt.ask(HISTORY)
    (request,) = client.requests
    assert request.n == 3 and request.seed == sampling_seed(7, 0, 0)
    separate = LLMPromptOptimizer(ScriptedClient([], kind="completion"), task=TASK, style="captions", samples=3,
                                  seed=7, n_proposals=8)
    assert request.prompt == separate.build_request(HISTORY).prompt and request.stop == ("\n",)
    assert [p.template for p in new] == ["a {} on a rail", "a folded {}"]
    assert opt.rounds[0].n_calls == 1 and [r.code for r in opt.rounds[0].rejected] == ["tried"]
    opt.ask(HISTORY)
    assert client.requests[1].seed == sampling_seed(7, 1, 0)
    unbatched = LLMPromptOptimizer(client, task=TASK, style="captions", samples=3, seed=7, n_proposals=8)
    with pytest.raises(StateError, match="batch_samples"):  # not resumed with the rounds' requests changed
        unbatched.load_state_dict(opt.state_dict())


def test_an_explicit_round_index_labels_ids_and_must_increase():
    opt, _ = make([REPLY, "a {} in colour"])
    assert [p.id for p in opt.ask(HISTORY, round=2)] == ["r2-0", "r2-1", "r2-2"]
    with pytest.raises(ValueError, match="round 1"):
        opt.ask(HISTORY, round=1)


def test_runs_with_different_seeds_share_no_request():
    """Neighbouring run seeds used to reuse each other's draws (seed + 8 * round + i); now none is shared."""
    keys: dict[int, set[str]] = {}
    for seed in range(1, 6):
        client = ScriptedClient(["a {} on a rail"] * 32, kind="completion")
        opt = LLMPromptOptimizer(client, task=TASK, style="captions", samples=8, seed=seed, n_proposals=8)
        for _ in range(4):
            opt.ask(HISTORY)  # the same history every round and run: only the seed can tell requests apart
        keys[seed] = {request_key(r) for r in client.requests}
        assert len(keys[seed]) == 32
        assert {r.seed for r in client.requests} == set(s for rnd in opt.rounds for s in rnd.seeds)
    for a in keys:
        for b in keys:
            if a < b:
                assert not keys[a] & keys[b], (a, b)


def test_sampling_seed_is_stable_and_31_bit():
    assert sampling_seed(1, 0, 0) == sampling_seed(1, 0, 0)
    seeds = {sampling_seed(s, r, i) for s in range(20) for r in range(5) for i in range(8)}
    assert len(seeds) == 800 and all(0 <= x < 2 ** 31 for x in seeds)
    with pytest.raises(ValueError, match="round_index"):
        sampling_seed(1, 0.5, 0)
