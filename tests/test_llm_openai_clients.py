"""The OpenAI-compatible clients against a local fake server, through the real openai SDK."""

from __future__ import annotations

import json
import logging
import pickle
import time
import traceback

import pytest

from catalyst_nb.llm import (
    ChatMessage,
    LLMAuthError,
    LLMConnectionError,
    LLMError,
    LLMRateLimitError,
    LLMRequest,
    LLMRequestError,
    LLMResponseError,
    LLMServerError,
    LLMTimeoutError,
    OpenAIChatClient,
    OpenAICompletionClient,
)
from catalyst_nb.llm.launcher import free_port
from llm_fixtures.fake_openai import FakeOpenAIServer, Reply, chat_body, completion_body

SECRET = "sk-test-SECRET-0123456789abcdef"


def completion_request(**kw) -> LLMRequest:
    return LLMRequest(model="fake-model", prompt="List templates:\n1.", **kw)


def chat_request(**kw) -> LLMRequest:
    return LLMRequest(model="fake-model", messages=(ChatMessage("user", "Write templates."),), **kw)


def test_completion_round_trip_passes_sampling_parameters():
    with FakeOpenAIServer(Reply(body=completion_body(" a photo of a {}.", prompt_tokens=21, completion_tokens=6))) as srv:
        client = OpenAICompletionClient("fake-model", base_url=srv.base_url, api_key=SECRET, max_retries=0)
        req = completion_request(temperature=0.3, top_p=0.9, max_tokens=40, n=1, seed=7, stop=("\n\n", "\n4."))
        resp = client.complete(req)
    assert resp.texts == (" a photo of a {}.",)
    assert (resp.prompt_tokens, resp.completion_tokens) == (21, 6)
    assert resp.finish_reasons == ("stop",)
    assert resp.latency_s > 0
    sent = srv.requests[0]
    assert sent["path"] == "/v1/completions"
    body = sent["json"]
    assert body["prompt"] == "List templates:\n1."
    assert body["temperature"] == 0.3 and body["top_p"] == 0.9 and body["max_tokens"] == 40
    assert body["seed"] == 7 and body["stop"] == ["\n\n", "\n4."]
    assert sent["headers"]["authorization"] == f"Bearer {SECRET}"


def test_chat_round_trip_with_several_choices_and_unset_parameters_not_sent():
    with FakeOpenAIServer(Reply(body=chat_body("a {} photo", "a sketch of a {}"))) as srv:
        client = OpenAIChatClient("fake-model", base_url=srv.base_url, api_key=SECRET, max_retries=0)
        resp = client.complete(chat_request(n=2, temperature=1.0))
    assert resp.texts == ("a {} photo", "a sketch of a {}")
    body = srv.requests[0]["json"]
    assert srv.requests[0]["path"] == "/v1/chat/completions"
    assert body["messages"] == [{"role": "user", "content": "Write templates."}]
    assert body["n"] == 2 and body["temperature"] == 1.0
    for unset in ("top_p", "seed", "max_tokens", "stop"):
        assert unset not in body


def test_chat_client_can_send_max_completion_tokens():
    with FakeOpenAIServer(Reply(body=chat_body("x {}"))) as srv:
        client = OpenAIChatClient("fake-model", base_url=srv.base_url, api_key=SECRET, max_retries=0,
                                  max_tokens_field="max_completion_tokens")
        client.complete(chat_request(max_tokens=33))
    body = srv.requests[0]["json"]
    assert body["max_completion_tokens"] == 33 and "max_tokens" not in body


def test_key_and_url_from_environment(monkeypatch):
    with FakeOpenAIServer(Reply(body=completion_body("ok {}"))) as srv:
        monkeypatch.setenv("OPENAI_API_KEY", SECRET)
        monkeypatch.setenv("OPENAI_BASE_URL", srv.base_url)
        client = OpenAICompletionClient("fake-model", max_retries=0)
        assert client.base_url == srv.base_url
        client.complete(completion_request())
    assert srv.requests[0]["headers"]["authorization"] == f"Bearer {SECRET}"


def test_missing_key_is_a_clear_auth_error(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(LLMAuthError, match="OPENAI_API_KEY"):
        OpenAIChatClient("gpt-x", base_url="http://127.0.0.1:9/v1")


def test_kind_mismatch_is_a_value_error():
    client = OpenAIChatClient("m", base_url="http://127.0.0.1:9/v1", api_key=SECRET)
    with pytest.raises(ValueError, match="chat client cannot send a completion request"):
        client.complete(completion_request())


def exception_chain(exc: BaseException) -> list[BaseException]:
    """The exception and everything reachable through ``__cause__`` and ``__context__`` (suppressed or not)."""
    seen: list[BaseException] = []
    todo = [exc]
    while todo:
        e = todo.pop()
        if e is None or any(e is s for s in seen):
            continue
        seen.append(e)
        todo += [e.__cause__, e.__context__]
    return seen


def holds_secret(obj, depth: int = 0, seen: set | None = None) -> bool:
    """True if SECRET is reachable from ``obj`` through attributes, mappings or sequences (a few levels)."""
    seen = set() if seen is None else seen
    if depth > 6 or id(obj) in seen:
        return False
    seen.add(id(obj))
    if isinstance(obj, (str, bytes)):
        return (SECRET.encode() if isinstance(obj, bytes) else SECRET) in obj
    if isinstance(obj, (int, float, bool, type(None))):
        return False
    if isinstance(obj, BaseException) and holds_secret(obj.args, depth + 1, seen):
        return True
    from collections.abc import Mapping

    if isinstance(obj, Mapping):
        try:
            items = list(obj.items())
        except Exception:
            items = []
        return any(holds_secret(k, depth + 1, seen) or holds_secret(v, depth + 1, seen) for k, v in items)
    if isinstance(obj, (list, tuple, set, frozenset)):
        return any(holds_secret(v, depth + 1, seen) for v in obj)
    attrs = getattr(obj, "__dict__", None)
    return isinstance(attrs, dict) and holds_secret(attrs, depth + 1, seen)


@pytest.mark.parametrize(
    ("reply", "error", "status"),
    [
        (Reply(status=401, body={"error": {"message": f"Incorrect API key provided: {SECRET}"}}), LLMAuthError, 401),
        (Reply(status=403, body={"error": {"message": "forbidden"}}), LLMAuthError, 403),
        (Reply(status=429, body={"error": {"message": "slow down"}}), LLMRateLimitError, 429),
        (Reply(status=500, body={"error": {"message": f"boom while checking {SECRET}"}}), LLMServerError, 500),
        (Reply(status=503, body=b"upstream down", content_type="text/plain"), LLMServerError, 503),
        (Reply(status=404, body={"error": {"message": "model not found"}}), LLMRequestError, 404),
        (Reply(status=200, body=b"{not json at all"), LLMResponseError, None),
        (Reply(status=200, body=b"<html>proxy page</html>", content_type="text/html"), LLMResponseError, None),
        (Reply(status=200, body={"id": "x", "object": "text_completion", "model": "m", "choices": []}), LLMResponseError, None),
        (Reply(status=200, body={"unexpected": True}), LLMResponseError, None),
    ],
)
def test_http_faults_map_to_typed_errors(reply, error, status):
    with FakeOpenAIServer(reply) as srv:
        client = OpenAICompletionClient("fake-model", base_url=srv.base_url, api_key=SECRET, max_retries=0)
        with pytest.raises(error) as info:
            client.complete(completion_request())
    assert isinstance(info.value, LLMError)
    assert info.value.status_code == status
    assert "fake-model" in str(info.value)
    assert SECRET not in str(info.value)
    assert SECRET not in "".join(traceback.format_exception(info.value))
    chain = exception_chain(info.value)
    assert chain == [info.value]  # no SDK exception (with the request's headers) kept as cause or context
    assert not holds_secret(info.value)


def test_empty_completion_is_a_response_not_an_error():
    with FakeOpenAIServer(Reply(body=completion_body(""))) as srv:
        client = OpenAICompletionClient("fake-model", base_url=srv.base_url, api_key=SECRET, max_retries=0)
        resp = client.complete(completion_request())
    assert resp.texts == ("",)


def test_null_chat_content_reads_as_empty_text():
    body = chat_body("x")
    body["choices"][0]["message"]["content"] = None
    with FakeOpenAIServer(Reply(body=body)) as srv:
        client = OpenAIChatClient("fake-model", base_url=srv.base_url, api_key=SECRET, max_retries=0)
        assert client.complete(chat_request()).texts == ("",)


def test_refused_connection_is_a_connection_error():
    port = free_port()  # nothing listens there
    client = OpenAICompletionClient("fake-model", base_url=f"http://127.0.0.1:{port}/v1", api_key=SECRET, max_retries=0)
    with pytest.raises(LLMConnectionError) as info:
        client.complete(completion_request())
    assert not isinstance(info.value, LLMTimeoutError)
    assert f"127.0.0.1:{port}" in str(info.value)


def test_slow_server_is_a_timeout_error():
    with FakeOpenAIServer(Reply(body=completion_body("late {}"), delay_s=1.5)) as srv:
        client = OpenAICompletionClient("fake-model", base_url=srv.base_url, api_key=SECRET, max_retries=0, timeout=0.3)
        start = time.perf_counter()
        with pytest.raises(LLMTimeoutError):
            client.complete(completion_request())
        assert time.perf_counter() - start < 1.4


def test_sdk_retries_are_used_for_server_errors():
    replies = (Reply(status=500, body={"error": {"message": "flaky"}}), Reply(body=completion_body("a {} again")))
    with FakeOpenAIServer(*replies) as srv:
        client = OpenAICompletionClient("fake-model", base_url=srv.base_url, api_key=SECRET, max_retries=1)
        resp = client.complete(completion_request())
    assert resp.texts == ("a {} again",)
    assert len(srv.requests) == 2


def test_key_never_in_repr_logs_cassettes_ledgers_states_or_errors(caplog, tmp_path):
    from catalyst_nb.llm import FASHION_MNIST_TASK, MeteredClient, RecordingClient, ScoredTemplate
    from catalyst_nb.llm.optimizer import LLMPromptOptimizer

    caplog.set_level(logging.DEBUG)
    with FakeOpenAIServer(
        Reply(body=completion_body(" a {} on a hanger\n2. a folded {}")),
        Reply(status=401, body={"error": {"message": f"Incorrect API key provided: {SECRET}"}}),
    ) as srv:
        real = OpenAICompletionClient("fake-model", base_url=srv.base_url, api_key=SECRET, max_retries=0)
        recorder = RecordingClient(real, path=tmp_path / "cassette.json")
        metered = MeteredClient(recorder)
        opt = LLMPromptOptimizer(metered, task=FASHION_MNIST_TASK, seed=1)
        history = [ScoredTemplate("a photo of a {}.", 1.0, 0.6)]
        assert len(opt.ask(history)) == 2
        with pytest.raises(LLMAuthError) as info:
            opt.ask(history)
    assert srv.requests[0]["headers"]["authorization"] == f"Bearer {SECRET}"  # the key was really used
    leaks = {
        "client repr": repr(real) + str(real) + repr(recorder) + repr(metered) + repr(opt),
        "logs": caplog.text,
        "cassette": (tmp_path / "cassette.json").read_text(),
        "ledger": json.dumps(metered.ledger.to_dict()),
        "state": json.dumps(opt.state_dict()),
        "error": repr(info.value) + "".join(traceback.format_exception(info.value)),
    }
    for where, text in leaks.items():
        assert SECRET not in text, f"API key found in {where}"
    for i, exc in enumerate(exception_chain(info.value)):
        assert not type(exc).__module__.startswith(("openai", "httpx")), f"SDK exception kept in the chain: {exc!r}"
        assert not holds_secret(exc), f"API key held by exception {i} in the chain: {type(exc).__name__}"
    with pytest.raises(TypeError, match="not picklable"):
        pickle.dumps(real)
