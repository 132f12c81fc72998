"""The sweep loop with a stand-in cell function: skipping, resuming, failing cells, foreign folders,
worker processes and the shared LLM server (no model loads here; the real runs are in the integration test)."""
from __future__ import annotations

import csv
import json
import math
import os

import pytest

from catalyst_nb.sweeps import LocalExecutor, SweepConfig, SweepFolderError, run_sweep
from sweep_fakes import accuracy, fake_execute


def _config(**grid):
    return SweepConfig.from_dict({
        "sweep": {"name": "fake"},
        "defaults": {"steps": 4, "llm": "none"},
        "grid": {"data": ["embedded"], "shots": [1, 4], "seed": [1, 2, 3], **grid},
        "methods": {"zero-shot": {"method": "zero-shot"}, "coop": {"method": "coop"},
                    "catalyst": {"method": "catalyst", "llm": "local"}},
    })


def _calls(folder, cell_id):
    path = folder / "cells" / cell_id / "calls.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


class FakeServer:
    """Counts starts; stands in for the local LLM server the executor shares."""

    started = 0
    independent_requests = True

    def __init__(self):
        self.base_url = "http://127.0.0.1:9/v1"

    def __enter__(self):
        FakeServer.started += 1
        return self

    def __exit__(self, *exc):
        return False


@pytest.fixture
def executor():
    FakeServer.started = 0
    return LocalExecutor(llm_server_factory=FakeServer)


def test_sweep_runs_every_cell_then_a_rerun_skips_them(tmp_path, executor):
    out = tmp_path / "sweep"
    result = run_sweep(_config(), out, executor=executor, cell_fn=fake_execute, progress=False)
    # zero-shot never reads the few-shot images: its 4-shot cells take the 1-shot runs
    assert (result.ran, result.skipped, result.shared, result.failed) == (15, 0, 3, 0)
    assert {p.name for p in out.iterdir()} >= {"sweep.json", "cells", "results.csv", "table.md", "figure.html"}
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert len(rows) == 18 and {r["status"] for r in rows} == {"done"}
    coop = next(r for r in rows if r["cell_id"] == "coop__embedded__4shot__seed3")
    assert float(coop["test_accuracy"]) == pytest.approx(accuracy("coop", 4, 3))
    # one shared server for the sweep, its URL handed to the LLM cells only
    assert FakeServer.started == 1
    summaries = {c: json.loads((out / "cells" / c / "summary.json").read_text()) for c in (r["cell_id"] for r in rows)}
    assert {s["llm_url"] for c, s in summaries.items() if c.startswith("catalyst")} == {"http://127.0.0.1:9/v1"}
    assert {s["llm_url"] for c, s in summaries.items() if not c.startswith("catalyst")} == {None}
    table = (out / "table.md").read_text()
    mean = sum(accuracy("coop", 4, s) for s in (1, 2, 3)) / 3
    assert f"| coop | 4 | {100 * mean:.2f} ± 0.10 | 3 |" in table
    assert "<html>" in (out / "figure.html").read_text()[:200].lower()

    again = run_sweep(_config(), out, executor=executor, cell_fn=fake_execute, progress=False)
    assert (again.ran, again.skipped, again.shared) == (0, 15, 3)
    assert len(_calls(out, "coop__embedded__1shot__seed1")) == 1  # not called a second time
    assert FakeServer.started == 1  # nothing to run: no server started
    assert again.table == result.table


def test_failing_cell_is_recorded_and_retried_with_resume(tmp_path, executor, monkeypatch):
    out = tmp_path / "sweep"
    flag = tmp_path / "fail"
    flag.write_text("coop:4:2")
    monkeypatch.setenv("SWEEP_FAKE_FAIL", str(flag))
    result = run_sweep(_config(), out, executor=executor, cell_fn=fake_execute, progress=False)
    assert (result.ran, result.failed) == (15, 1)
    row = next(r for r in result.rows if r["cell_id"] == "coop__embedded__4shot__seed2")
    assert row["status"] == "failed" and "injected failure" in row["error"]
    trace = (out / "cells" / row["cell_id"] / "error.txt").read_text()
    assert "Traceback" in trace and "RuntimeError: injected failure" in trace
    assert "failed: seed 2" in result.table
    assert sum(r["status"] == "done" for r in result.rows) == 17  # the others went on

    flag.unlink()
    again = run_sweep(_config(), out, executor=executor, cell_fn=fake_execute, progress=False)
    assert (again.ran, again.skipped, again.failed) == (1, 14, 0)
    assert [c["resume"] for c in _calls(out, row["cell_id"])] == [False, True]  # its state was left: resumed
    assert not (out / "cells" / row["cell_id"] / "error.txt").exists()
    assert "failed" not in again.table


def test_interrupted_cell_resumes_and_new_cells_start_fresh(tmp_path, executor):
    out = tmp_path / "sweep"
    config = _config(shots=[1])
    run_sweep(config, out, executor=executor, cell_fn=fake_execute, progress=False)
    cell = out / "cells" / "coop__embedded__1shot__seed1"
    (cell / "summary.json").unlink()  # as if the run stopped before finishing
    (cell / "outcome.json").unlink()
    again = run_sweep(config, out, executor=executor, cell_fn=fake_execute, progress=False)
    assert again.ran == 1 and [c["resume"] for c in _calls(out, cell.name)] == [False, True]


def test_folder_of_another_config_is_refused_unless_forced(tmp_path, executor):
    out = tmp_path / "sweep"
    run_sweep(_config(shots=[1]), out, executor=executor, cell_fn=fake_execute, progress=False)
    changed = SweepConfig.from_dict({**_config(shots=[1]).source, "defaults": {"steps": 5, "llm": "none"}})
    with pytest.raises(SweepFolderError, match="different config"):
        run_sweep(changed, out, executor=executor, cell_fn=fake_execute, progress=False)
    forced = run_sweep(changed, out, executor=executor, cell_fn=fake_execute, force=True, progress=False)
    # zero-shot and coop cells changed (steps), the catalyst cells set their own llm but share steps too
    assert forced.ran == 9 and forced.skipped == 0
    more_seeds = _config(shots=[1], seed=[1, 2, 3, 4])
    with pytest.raises(SweepFolderError):
        run_sweep(more_seeds, out, executor=executor, cell_fn=fake_execute, progress=False)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(SweepFolderError, match="not a sweep folder"):
        run_sweep(_config(), tmp_path / "other", executor=executor, cell_fn=fake_execute, progress=False)


def test_force_keeps_cells_whose_settings_did_not_change(tmp_path, executor):
    out = tmp_path / "sweep"
    run_sweep(_config(shots=[1], seed=[1, 2]), out, executor=executor, cell_fn=fake_execute, progress=False)
    grown = run_sweep(_config(shots=[1], seed=[1, 2, 3]), out, executor=executor, cell_fn=fake_execute,
                      force=True, progress=False)
    assert (grown.ran, grown.skipped) == (3, 6)


def test_worker_processes_give_the_same_table(tmp_path):
    config = _config(shots=[1], seed=[1, 2])
    config = SweepConfig.from_dict({**config.source, "methods": {"zero-shot": {"method": "zero-shot"},
                                                                  "coop": {"method": "coop", "lr": 9.0}}})
    one = run_sweep(config, tmp_path / "one", executor=LocalExecutor(jobs=1), cell_fn=fake_execute, progress=False)
    two = run_sweep(config, tmp_path / "two", executor=LocalExecutor(jobs=2), cell_fn=fake_execute, progress=False)
    assert one.table == two.table
    pids = {c["pid"] for cell in ("coop__embedded__1shot__seed1", "coop__embedded__1shot__seed2")
            for c in _calls(tmp_path / "two", cell)}
    import os

    assert os.getpid() not in pids  # the cells ran in worker processes
    assert "collapsed: seed 1, seed 2" in two.table  # NaN accuracies are flagged, not averaged
    assert all(math.isnan(r["test_accuracy"]) for r in two.rows if r["method"] == "coop")


def test_each_worker_serves_its_cells_from_its_own_llm_server(tmp_path):
    """With ``jobs`` > 1 an LLM cell talks to the server of the worker that runs it (one shared server
    was the sweep's bottleneck), and cells without an LLM get none."""
    from sweep_fakes import PidServer

    out = tmp_path / "sweep"
    result = run_sweep(_config(shots=[1], seed=[1, 2, 3]), out, executor=LocalExecutor(jobs=2, llm_server_factory=PidServer),
                       cell_fn=fake_execute, progress=False)
    assert result.failed == 0 and result.ran == 9
    urls = {}
    for cell in (p.name for p in (out / "cells").iterdir()):
        summary = json.loads((out / "cells" / cell / "summary.json").read_text())
        (pid,) = {c["pid"] for c in _calls(out, cell)}
        if cell.startswith("catalyst"):
            assert summary["llm_url"] == f"http://127.0.0.1:{10000 + pid % 50000}/v1"
            urls[pid] = summary["llm_url"]
        else:
            assert summary["llm_url"] is None
    assert 1 <= len(urls) <= 2


def test_jobs_must_be_positive():
    with pytest.raises(ValueError, match="jobs must be an int >= 1, got 0"):
        LocalExecutor(jobs=0)


def test_a_cell_whose_summary_was_deleted_is_resumed_not_counted_done(tmp_path, executor):
    out = tmp_path / "sweep"
    run_sweep(_config(), out, executor=executor, cell_fn=fake_execute, progress=False)
    cell = out / "cells" / "coop__embedded__4shot__seed2"
    (cell / "summary.json").unlink()  # outcome.json still says done
    again = run_sweep(_config(), out, executor=executor, cell_fn=fake_execute, progress=False)
    assert (again.ran, again.skipped) == (1, 14)
    assert _calls(out, "coop__embedded__4shot__seed2")[-1]["resume"] is True
    assert json.loads((cell / "summary.json").read_text())["test_accuracy"] == pytest.approx(accuracy("coop", 4, 2))


def test_workers_keep_the_threads_their_executor_gave_them(tmp_path, monkeypatch):
    """The run layer's own thread setting must not take a worker's share back (2 workers x all CPUs)."""
    from catalyst_nb.sweeps.cell import CellTask
    from catalyst_nb.threads import THREADS_ENV, available_cpus, worker_threads
    from sweep_fakes import threads_execute

    monkeypatch.delenv(THREADS_ENV, raising=False)  # the executor decides, not the caller's environment
    settings = {"method": "coop", "data": "embedded", "shots": 1, "steps": 4, "llm": "none"}
    tasks = [CellTask(f"c{seed}", {**settings, "seed": seed}, str(tmp_path / f"c{seed}")) for seed in (1, 2, 3)]
    outcomes = list(LocalExecutor(jobs=2).run(tasks, threads_execute))
    assert [o.status for o in outcomes] == ["done"] * 3, [o.error for o in outcomes]
    share = worker_threads(2, environ={})
    assert {o.summary["torch_threads"] for o in outcomes} == {share}
    assert share * 2 <= max(available_cpus(), 2)


def test_cells_that_would_repeat_a_run_take_its_result(tmp_path, executor, monkeypatch):
    """Zero-shot and LLM-only never read the few-shot images: one run per seed serves every shot count."""
    config = SweepConfig.from_dict({
        "sweep": {"name": "shared"},
        "defaults": {"steps": 4, "llm": "none"},
        "grid": {"shots": [1, 4, 16], "seed": [1, 2]},
        "methods": {"zero-shot": {"method": "zero-shot"}, "llm-only": {"method": "llm-only", "llm": "local"},
                    "coop": {"method": "coop"}},
    })
    out = tmp_path / "sweep"
    lines = []
    result = run_sweep(config, out, executor=executor, cell_fn=fake_execute, progress=False,
                       on_budget=lambda b: lines.append(b.line()))
    assert (result.ran, result.shared, result.failed) == (10, 8, 0)
    assert lines[0].startswith("sweep 9/18 cells (8 shared)") and lines[-1].startswith("sweep 18/18 cells (8 shared)")
    rows = {r["cell_id"]: r for r in result.rows}
    assert len(rows) == 18 and {r["status"] for r in rows.values()} == {"done"}
    for method in ("zero-shot", "llm-only"):
        for seed in (1, 2):
            ran = out / "cells" / f"{method}__1shot__seed{seed}"
            assert len(_calls(out, ran.name)) == 1
            for shots in (4, 16):
                cell = f"{method}__{shots}shot__seed{seed}"
                assert _calls(out, cell) == []  # never ran
                assert rows[cell]["test_accuracy"] == rows[ran.name]["test_accuracy"]
                assert rows[cell]["shots"] == shots
                summary = json.loads((out / "cells" / cell / "summary.json").read_text())
                assert summary["same_run_as"] == ran.name and summary["shots"] == shots
    assert len(_calls(out, "coop__16shot__seed2")) == 1  # coop reads the shots: every cell runs

    again = run_sweep(config, out, executor=executor, cell_fn=fake_execute, progress=False)
    assert (again.ran, again.skipped, again.shared) == (0, 10, 8) and again.table == result.table


def test_a_failed_shared_run_fails_the_cells_that_share_it(tmp_path, executor, monkeypatch):
    flag = tmp_path / "fail"
    flag.write_text("zero-shot:1:2")
    monkeypatch.setenv("SWEEP_FAKE_FAIL", str(flag))
    out = tmp_path / "sweep"
    result = run_sweep(_config(), out, executor=executor, cell_fn=fake_execute, progress=False)
    rows = {r["cell_id"]: r for r in result.rows}
    assert rows["zero-shot__embedded__4shot__seed2"]["status"] == "failed"
    assert "zero-shot__embedded__1shot__seed2" in rows["zero-shot__embedded__4shot__seed2"]["error"]
    flag.unlink()
    again = run_sweep(_config(), out, executor=executor, cell_fn=fake_execute, progress=False)
    assert again.ran == 1 and {r["status"] for r in again.rows} == {"done"}


def test_each_chat_cell_gets_a_chat_server_of_its_own_and_gemma_cells_share_their_workers(tmp_path, monkeypatch):
    """Cells with ``llm = "local-chat"`` each start and stop a chat server in the worker that runs them
    (kept across cells, llama-cpp-python's server answered a cell differently after other cells); Gemma
    cells share their worker's one server, whose answers depend on each request alone."""
    from sweep_fakes import ChatPidServer, PidServer

    starts = tmp_path / "starts"
    monkeypatch.setenv("SWEEP_FAKE_STARTS", str(starts))
    config = SweepConfig.from_dict({
        "sweep": {"name": "chat"},
        "defaults": {"steps": 4},
        "grid": {"shots": [1, 4], "seed": [1, 2, 3]},
        "methods": {"coop": {"method": "coop", "llm": "none"},
                    "catalyst (gemma)": {"method": "catalyst", "llm": "local"},
                    "catalyst (qwen)": {"method": "catalyst", "llm": "local-chat"}},
    })
    out = tmp_path / "sweep"
    result = run_sweep(config, out, executor=LocalExecutor(jobs=2, llm_server_factory=PidServer,
                                                           chat_server_factory=ChatPidServer),
                       cell_fn=fake_execute, progress=False)
    assert result.failed == 0 and result.ran == 18
    workers, qwen_workers = set(), []
    for cell in (p.name for p in (out / "cells").iterdir()):
        url = json.loads((out / "cells" / cell / "summary.json").read_text())["llm_url"]
        (pid,) = {c["pid"] for c in _calls(out, cell)}
        workers.add(pid)
        port = 10000 + pid % 50000
        expected = {"coop": None, "catalyst-gemma": f"http://127.0.0.1:{port}/v1",
                    "catalyst-qwen": f"http://127.0.0.1:{port}/chat/v1"}[cell.split("__")[0]]
        assert url == expected, cell
        if cell.startswith("catalyst-qwen"):
            qwen_workers.append(pid)
    events = [line.split() for line in starts.read_text().splitlines()]
    # one start and one stop per chat cell, in the worker that ran it, each stop right after its start
    assert sorted(int(pid) for kind, pid in events if kind == "start") == sorted(qwen_workers)
    by_worker: dict[str, list[str]] = {}
    for kind, pid in events:
        by_worker.setdefault(pid, []).append(kind)
    assert all(kinds == ["start", "stop"] * (len(kinds) // 2) for kinds in by_worker.values()), by_worker


def test_one_cell_at_a_time_shares_the_gemma_server_and_starts_a_chat_server_per_cell(tmp_path, monkeypatch):
    from sweep_fakes import ChatPidServer, PidServer

    starts = tmp_path / "starts"
    monkeypatch.setenv("SWEEP_FAKE_STARTS", str(starts))

    config = SweepConfig.from_dict({
        "sweep": {"name": "chat1"}, "defaults": {"steps": 4}, "grid": {"shots": [1], "seed": [1, 2]},
        "methods": {"gemma": {"method": "llm-only", "llm": "local"}, "qwen": {"method": "llm-only", "llm": "local-chat"}},
    })
    result = run_sweep(config, tmp_path / "s", executor=LocalExecutor(llm_server_factory=PidServer,
                                                                      chat_server_factory=ChatPidServer),
                       cell_fn=fake_execute, progress=False)
    urls = {r["cell_id"]: json.loads((tmp_path / "s" / "cells" / r["cell_id"] / "summary.json").read_text())["llm_url"]
            for r in result.rows}
    assert {urls["gemma__1shot__seed1"], urls["gemma__1shot__seed2"]} == {PidServer().base_url}
    assert {urls["qwen__1shot__seed1"], urls["qwen__1shot__seed2"]} == {ChatPidServer().base_url}
    # the chat model's server, which does not say its answers are independent of earlier requests, was
    # started and stopped once per cell; the Gemma one once for the sweep
    assert starts.read_text().splitlines() == [f"{kind} {os.getpid()}" for kind in ("start", "stop") * 2]
