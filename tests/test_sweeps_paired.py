"""Paired statistics: the t quantile against published values, the interval's coverage by simulation,
and a synthetic sweep grid with a known difference (found, interval excludes 0) and a known null
(marked not distinguishable), through the table, results.csv and the figure's lines."""
from __future__ import annotations

import csv
import random

import pytest

from catalyst_nb.sweeps import CellOutcome, SweepConfig, SweepConfigError, expand, run_sweep
from catalyst_nb.sweeps.aggregate import compare_to_baseline, difference_series, flag_collapsed, group_rows, \
    paired_columns, result_rows
from catalyst_nb.sweeps.paired import paired_difference, student_t_cdf, student_t_quantile
from catalyst_nb.sweeps.table import markdown_table


@pytest.mark.parametrize("df, expected", [(1, 12.706205), (2, 4.302653), (4, 2.776445), (9, 2.262157), (29, 2.045230),
                                          (1000, 1.962339)])
def test_t_quantile_matches_published_table(df, expected):
    assert student_t_quantile(0.975, df) == pytest.approx(expected, abs=2e-6)
    assert student_t_cdf(expected, df) == pytest.approx(0.975, abs=1e-7)
    assert student_t_quantile(0.025, df) == pytest.approx(-expected, abs=2e-6)


def test_interval_by_hand_and_edge_cases():
    base = {1: 0.80, 2: 0.81, 3: 0.79, 4: 0.80}
    method = {1: 0.82, 2: 0.82, 3: 0.82, 4: 0.83, 5: 0.99}  # seed 5 has no partner: left out
    stat = paired_difference(method, base)
    diffs = [0.02, 0.01, 0.03, 0.03]
    mean = sum(diffs) / 4
    sd = (sum((d - mean) ** 2 for d in diffs) / 3) ** 0.5
    half = 3.182446 * sd / 2
    assert stat.n == 4 and stat.mean == pytest.approx(mean)
    assert (stat.low, stat.high) == (pytest.approx(mean - half, abs=1e-6), pytest.approx(mean + half, abs=1e-6))
    assert (stat.wins, stat.ties, stat.losses) == (4, 0, 0) and stat.distinguishable is True
    one = paired_difference({1: 0.9}, {1: 0.8, 2: 0.7})
    assert one.n == 1 and one.low is None and one.distinguishable is None
    nan = paired_difference({1: float("nan"), 2: 0.8}, {1: 0.8, 2: 0.8})
    assert nan.n == 1 and (nan.wins, nan.ties, nan.losses) == (0, 1, 0)
    with pytest.raises(ValueError, match="confidence"):
        paired_difference(method, base, confidence=95)


def test_interval_covers_the_true_difference_about_95_percent_of_the_time():
    rng = random.Random(7)
    true, covered, trials = 0.004, 0, 4000
    for _ in range(trials):
        base = {s: rng.gauss(0.8, 0.01) for s in range(5)}
        method = {s: base[s] + true + rng.gauss(0, 0.003) for s in range(5)}
        stat = paired_difference(method, base)
        covered += stat.low <= true <= stat.high
    assert 0.935 <= covered / trials <= 0.965


# ---- a synthetic sweep grid: "better" is CoOp + 1 point on every seed (with seed-to-seed spread of its own),
# "same" is CoOp plus noise around 0; CoOp itself varies by 3 points between seeds, so mean ± std cannot tell
COOP = {1: 0.80, 2: 0.83, 3: 0.77, 4: 0.81, 5: 0.79}
BETTER = {s: v + 0.010 + d for (s, v), d in zip(COOP.items(), (0.001, -0.002, 0.002, 0.0, -0.001))}
SAME = {s: v + d for (s, v), d in zip(COOP.items(), (0.004, -0.006, 0.002, -0.003, 0.003))}


def _config(baseline="coop", b2n=False):
    grid = {"shots": [4, 16], "seed": [1, 2, 3, 4, 5]}
    if b2n:
        grid["base_to_new"] = [False, True]
    return SweepConfig.from_dict({
        "sweep": {"baseline": baseline}, "defaults": {"llm": "none"}, "grid": grid,
        "methods": {"coop": {"method": "coop"}, "better": {"method": "projection-restarts"},
                    "same": {"method": "catalyst", "llm": "local"}}})


def _outcomes(cells):
    values = {"coop": COOP, "better": BETTER, "same": SAME}
    out = {}
    for cell in cells:
        acc = values[cell.label][cell.axes["seed"]]
        summary = {"test_accuracy": acc}
        if cell.axes.get("base_to_new"):
            summary.update(base_accuracy=acc, new_accuracy=acc, harmonic_mean=acc)
        out[cell.cell_id] = CellOutcome(cell.cell_id, "done", summary=summary)
    return out


def _groups(config):
    cells = expand(config)
    axes = list(cells[0].axes)
    rows = flag_collapsed(result_rows(cells, _outcomes(cells)), margin=0.5, axes=axes)
    groups = compare_to_baseline(group_rows(rows, axes=axes), config.baseline)
    return rows, groups, axes


def test_known_difference_is_found_and_known_null_is_marked_noise():
    _, groups, _ = _groups(_config())
    by = {(g["label"], g["axes"]["shots"]): g["paired"]["test"] for g in groups}
    for shots in (4, 16):
        better, same = by[("better", shots)], by[("same", shots)]
        assert better.low > 0 and better.low < 0.010 < better.high and better.distinguishable
        assert (better.wins, better.ties, better.losses) == (5, 0, 0)
        assert same.low < 0 < same.high and same.distinguishable is False
        assert by[("coop", shots)] is None
    table = markdown_table(groups, title="t")
    assert "paired t" in table.splitlines()[2] and "95% CI" in table.splitlines()[2]
    better_row = next(line for line in table.splitlines() if line.startswith("| better | 4 "))
    same_row = next(line for line in table.splitlines() if line.startswith("| same | 4 "))
    assert "+1.00 [" in better_row and "n.s." not in better_row and "| 5/0/0 |" in better_row
    assert "n.s." in same_row
    assert "not distinguishable from seed noise" in table


def test_base_to_new_cells_are_paired_on_the_harmonic_mean():
    _, groups, _ = _groups(_config(b2n=True))
    better = next(g for g in groups if g["label"] == "better" and g["axes"]["shots"] == 16)
    assert better["paired"]["harmonic_mean"].mean == pytest.approx(0.010)
    assert better["paired"]["test"].mean == pytest.approx(0.010)
    table = markdown_table(groups, base_to_new=True)
    assert "Δ HM vs coop" in table and "W/T/L (b2n)" in table


def test_rows_carry_their_seed_difference_and_their_groups_interval():
    rows, groups, axes = _groups(_config())
    rows = paired_columns(rows, groups, axes=axes)
    row = next(r for r in rows if r["label"] == "better" and r["shots"] == 4 and r["seed"] == 3)
    assert row["paired_difference"] == pytest.approx(BETTER[3] - COOP[3])
    assert row["baseline"] == "coop" and row["paired_n"] == 5 and row["distinguishable"] is True
    assert row["paired_ci_low"] < row["paired_mean"] < row["paired_ci_high"]
    base_row = next(r for r in rows if r["label"] == "coop")
    assert base_row["paired_mean"] is None and base_row["paired_difference"] is None


def test_figure_lines_hold_the_intervals():
    _, groups, _ = _groups(_config())
    lines = {line["name"]: line for line in difference_series(groups)}
    assert set(lines) == {"better", "same"}
    better = lines["better"]
    assert better["shots"] == [4, 16] and all(lo < m < hi for lo, m, hi in zip(better["low"], better["mean"], better["high"]))


def test_baseline_must_name_a_method():
    with pytest.raises(SweepConfigError, match="baseline must be one of the method labels"):
        _config(baseline="CoOp")


def test_sweep_writes_paired_table_csv_and_figure(tmp_path):
    result = run_sweep(_config(), tmp_path / "sw", cell_fn=lambda task: None, progress=False,
                       executor=_Replay(_outcomes(expand(_config()))))
    with open(result.paths["results"]) as fh:
        rows = list(csv.DictReader(fh))
    assert {"paired_mean", "paired_ci_low", "paired_ci_high", "wins", "ties", "losses", "distinguishable"} <= set(rows[0])
    assert "vs coop" in result.table
    html = result.paths["figure"].read_text()
    assert "minus coop (paired, 95% CI)" in html


class _Replay:
    """An executor that hands back prepared outcomes (the runner's reporting is what is tested)."""

    name = "replay"

    def __init__(self, outcomes):
        self.outcomes = outcomes

    def run(self, tasks, cell_fn=None):
        for task in tasks:
            yield self.outcomes[task.cell_id]
