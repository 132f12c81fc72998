"""Offline replay of real Gemma 3 270M traffic recorded by ``scripts/llm_latency.py --record``.

If the meta-prompt or the optimizer's sampling defaults change, these requests no longer match the
recording and the replay fails with ReplayMiss: re-record with
``python scripts/llm_latency.py --record tests/llm_fixtures/gemma_fashion_mnist.json``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from catalyst_nb.llm import (
    FASHION_MNIST_TASK,
    Cassette,
    MeteredClient,
    ReplayingClient,
    ReplayMiss,
    example_fashion_mnist_history,
)
from catalyst_nb.llm.optimizer import LLMPromptOptimizer

CASSETTE = Path(__file__).parent / "llm_fixtures" / "gemma_fashion_mnist.json"


def optimizer(client) -> LLMPromptOptimizer:
    # the settings scripts/llm_latency.py records with
    return LLMPromptOptimizer(client, task=FASHION_MNIST_TASK, seed=0, temperature=0.7, max_tokens=128)


def test_recorded_gemma_rounds_replay_into_the_same_proposals():
    cassette = Cassette.load(CASSETTE)
    client = MeteredClient(ReplayingClient(cassette))
    assert (client.kind, client.model) == ("completion", "gemma-3-270m")
    opt = optimizer(client)
    history = example_fashion_mnist_history()
    first = opt.ask(history)
    second = opt.ask(history)
    # what the parser makes of Gemma's real continuations
    assert [p.template for p in first] == ["a photo of an {}.", "the {}."]
    assert [r.code for r in opt.rounds[0].rejected] == ["no_placeholder"]
    assert [p.template for p in second] == ["a photo of a {} (100% error rate)"]
    assert [r.code for r in opt.rounds[1].rejected] == ["tried"]  # round 0's template again
    assert [r.replies for r in opt.rounds] == [e.response.texts for e in cassette]
    # the ledger sees the recorded usage
    assert client.ledger.calls == 2
    assert client.ledger.completion_tokens == sum(e.response.completion_tokens for e in cassette)
    # a third round was never recorded
    with pytest.raises(ReplayMiss, match="gemma-3-270m"):
        opt.ask(history)
    assert len(opt.rounds) == 2


def test_a_different_meta_prompt_is_a_replay_miss():
    opt = LLMPromptOptimizer(ReplayingClient(CASSETTE), task=FASHION_MNIST_TASK, seed=0, temperature=0.7,
                             max_tokens=128, n_proposals=4)
    with pytest.raises(ReplayMiss, match="no such request"):
        opt.ask(example_fashion_mnist_history())
    assert opt.rounds == ()
