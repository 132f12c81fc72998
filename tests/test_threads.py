"""torch's thread count: CPU affinity minus a running LLM server's threads, overridable."""
from __future__ import annotations

import os
from types import SimpleNamespace

import pytest
import torch

from catalyst_nb.threads import (
    THREADS_ENV,
    available_cpus,
    configure_torch_threads,
    llm_server_threads,
    torch_thread_count,
)


def test_available_cpus_is_the_affinity_mask():
    assert available_cpus() == len(os.sched_getaffinity(0))


def test_llm_threads_are_subtracted_and_at_least_one_remains():
    assert torch_thread_count(cpus=8, llm_threads=3, environ={}) == 5
    assert torch_thread_count(cpus=8, environ={}) == 8
    assert torch_thread_count(cpus=2, llm_threads=4, environ={}) == 1


def test_explicit_choice_wins_then_the_environment():
    assert torch_thread_count(threads=3, cpus=8, llm_threads=6, environ={THREADS_ENV: "5"}) == 3
    assert torch_thread_count(cpus=8, llm_threads=6, environ={THREADS_ENV: "5"}) == 5


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"threads": 0}, "threads=0"),
        ({"environ": {THREADS_ENV: "many"}}, "'many'"),
        ({"environ": {THREADS_ENV: "-2"}}, "'-2'"),
        ({"llm_threads": -1, "environ": {}}, "llm_threads=-1"),
    ],
)
def test_bad_values_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        torch_thread_count(**kwargs)


def test_llm_server_threads():
    assert llm_server_threads(None) == 0
    assert llm_server_threads(SimpleNamespace(is_running=False, n_threads=4)) == 0
    assert llm_server_threads(SimpleNamespace(is_running=True, n_threads=3)) == 3
    assert llm_server_threads(SimpleNamespace(is_running=True, n_threads=None)) == max((os.cpu_count() or 1) // 2, 1)


def test_configure_sets_torch_and_leaves_room_for_the_server(monkeypatch):
    monkeypatch.delenv(THREADS_ENV, raising=False)
    monkeypatch.setattr("catalyst_nb.threads.available_cpus", lambda: 6)
    before = torch.get_num_threads()
    try:
        server = SimpleNamespace(is_running=True, n_threads=2)
        assert configure_torch_threads(llm_server=server) == 4 == torch.get_num_threads()
        assert configure_torch_threads(threads=1) == 1 == torch.get_num_threads()
    finally:
        torch.set_num_threads(before)
