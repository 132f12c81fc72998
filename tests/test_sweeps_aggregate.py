"""Aggregation as plain data: means and stds over seeds, collapsed-run flags, base-to-new groups, the
lines of the figure and the Markdown table, from hand-made outcomes with known answers."""
from __future__ import annotations

import statistics

import pytest

from catalyst_nb.sweeps import (CellOutcome, SweepConfig, expand, figure_series, flag_collapsed, group_rows,
                                markdown_table, result_rows)
from catalyst_nb.sweeps.figure import draw_figure

ZERO = {1: 0.60, 2: 0.62, 3: 0.61}
COOP = {1: 0.80, 2: float("nan"), 3: 0.45}  # seed 2 NaN, seed 3 far below zero-shot
CAT = {1: 0.55, 2: 0.58, 3: 0.56}           # below zero-shot but within the 0.1 margin


def _setup(*, b2n=False):
    grid = {"shots": [4], "seed": [1, 2, 3]}
    if b2n:
        grid["base_to_new"] = [False, True]
    config = SweepConfig.from_dict({"defaults": {"llm": "none"}, "grid": grid, "methods": {
        "zero-shot": {"method": "zero-shot"}, "coop": {"method": "coop"}, "cat": {"method": "catalyst", "llm": "local"}}})
    cells = expand(config)
    values = {"zero-shot": ZERO, "coop": COOP, "cat": CAT}
    outcomes = {}
    for cell in cells:
        acc = values[cell.label][cell.axes["seed"]]
        summary = {"test_accuracy": acc, "llm": {"calls": 4, "valid": 3, "chosen": 1} if cell.label == "cat" else {}}
        if cell.axes.get("base_to_new"):
            new = acc - 0.2
            summary.update(base_accuracy=acc, new_accuracy=new, harmonic_mean=2 * acc * new / (acc + new))
        outcomes[cell.cell_id] = CellOutcome(cell.cell_id, "done", summary=summary)
    return config, cells, outcomes


def test_rows_flag_nan_and_far_below_zero_shot_only():
    config, cells, outcomes = _setup()
    rows = flag_collapsed(result_rows(cells, outcomes), margin=0.1, axes=list(cells[0].axes))
    flags = {(r["label"], r["seed"]): r["collapsed"] for r in rows}
    assert flags[("coop", 1)] is False and flags[("coop", 2)] is True and flags[("coop", 3)] is True
    assert not any(flags[("cat", s)] for s in (1, 2, 3))  # 0.55 vs 0.60 is within the margin
    assert {r["zero_shot_reference"] for r in rows if r["seed"] == 2} == {0.62}
    strict = flag_collapsed(result_rows(cells, outcomes), margin=0.0, axes=list(cells[0].axes))
    assert all(r["collapsed"] for r in strict if r["label"] == "cat")


def test_groups_mean_std_and_seed_count_over_finite_values():
    config, cells, outcomes = _setup()
    del outcomes["cat__4shot__seed3"]  # not run yet
    rows = flag_collapsed(result_rows(cells, outcomes), margin=0.1, axes=list(cells[0].axes))
    groups = {g["label"]: g for g in group_rows(rows, axes=list(cells[0].axes))}
    zero = groups["zero-shot"]["test"]
    assert zero["mean"] == pytest.approx(0.61) and zero["std"] == pytest.approx(statistics.stdev(ZERO.values()))
    assert zero["n"] == 3
    coop = groups["coop"]
    assert coop["test"]["n"] == 2 and coop["test"]["mean"] == pytest.approx((0.80 + 0.45) / 2)  # collapsed counts, NaN cannot
    assert coop["collapsed"] == ["seed 2", "seed 3"]
    cat = groups["cat"]
    assert cat["pending"] == 1 and cat["test"]["n"] == 2 and cat["llm"] == {"calls": 8, "valid": 6, "chosen": 2}
    table = markdown_table(list(groups.values()))
    assert "| coop | 4 | 62.50 ± 24.75 | 2 |" in table and "collapsed: seed 2, seed 3" in table
    assert "not run: 1" in table and "2 / 6 / 8" in table


def test_base_to_new_cells_fill_their_own_columns():
    config, cells, outcomes = _setup(b2n=True)
    rows = flag_collapsed(result_rows(cells, outcomes), margin=0.1, axes=list(cells[0].axes))
    groups = group_rows(rows, axes=list(cells[0].axes))
    assert len(groups) == 3  # base_to_new is not a row of its own: its numbers are columns
    zero = groups[0]
    hms = [2 * a * (a - 0.2) / (2 * a - 0.2) for a in ZERO.values()]
    assert zero["harmonic_mean"]["mean"] == pytest.approx(statistics.fmean(hms))
    assert zero["test"]["mean"] == pytest.approx(0.61) and zero["new"]["mean"] == pytest.approx(0.41)
    table = markdown_table(groups, base_to_new=True)
    assert "HM (%)" in table.splitlines()[0] and "Test acc." in table.splitlines()[0]
    assert "Test acc." not in markdown_table(groups, base_to_new=True, all_classes=False)
    assert f"{100 * statistics.fmean(hms):.2f}" in table
    # b2n collapse is judged on the harmonic mean against zero-shot's
    coop_b2n = [r for r in rows if r["label"] == "coop" and r["base_to_new"]]
    assert [r["collapsed"] for r in coop_b2n] == [False, True, True]


def test_figure_lines_sorted_by_shots_and_drawn():
    groups = [
        {"label": "coop", "axes": {"shots": 16}, "test": {"mean": 0.9, "std": 0.01, "n": 3}},
        {"label": "coop", "axes": {"shots": 1}, "test": {"mean": 0.7, "std": 0.02, "n": 3}},
        {"label": "zs", "axes": {"shots": 1}, "test": {"mean": None, "std": None, "n": 0}},
    ]
    lines = figure_series(groups)
    assert lines == [{"name": "coop", "shots": [1, 16], "mean": [0.7, 0.9], "std": [0.02, 0.01], "n": [3, 3]}]
    fig = draw_figure([("test accuracy", lines), ("empty", [])])
    assert len(fig.data) == 1 and list(fig.data[0].error_y.array) == pytest.approx([2.0, 1.0])
    with pytest.raises(ValueError, match="metric"):
        figure_series(groups, metric="loss")


def test_failed_cells_show_in_rows_and_flags():
    config, cells, outcomes = _setup()
    outcomes["coop__4shot__seed1"] = CellOutcome("coop__4shot__seed1", "failed", error="RuntimeError: x")
    rows = flag_collapsed(result_rows(cells, outcomes), margin=0.1, axes=list(cells[0].axes))
    row = next(r for r in rows if r["cell_id"] == "coop__4shot__seed1")
    assert row["status"] == "failed" and row["collapsed"] is None and row["test_accuracy"] is None
    group = next(g for g in group_rows(rows, axes=list(cells[0].axes)) if g["label"] == "coop")
    assert group["failed"] == ["seed 1"] and group["test"]["n"] == 1
