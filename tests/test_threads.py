"""torch's thread count: CPU affinity minus a running LLM server's threads, overridable."""
from __future__ import annotations

import os
from types import SimpleNamespace

import pytest
import torch

from catalyst_nb.threads import (
    THREADS_ENV,
    assign_process_threads,
    available_cpus,
    configure_torch_threads,
    free_cpus,
    llm_server_threads,
    server_threads,
    torch_thread_count,
    worker_threads,
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
    monkeypatch.setattr("catalyst_nb.threads.free_cpus", lambda: 6)  # an idle machine
    before = torch.get_num_threads()
    try:
        server = SimpleNamespace(is_running=True, n_threads=2)
        assert configure_torch_threads(llm_server=server) == 4 == torch.get_num_threads()
        assert configure_torch_threads(threads=1) == 1 == torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


def test_a_server_that_lends_its_cores_reserves_none():
    assert llm_server_threads(SimpleNamespace(is_running=True, n_threads=2, lends_cores=True)) == 0
    assert torch_thread_count(cpus=2, llm_threads=0, environ={}) == 2


def test_worker_share_and_the_users_choice():
    assert worker_threads(2, cpus=2, environ={}) == 1
    assert worker_threads(3, cpus=8, environ={}) == 2
    assert worker_threads(4, cpus=2, environ={}) == 1
    assert worker_threads(2, cpus=8, environ={THREADS_ENV: "3"}) == 3
    with pytest.raises(ValueError, match="workers=0"):
        worker_threads(0)


def test_assigned_threads_are_not_taken_back_downstream(monkeypatch):
    monkeypatch.delenv(THREADS_ENV, raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "")
    monkeypatch.setattr("catalyst_nb.threads.available_cpus", lambda: 6)
    before = torch.get_num_threads()
    try:
        assert assign_process_threads(1) == 1 == torch.get_num_threads()
        assert configure_torch_threads() == 1 == torch.get_num_threads()  # what the run layer calls
        assert os.environ[THREADS_ENV] == "1"  # and processes started from here inherit it
    finally:
        torch.set_num_threads(before)
    with pytest.raises(ValueError, match="n=0"):
        assign_process_threads(0)


def test_free_cpus_counts_idle_and_niced_time_of_our_cpus(monkeypatch):
    samples = iter([
        "cpu  0 0 0 0\ncpu0 100 0 0 100 0 0 0 0\ncpu1 100 0 0 100 0 0 0 0\ncpu7 0 0 0 0 0 0 0 0\n",
        # 100 jiffies later: cpu0 all busy, cpu1 idle half and niced half (free); cpu7 is not ours
        "cpu  0 0 0 0\ncpu0 200 0 0 100 0 0 0 0\ncpu1 100 50 0 150 0 0 0 0\ncpu7 0 0 0 900 0 0 0 0\n",
    ])

    class Stat:
        def __init__(self, *a, **k):
            self.text = next(samples)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def read(self):
            return self.text

    monkeypatch.setattr("catalyst_nb.threads.os.sched_getaffinity", lambda pid: {0, 1})
    monkeypatch.setattr("builtins.open", Stat)
    assert free_cpus(interval=0.0) == 1


def test_free_cpus_is_between_one_and_the_available_cpus():
    assert 1 <= free_cpus(interval=0.05) <= available_cpus()


def test_a_lending_server_gets_the_free_cpus(monkeypatch):
    monkeypatch.setattr("catalyst_nb.threads.free_cpus", lambda: 1)  # a busy machine
    assert server_threads() == 1
    assert server_threads(cpus=4) == 4
