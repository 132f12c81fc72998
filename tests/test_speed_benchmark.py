"""The speed benchmark's three steps take the same SGD step (equal losses), and the script prints its table.

Only correctness is checked here; the timings and ratios are the benchmark's own output, never asserted.
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "speed.py"


@pytest.fixture(scope="module")
def speed():
    spec = importlib.util.spec_from_file_location("speed_benchmark", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)


@pytest.mark.parametrize("model", ["tiny_native", "tiny_hf"])
def test_coop_floor_and_ours_agree_step_by_step(request, speed, model):
    clip = request.getfixturevalue(model)
    problem = speed.make_problem(clip, n_classes=7, batch=6)
    methods = {"ours": speed.OursStep, "floor": speed.FloorStep, "coop": speed.CoOpStep}
    cells = speed.run_methods(methods, problem, steps=2, precision="fp32", model=model, budget_s=1e9)
    losses = {c.method: c.losses for c in cells}
    assert all(len(v) == 3 for v in losses.values())
    for step in range(3):
        values = [losses[m][step] for m in methods]
        assert max(values) - min(values) < 1e-4, (step, losses)
    assert losses["ours"][2] != losses["ours"][0]  # the context did move
    assert all(c.peak_gb >= c.before_gb > 0 for c in cells)
    assert cells[2].note == f"{clip.tokenizer.context_length} tokens"  # CoOp encodes the full context


def test_script_prints_the_table(speed, capsys):
    threads = torch.get_num_threads()
    code = speed.main(["--models", "tiny-native", "--classes", "3", "--steps", "1", "--threads", str(threads),
                       "--scoring", "tiny-native:3"])
    out = capsys.readouterr().out
    assert code == 0
    row = next(line for line in out.splitlines() if line.startswith("| tiny-native | 3 |"))
    assert row.count("x |") == 2  # CoOp/ours and floor/ours ratios
    assert "Scoring 10 hard templates" in out and "shared-prefix" in out
    assert torch.get_num_threads() == threads


def test_unknown_model_is_refused(speed):
    with pytest.raises(SystemExit):
        speed.main(["--models", "nope"])
