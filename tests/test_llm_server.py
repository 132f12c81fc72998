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
