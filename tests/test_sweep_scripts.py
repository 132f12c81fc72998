"""The sweep-reading benchmark scripts on a synthetic sweep folder with known numbers: a pairing with a
known difference and a known null, and a time split that adds up."""
from __future__ import annotations

import csv
import importlib.util
import json
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _script(name):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _results(folder: Path) -> None:
    """A results.csv: 'b' is 'a' + 2 points on every seed (all classes); on base-to-new 'b' is 'a' +-1 (a null)."""
    rows = []
    for seed in range(1, 6):
        base = 0.80 + 0.01 * seed
        for label, test, hm in (("a", base, base), ("b", base + 0.02, base + (0.01 if seed % 2 else -0.01))):
            rows.append({"label": label, "seed": seed, "shots": 4, "status": "done", "base_to_new": "False",
                         "test_accuracy": test, "harmonic_mean": ""})
            rows.append({"label": label, "seed": seed, "shots": 4, "status": "done", "base_to_new": "True",
                         "test_accuracy": "", "harmonic_mean": hm})
    folder.mkdir(parents=True)
    with open(folder / "results.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def test_paired_methods_finds_a_known_difference_and_a_known_null(tmp_path, capsys):
    _results(tmp_path / "sweep")
    assert _script("paired_methods").main([str(tmp_path / "sweep"), "b", "a"]) == 0
    out = capsys.readouterr().out
    assert "| all classes | 4 | +2.00 [+2.00, +2.00] | 5/0/0 |" in out
    null = next(line for line in out.splitlines() if line.startswith("| base-to-new H | 4 |"))
    assert "n.s." in null and "3/0/2" in null  # +1, -1, +1, -1, +1: an interval around +0.2 that holds 0
    assert _script("paired_methods").main([str(tmp_path / "sweep"), "c", "a"]) == 1  # no such method


def test_sweep_time_splits_each_cell_into_parts_that_add_up(tmp_path, capsys):
    cell = tmp_path / "sweep" / "cells" / "x__seed1"
    cell.mkdir(parents=True)
    (cell / "cell.json").write_text(json.dumps({"label": "catalyst", "cell_id": "x__seed1"}))
    (cell / "summary.json").write_text(json.dumps({"seconds": 10.0}))
    events = [{"type": "step", "step": i, "seconds": 1.0} for i in range(4)]
    events += [{"type": "round", "kind": "llm", "seconds": 3.0}, {"type": "round", "kind": "candidates", "seconds": 0.5},
               {"type": "round", "kind": "stage_end", "seconds": 0.3}]
    (cell / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    (tmp_path / "sweep" / "cells" / "unfinished").mkdir()  # no summary: left out
    parts = _script("sweep_time").cell_parts(cell)[1]
    assert parts == pytest.approx({"steps": 4.0, "llm": 3.0, "scoring": 0.5, "eval": 0.3, "probe": 0.0, "other": 2.2})
    assert _script("sweep_time").main([str(tmp_path / "sweep"), "--jobs", "2"]) == 0
    out = capsys.readouterr().out
    assert "| catalyst | 1 | 10.0 | 4.0 | 3.0 | 0.5 | 0.3 | 0.0 | 2.2 |" in out
    assert "divided over 2 workers: 0.1 min" in out
