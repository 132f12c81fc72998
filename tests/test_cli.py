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


def _args(out, *extra):
    return ["tune", "--model", "tiny-native", "--pretrained", "none", "--shots", "2", "--epochs", "1",
            "--views", "0", "--out", str(out), "--no-progress", *extra]


def test_resume_with_other_hyperparameters_is_refused(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(_args(out)) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    capsys.readouterr()
    assert main(_args(out, "--lr", "0.01", "--resume")) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --resume with changed settings") and "--lr 0.002 -> 0.01" in err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # nothing touched


def test_second_run_into_a_used_folder_is_refused_unless_overwrite(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(_args(out)) == 0
    first = {p.name: p.read_bytes() for p in out.iterdir()}
    assert sorted(first) == ["run.json", "state.pt", "summary.json", "trajectory.jsonl"]
    capsys.readouterr()
    assert main(_args(out, "--seed", "2")) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == first
    assert main(_args(out, "--seed", "2", "--overwrite")) == 0
    assert json.loads((out / "run.json").read_text())["seed"] == 2
    assert json.loads((out / "summary.json").read_text())["seed"] == 2


def test_resume_without_saved_state_says_so(tmp_path, capsys):
    assert main(_args(tmp_path / "empty", "--resume")) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --resume:") and "no saved state" in err
    assert not (tmp_path / "empty" / "summary.json").exists()


def test_resume_reports_a_damaged_state_file_by_name(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(_args(out)) == 0
    data = bytearray((out / "state.pt").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (out / "state.pt").write_bytes(bytes(data))
    capsys.readouterr()
    assert main(_args(out, "--resume")) == 2
    err = capsys.readouterr().err
    assert "state.pt" in err and "checksum mismatch" in err


def test_state_is_written_with_a_checksum_and_no_temporary_files(tmp_path):
    from catalyst_nb.state_io import load_state

    out = tmp_path / "run"
    assert main(_args(out)) == 0
    state = load_state(out / "state.pt")  # verified and loaded with weights_only=True
    assert state["step"] == json.loads((out / "summary.json").read_text())["steps"]
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize("extra, message", [
    (["--shots", "0"], "--shots 0: must be at least 1"),
    (["--lr", "nan"], "--lr nan: must be a finite number"),
    (["--lr", "inf"], "--lr inf: must be a finite number"),
    (["--n-ctx", "500"], "--n-ctx 500: must be 1..73"),
    (["--device", "tpu"], "--device tpu"),
    (["--epochs", "0"], "--epochs 0"),
    (["--resume", "--overwrite"], "contradict"),
])
def test_user_errors_exit_2_before_the_model_loads(tmp_path, capsys, monkeypatch, extra, message):
    import catalyst_nb.backbone as backbone

    def no_loading(*args, **kwargs):
        raise AssertionError("the model was loaded before the arguments were checked")

    monkeypatch.setattr(backbone, "load_clip", no_loading)
    assert main(_args(tmp_path / "run", *extra)) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err, err
    assert "Traceback" not in err


def test_coop_schedule_option_drops_the_partial_batch(tmp_path):
    # 2 shots x 10 classes = 20 images at batch 8: 3 steps per epoch by default, 2 with CoOp's batching
    plain = main(_args(tmp_path / "plain", "--batch-size", "8", "--epochs", "2"))
    coop = main(_args(tmp_path / "coop", "--batch-size", "8", "--epochs", "2", "--coop-schedule"))
    assert plain == coop == 0
    assert json.loads((tmp_path / "plain" / "summary.json").read_text())["steps"] == 6
    assert json.loads((tmp_path / "coop" / "summary.json").read_text())["steps"] == 4
    rates = [r.lr for r in Trajectory.load(tmp_path / "coop" / "trajectory.jsonl")]
    assert rates[0] == rates[1] == pytest.approx(1e-5) and rates[2] == rates[3] == pytest.approx(0.002)


def test_a_run_that_fails_to_start_leaves_the_folder_free(tmp_path, capsys):
    out = tmp_path / "run"
    too_long = "word " * 100 + "{}."  # refused once the model is loaded (longer than the context)
    assert main(_args(out, "--baseline", too_long)) == 2
    assert "context length" in capsys.readouterr().err
    assert not out.exists() or list(out.iterdir()) == []
    assert main(_args(out)) == 0


def test_tune_resume_of_a_finished_run_leaves_its_summary_as_it_was(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(_args(out)) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert main(_args(out, "--resume")) == 0
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # summary.json (its seconds) included
    assert "CoOp" in capsys.readouterr().out


@pytest.mark.parametrize("raised, code", [
    ("RunFolderError", 2), ("FolderBusyError", 2), ("StateFileError", 2), ("CassetteFileError", 2),
    ("ModelNotFoundError", 2), ("KeyError", None), ("ValueError", None),
])
def test_main_prints_the_librarys_typed_errors_and_lets_bugs_through(monkeypatch, capsys, tmp_path, raised, code):
    """One place turns user-caused failures into ``error:`` lines; any other exception is a bug and is raised."""
    import catalyst_nb.runs.cli as runs_cli
    from catalyst_nb.backbone import ModelNotFoundError
    from catalyst_nb.llm.cassette import CassetteFileError
    from catalyst_nb.runs.folder import RunFolderError
    from catalyst_nb.runs.lock import FolderBusyError
    from catalyst_nb.state_io import StateFileError

    errors = {"RunFolderError": RunFolderError("run/events.jsonl:3 is damaged"),
              "FolderBusyError": FolderBusyError(tmp_path, 123), "StateFileError": StateFileError("run/state.pt", "bad"),
              "CassetteFileError": CassetteFileError("cassette run/llm_cassette.json is not JSON"),
              "ModelNotFoundError": ModelNotFoundError("unknown model 'x'"), "KeyError": KeyError("bug"),
              "ValueError": ValueError("a bug, not a refusal")}

    def fail(*args, **kwargs):
        raise errors[raised]

    monkeypatch.setattr(runs_cli, "run_command", fail)
    if code is None:
        with pytest.raises(type(errors[raised])):
            main(["run"])
        return
    assert main(["run"]) == code
    err = capsys.readouterr().err
    assert err == f"error: {errors[raised]}\n"
