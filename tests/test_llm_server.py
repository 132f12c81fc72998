"""Integration tests against the real embedded LLM (llama.cpp server + Gemma 3 270M).

Skipped when llama-cpp-python is not installed, unless CATALYST_REQUIRE_LLM=1 (CI), where a missing
server is a failure.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from catalyst_nb.llm import (
    FASHION_MNIST_TASK,
    ChatMessage,
    Cassette,
    LLMRequest,
    LocalLLMServer,
    MeteredClient,
    RecordingClient,
    ReplayingClient,
    example_fashion_mnist_history,
)
from catalyst_nb.llm.optimizer import LLMPromptOptimizer

pytestmark = pytest.mark.llm_server

REQUIRED = os.environ.get("CATALYST_REQUIRE_LLM") == "1"


def pid_gone(pid: int, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


@pytest.fixture(scope="module")
def server():
    if importlib.util.find_spec("llama_cpp") is None:
        if REQUIRED:
            pytest.fail("CATALYST_REQUIRE_LLM=1 but llama-cpp-python is not installed (pip install '.[local-llm]')")
        pytest.skip("llama-cpp-python is not installed (optional extra local-llm)")
    with LocalLLMServer(n_ctx=2048) as srv:
        pid = srv.pid
        yield srv
    assert pid_gone(pid), f"llama.cpp server pid {pid} still alive after the launcher exited"


def test_completion_round_trip(server):
    client = server.completion_client()
    prompt = "Prompt templates for photos of clothing:\n1. a photo of a {}.\n2."
    req = LLMRequest(model=client.model, prompt=prompt, temperature=0.8, max_tokens=24, seed=3, stop=("\n\n",))
    first = client.complete(req)
    again = client.complete(req)
    assert first.model == "gemma-3-270m"
    assert first.prompt_tokens and first.prompt_tokens > 10
    assert 0 < first.completion_tokens <= 24
    assert first.finish_reasons[0] in ("stop", "length")
    assert first.texts == again.texts, "same seed, same request: same text"
    short = client.complete(LLMRequest(model=client.model, prompt=prompt, temperature=0.8, max_tokens=3, seed=3))
    assert short.completion_tokens <= 3 and short.finish_reasons == ("length",)


def test_optimizer_gets_proposals_from_gemma(server):
    opt = LLMPromptOptimizer(server.completion_client(), task=FASHION_MNIST_TASK, seed=123, temperature=0.8, max_tokens=96)
    history = example_fashion_mnist_history()
    for _ in range(4):  # a 270M base model sometimes rambles; a few rounds must give something
        opt.ask(history)
        if opt.proposals:
            break
    assert opt.proposals, [r.replies for r in opt.rounds]
    tried = {t.template.casefold().rstrip(". ") for t in history}
    for p in opt.proposals:
        assert p.template.count("{}") == 1 and len(p.template.split()) <= 8
        assert p.template.casefold().rstrip(". ") not in tried
        assert p.status == "pending" and p.raw_reply


def test_record_against_server_then_replay_offline(server, tmp_path):
    history = example_fashion_mnist_history()
    recorder = RecordingClient(server.completion_client(), path=tmp_path / "live.json")
    live = LLMPromptOptimizer(recorder, task=FASHION_MNIST_TASK, seed=7, temperature=0.9, max_tokens=64)
    live.ask(history)
    live.ask(history + list(live.scored_history()))
    assert len(recorder.cassette) == 2

    replay = MeteredClient(ReplayingClient(Cassette.load(tmp_path / "live.json")))
    offline = LLMPromptOptimizer(replay, task=FASHION_MNIST_TASK, seed=7, temperature=0.9, max_tokens=64)
    offline.ask(history)
    offline.ask(history + list(offline.scored_history()))
    assert offline.state_dict() == live.state_dict()  # replies, proposals, usage and latency, bit for bit
    Cassette.load(tmp_path / "live.json").save(tmp_path / "again.json")
    assert (tmp_path / "again.json").read_bytes() == (tmp_path / "live.json").read_bytes()


def test_second_launcher_stops_cleanly_after_an_exception(server):
    # the module's server keeps running; this one must vanish even though the block raised
    other = LocalLLMServer(n_ctx=512)
    with pytest.raises(RuntimeError, match="inside"):
        with other:
            pid = other.pid
            assert other.port != server.port
            client = other.completion_client()
            client.complete(LLMRequest(model=client.model, prompt="Hello", max_tokens=2, seed=0))
            raise RuntimeError("failure inside the with-block")
    assert pid_gone(pid)
    assert server.is_running


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_server_command_serves_until_ctrl_c_or_sigterm(server, signum):
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    # started as from a shell's background job (SIGINT ignored, inherited): the command must not depend on it
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "catalyst_nb.llm.server", "--n-ctx", "512"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )
    finally:
        signal.signal(signal.SIGINT, previous)
    try:
        info = {}
        for _ in range(3):
            key, _, value = proc.stdout.readline().partition(":")
            info[key.strip()] = value.strip()
        assert info["base_url"].startswith("http://127.0.0.1:") and info["model"] == "gemma-3-270m"
        from catalyst_nb.llm import OpenAICompletionClient

        client = OpenAICompletionClient(info["model"], base_url=info["base_url"], api_key="EMPTY", max_retries=0)
        assert client.complete(LLMRequest(model=client.model, prompt="Hi", max_tokens=2, seed=0)).completion_tokens
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        assert "stopped" in out
        assert pid_gone(int(info["pid"]))
    finally:
        proc.kill()


def test_a_whole_small_catalyst_run_against_the_real_local_llm(server):
    """The default preset end to end with Gemma: caption samples, proposals scored as loaded, restarts."""
    from catalyst_nb.backbone import load_clip
    from catalyst_nb.data import few_shot, load_embedded_fashion_mnist
    from catalyst_nb.features import extract_features
    from catalyst_nb.optim import CatalystOptimizer
    from catalyst_nb.prompt_learner import PromptLearner

    clip = load_clip()
    train = extract_features(clip, few_shot(load_embedded_fashion_mnist("train"), shots=2, seed=1), progress=False)
    val = extract_features(clip, few_shot(load_embedded_fashion_mnist("val"), shots=8, seed=1), progress=False)
    learner = PromptLearner(clip, train.classnames, n_ctx=8, ctx_init="a photo of a")
    opt = CatalystOptimizer(learner, train, scoring=val, client=server.completion_client(), task=FASHION_MNIST_TASK,
                            rounds=2, gradient=dict(total_steps=12, warmup_steps=1, batch_size=8, seed=1),
                            llm_config=dict(seed=3))
    opt.run(progress=False)
    assert opt.done and opt.step_count == 12
    llm_events = [e for e in opt.events if e.kind == "llm"]
    assert len(llm_events) == 2 and all(e.data["n_calls"] == 8 for e in llm_events)
    assert all(len(e.data["replies"]) == 8 for e in llm_events)
    proposals = [p for e in opt.events if e.kind == "proposals" for p in e.data["proposals"]]
    assert proposals, [e.data["replies"] for e in llm_events]  # Gemma gave at least one valid new template
    assert all(p["template"].count("{}") == 1 and p["loss"] is not None for p in proposals if p["status"] != "invalid")
    restarts = [e for e in opt.events if e.kind == "restart"]
    for r in restarts:
        assert r.data["template"] in {p["template"] for p in proposals}


PROMPT = "Captions people wrote for photos of clothes:\n- a red dress on a hanger\n- worn sneakers\n-"


def test_the_n_choices_of_a_request_are_decoded_together_and_repeat_whatever_came_before(server):
    """The embedded model's server answers n choices in one call; a request gives the same choices again,
    after other requests too (each starts from an empty cache), and stop strings end a choice."""
    client = server.completion_client()
    req = LLMRequest(model=client.model, prompt=PROMPT, temperature=1.0, max_tokens=16, n=8, seed=5, stop=("\n",))
    first = client.complete(req)
    assert len(first.texts) == 8 and len(first.finish_reasons) == 8
    assert len(set(first.texts)) > 1, "temperature 1: the choices are different samples"
    assert all(r in ("stop", "length") for r in first.finish_reasons)
    assert all("\n" not in t for t in first.texts)
    assert 8 <= first.completion_tokens <= 8 * 16 and first.prompt_tokens > 10
    client.complete(LLMRequest(model=client.model, prompt="Another prompt, shorter", temperature=1.0, max_tokens=5,
                               n=3, seed=9))
    assert client.complete(req).texts == first.texts
    other_seed = client.complete(LLMRequest(model=client.model, prompt=PROMPT, temperature=1.0, max_tokens=16, n=8,
                                            seed=6, stop=("\n",)))
    assert other_seed.texts != first.texts
    greedy = client.complete(LLMRequest(model=client.model, prompt=PROMPT, temperature=0.0, max_tokens=8, n=3, seed=1))
    assert len(set(greedy.texts)) == 1, "temperature 0: every choice is the greedy one"


def _post(server, path: str, body) -> tuple[int, dict]:
    import json
    import urllib.error
    import urllib.request

    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    req = urllib.request.Request(server.base_url.rsplit("/v1", 1)[0] + path, data=data,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.mark.parametrize("body, status, words", [
    ({"prompt": PROMPT, "stream": True}, 400, "streaming"),
    ({"prompt": PROMPT, "n": 0}, 400, "n must be"),
    ({"prompt": [PROMPT, PROMPT]}, 400, "one prompt"),
    ({"prompt": PROMPT, "max_tokens": 0}, 400, "max_tokens"),
    ({"prompt": PROMPT, "temperature": "hot"}, 400, "temperature"),
    ({"prompt": PROMPT, "stop": 3}, 400, "stop"),
    ({"prompt": "x " * 3000, "max_tokens": 4}, 400, "do not fit"),
    (b"{not json", 400, "not JSON"),
], ids=["stream", "n", "prompts", "max_tokens", "temperature", "stop", "too-long", "garbage"])
def test_the_batched_server_answers_a_bad_request_with_400_and_the_reason(server, body, status, words):
    code, payload = _post(server, "/v1/completions", body)
    assert code == status and words in payload["error"]["message"], payload
    code, payload = _post(server, "/v1/completions", {"prompt": PROMPT, "max_tokens": 2, "seed": 1})
    assert code == 200 and len(payload["choices"]) == 1  # and it still serves


def test_the_batched_server_has_no_chat_endpoint(server):
    from catalyst_nb.llm import LLMError, LocalServerError, OpenAIChatClient

    with pytest.raises(LocalServerError, match="completions only"):
        server.chat_client()
    chat = OpenAIChatClient(server.model_alias, base_url=server.base_url, api_key="EMPTY", max_retries=0)
    with pytest.raises(LLMError):
        chat.complete(LLMRequest(model=chat.model, messages=(ChatMessage("user", "hi"),), max_tokens=2))


def test_a_catalyst_round_s_samples_as_one_call_of_eight_choices(server):
    """``batch_samples``: one call per round, its 8 choices the round's samples, seeded from the round's
    first sample seed; a second optimizer with the same seed gets the same replies."""
    from catalyst_nb.llm.sampling_seed import sampling_seed

    history = example_fashion_mnist_history()
    rounds = []
    for _ in range(2):
        opt = LLMPromptOptimizer(server.completion_client(), task=FASHION_MNIST_TASK, seed=11, style="captions",
                                 n_proposals=8, max_words=10, temperature=1.0, samples=8, max_tokens=24,
                                 batch_samples=True)
        opt.ask(history)
        rounds.append(opt.rounds[0])
    first, again = rounds
    assert first.n_calls == 1 and len(first.replies) == 8 and first.seeds == (sampling_seed(11, 0, 0),)
    assert again.replies == first.replies
