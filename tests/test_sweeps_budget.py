"""The sweep's time budget line: cells done, time per cell, time left (no model loads)."""
from __future__ import annotations

import pytest

from catalyst_nb.sweeps import LocalExecutor, SweepBudget, SweepConfig, run_sweep
from sweep_fakes import fake_execute


def test_budget_counts_cells_and_extrapolates_the_wall_time(monkeypatch):
    clock = iter([100.0, 160.0, 220.0])
    monkeypatch.setattr("catalyst_nb.sweeps.budget.time.perf_counter", lambda: next(clock))
    budget = SweepBudget(total=10, skipped=2)  # started at 100 s
    budget.record(50.0)
    budget.record(70.0, failed=True)
    assert (budget.done, budget.failed, budget.remaining, budget.per_cell) == (2, 1, 6, 60.0)
    assert budget.time_left == pytest.approx(6 * 60.0 / 2)  # 60 s of wall time for 2 cells so far
    # read at 220 s: 2 cells in 120 s of wall time, 6 to go
    assert budget.line() == "sweep 4/10 cells (2 skipped, 1 failed): 60.0 s per cell, 2.0 min so far, about 6.0 min left"


def test_budget_before_the_first_cell_and_bad_counts():
    assert SweepBudget(total=3).line().startswith("sweep 0/3 cells: ")
    with pytest.raises(ValueError, match="skipped=4"):
        SweepBudget(total=3, skipped=4)


def test_sweep_reports_its_budget_after_every_cell(tmp_path):
    config = SweepConfig.from_dict({
        "sweep": {"name": "fake"}, "defaults": {"steps": 4, "llm": "none"},
        "grid": {"data": ["embedded"], "shots": [1], "seed": [1, 2, 3]},
        "methods": {"coop": {"method": "coop"}},
    })
    seen = []
    run_sweep(config, tmp_path / "s", executor=LocalExecutor(), cell_fn=fake_execute, progress=False,
              on_budget=lambda b: seen.append((b.done, b.remaining, b.line())))
    assert [(d, r) for d, r, _ in seen] == [(1, 2), (2, 1), (3, 0)]
    assert seen[-1][2].startswith("sweep 3/3 cells: ") and "about 0.0 min left" in seen[-1][2]
    again = []
    run_sweep(config, tmp_path / "s", executor=LocalExecutor(), cell_fn=fake_execute, progress=False,
              on_budget=lambda b: again.append(b))
    assert again == []  # nothing ran: every cell was already done
