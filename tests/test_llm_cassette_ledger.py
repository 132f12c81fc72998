"""Record/replay cassettes, the usage ledger and the budget."""

from __future__ import annotations

import json

import pytest

from catalyst_nb.llm import (
    Budget,
    BudgetExceeded,
    Cassette,
    LLMRequest,
    LLMServerError,
    MeteredClient,
    OpenAICompletionClient,
    Price,
    RecordingClient,
    ReplayingClient,
    ReplayMiss,
    ScriptedClient,
    UsageLedger,
    request_key,
)
from llm_fixtures.fake_openai import FakeOpenAIServer, Reply, completion_body

SECRET = "sk-test-SECRET-cassette-42"


def req(prompt: str = "1.", seed: int | None = 0, **kw) -> LLMRequest:
    return LLMRequest(model="scripted", prompt=prompt, seed=seed, temperature=0.7, **kw)


def test_record_then_replay_is_identical(tmp_path):
    inner = ScriptedClient(["a {} one", ["a {} two", "a {} three"], "a {} four"], kind="completion", latency_s=0.25)
    rec = RecordingClient(inner, path=tmp_path / "c.json")
    requests = [req("x"), req("y", n=2), req("x")]  # the same request twice
    recorded = [rec.complete(r) for r in requests]
    assert len(rec.cassette) == 3
    replay = ReplayingClient(tmp_path / "c.json")
    assert (replay.kind, replay.model) == ("completion", "scripted")
    replayed = [replay.complete(r) for r in requests]
    assert replayed == recorded  # texts, usage, latency, finish reasons
    assert [r.text for r in replayed] == ["a {} one", "a {} two", "a {} four"]


def test_cassette_file_is_stable_and_checked(tmp_path):
    c = Cassette()
    c.add(req("x"), ScriptedClient(["a {}"], kind="completion").complete(req("x")))
    p1, p2 = c.save(tmp_path / "a.json"), Cassette.load(c.save(tmp_path / "b.json")).save(tmp_path / "c.json")
    assert p1.read_bytes() == p2.read_bytes()
    data = json.loads(p1.read_text())
    assert data["entries"][0]["key"] == request_key(req("x"))
    data["entries"][0]["request"]["seed"] = 99
    (tmp_path / "edited.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match="hashes to"):
        Cassette.load(tmp_path / "edited.json")
    with pytest.raises(ValueError, match="not a cassette"):
        Cassette.from_dict({"format": "other"})


def test_replay_miss_names_the_request():
    c = Cassette()
    c.add(req("known"), ScriptedClient(["a {}"], kind="completion").complete(req("known")))
    replay = ReplayingClient(c)
    with pytest.raises(ReplayMiss) as info:
        replay.complete(req("something new and different"))
    msg = str(info.value)
    assert "something new and different" in msg and "'scripted'" in msg and "no such request" in msg
    assert info.value.request_key == request_key(req("something new and different"))
    replay.complete(req("known"))
    with pytest.raises(ReplayMiss, match="recorded 1 time"):
        replay.complete(req("known"))
    with pytest.raises(ReplayMiss):  # a changed sampling parameter is a different request
        ReplayingClient(c).complete(req("known", seed=1))


def test_recording_keeps_failures_out_and_key_out(tmp_path):
    with FakeOpenAIServer(Reply(body=completion_body("a {}")), Reply(status=500, body={"error": {"message": "x"}})) as srv:
        inner = OpenAICompletionClient("fake-model", base_url=srv.base_url, api_key=SECRET, max_retries=0)
        rec = RecordingClient(inner, path=tmp_path / "c.json")
        rec.complete(LLMRequest(model="fake-model", prompt="p"))
        with pytest.raises(LLMServerError):
            rec.complete(LLMRequest(model="fake-model", prompt="q"))
    assert len(rec.cassette) == 1
    text = (tmp_path / "c.json").read_text()
    assert SECRET not in text and srv.base_url not in text
    assert SECRET not in repr(rec)


def test_ledger_totals_costs_and_round_trip():
    client = MeteredClient(
        ScriptedClient(["a b c", LLMServerError("down", status_code=500), "d e"], kind="completion"),
        ledger=UsageLedger({"scripted": Price(prompt_per_million=2.0, completion_per_million=10.0)}),
    )
    client.complete(req("one two"))
    with pytest.raises(LLMServerError):
        client.complete(req("three"))
    client.complete(req("four five six"))
    led = client.ledger
    assert (led.calls, led.failed_calls) == (3, 1)
    assert (led.prompt_tokens, led.completion_tokens) == (2 + 3, 3 + 2)
    assert led.records[1].error == "LLMServerError" and not led.records[1].ok
    assert led.cost == pytest.approx((5 * 2.0 + 5 * 10.0) / 1e6)
    again = UsageLedger.from_dict(json.loads(json.dumps(led.to_dict())))
    assert again.summary() == led.summary()
    assert UsageLedger().cost is None  # no price table: no made-up cost


def test_budget_stops_calls_with_a_clear_message():
    inner = ScriptedClient(["a {}"] * 10, kind="completion")
    client = MeteredClient(inner, budget=Budget(max_calls=2))
    client.complete(req("x"))
    client.complete(req("y"))
    with pytest.raises(BudgetExceeded, match="max_calls=2"):
        client.complete(req("z"))
    assert len(inner.requests) == 2 and client.ledger.calls == 2

    inner = ScriptedClient(["w " * 6] * 10, kind="completion")
    client = MeteredClient(inner, budget=Budget(max_tokens=10))
    client.complete(req("p"))  # 1 + 6 tokens
    client.complete(req("p"))  # 14 tokens: over afterwards
    with pytest.raises(BudgetExceeded, match="14 of max_tokens=10"):
        client.complete(req("p"))
    assert len(inner.requests) == 2


def test_budget_validation():
    with pytest.raises(ValueError, match="max_calls"):
        Budget(max_calls=-1)


def test_resuming_client_replays_recorded_calls_in_order_then_records_new_ones(tmp_path):
    from catalyst_nb.llm import ResumingClient

    path = tmp_path / "run" / "cassette.json"
    first = ResumingClient(ScriptedClient(["a {} one", "a {} two"], kind="completion"), path)
    req = LLMRequest(prompt="list:", model="scripted", seed=1)
    assert [first.complete(req).text for _ in range(2)] == ["a {} one", "a {} two"]
    # a resumed run: the same two calls come from the file, the third goes to the live model
    live = ScriptedClient(["a {} three"], kind="completion")
    again = ResumingClient(live, path)
    assert [again.complete(req).text for _ in range(3)] == ["a {} one", "a {} two", "a {} three"]
    assert again.replayed == 2 and len(live.requests) == 1
    assert len(Cassette.load(path)) == 3
