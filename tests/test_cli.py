"""The headless command: a short run writes its outputs, and --resume continues from the saved state."""
from __future__ import annotations

import json

import pytest

from catalyst_nb.cli import main
from catalyst_nb.trajectory import Trajectory


def test_tune_writes_summary_trajectory_and_state(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["tune", "--model", "tiny-native", "--pretrained", "none", "--shots", "2", "--epochs", "2",
            "--views", "1", "--out", str(out), "--no-progress"]
    assert main(args) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 2 and 0 <= summary["tuned_accuracy"] <= 1
    assert summary["final_projection"].endswith("{}.")
    assert len(Trajectory.load(out / "trajectory.jsonl")) == 2
    assert "CoOp" in capsys.readouterr().out

    # resuming a finished run restores its state and adds no steps
    assert main(args + ["--resume"]) == 0
    again = json.loads((out / "summary.json").read_text())
    assert again["steps"] == 2 and again["tuned_accuracy"] == summary["tuned_accuracy"]
    assert len(Trajectory.load(out / "trajectory.jsonl")) == 2


def test_resume_with_other_hyperparameters_is_refused(tmp_path):
    out = tmp_path / "run"
    args = ["tune", "--model", "tiny-native", "--pretrained", "none", "--shots", "2", "--epochs", "1",
            "--views", "0", "--out", str(out), "--no-progress"]
    assert main(args) == 0
    with pytest.raises(ValueError, match="different config"):
        main(args[:-3] + ["--lr", "0.01", "--out", str(out), "--no-progress", "--resume"])
