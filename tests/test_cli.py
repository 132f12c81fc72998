"""The command line: ``tune`` is ``run --method coop``; flags reach the config's tables; a TOML file's
tables and flat flags combine; mistakes are refused before the model loads."""
from __future__ import annotations

import json

import pytest

from catalyst_nb.cli import build_parser, main
from catalyst_nb.experiment.cli import config_from_args
from catalyst_nb.runs import RunFolder

TINY = ["--model", "tiny-native", "--pretrained", "none", "--shots", "2", "--steps", "6", "--batch-size", "8",
        "--scoring-shots", "4", "--no-progress"]


def _events(folder):
    return [{k: v for k, v in e.items() if k != "seconds"} for e in RunFolder(folder).read_events()]


def test_tune_is_run_with_method_coop(tmp_path, capsys):
    assert main(["tune", *TINY, "--out", str(tmp_path / "tune")]) == 0
    assert main(["run", "--method", "coop", *TINY, "--out", str(tmp_path / "run")]) == 0
    summary = json.loads((tmp_path / "tune" / "summary.json").read_text())
    assert summary["method"] == "coop" and summary["budget_used"] == 6
    assert _events(tmp_path / "tune") == _events(tmp_path / "run")
    assert len([e for e in _events(tmp_path / "tune") if e["type"] == "step"]) == 6
    assert "coop" in capsys.readouterr().out


def test_flags_override_the_files_tables(tmp_path):
    conf = tmp_path / "run.toml"
    conf.write_text('method = "catalyst"\nsteps = 40\n[gradient]\nlr = 0.01\nn_ctx = 8\n'
                    '[catalyst]\nrounds = 2\n[llm]\nsource = "http://127.0.0.1:1/v1"\nkind = "chat"\n')
    parser = build_parser()
    config = config_from_args(parser.parse_args(["run", str(conf), "--lr", "0.5", "--llm", "http://h:2/v1",
                                                 "--llm-samples", "3", "--llm-temperature", "0.5"]))
    assert config.llm.samples == 3 and config.llm.temperature == 0.5
    assert config.gradient.lr == 0.5 and config.gradient.n_ctx == 8 and config.catalyst.rounds == 2
    assert config.llm.source == "http://h:2/v1" and config.llm.kind == "chat"  # the flag keeps the table's kind
    assert config_from_args(parser.parse_args(["tune"])).method == "coop"
    assert config_from_args(parser.parse_args(["tune", "--method", "catalyst"])).method == "catalyst"


def test_coop_schedule_reaches_the_gradient_optimizer(tmp_path):
    # 2 shots x 10 classes = 20 images at batch 8 without the partial batch: 2 steps per epoch, one rate each
    longer = [*TINY, "--steps", "12", "--warmup-steps", "2"]
    assert main(["run", "--method", "coop", *longer, "--schedule", "epoch", "--drop-last", "true",
                 "--out", str(tmp_path / "epoch")]) == 0
    assert main(["run", "--method", "coop", *longer, "--out", str(tmp_path / "step")]) == 0
    by_epoch = [e["lr"] for e in _events(tmp_path / "epoch") if e["type"] == "step"]
    by_step = [e["lr"] for e in _events(tmp_path / "step") if e["type"] == "step"]
    assert by_epoch[0::2] == by_epoch[1::2] and len(set(by_epoch)) > 1
    assert len(set(by_step[-4:])) == 4  # the cosine moves every step


@pytest.mark.parametrize("extra, message", [
    (["--shots", "0"], "shots=0"),
    (["--lr", "nan"], "lr=nan"),
    (["--n-ctx", "500"], "n_ctx=500"),
    (["--warmup-steps", "6"], "warmup_steps=6"),
    (["--schedule", "hourly"], "invalid choice"),
])
def test_user_errors_exit_2_before_the_model_loads(tmp_path, capsys, monkeypatch, extra, message):
    import catalyst_nb.backbone as backbone

    def no_loading(*args, **kwargs):
        raise AssertionError("the model was loaded before the arguments were checked")

    monkeypatch.setattr(backbone, "load_clip", no_loading)
    with pytest.raises(SystemExit) as stop:
        main(["tune", *TINY, "--out", str(tmp_path / "run"), *extra])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "error: " in err and message in err, err
    assert not (tmp_path / "run").exists()


def test_tune_resume_of_a_finished_run_leaves_its_folder_as_it_was(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["tune", *TINY, "--out", str(out)]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert main(["tune", *TINY, "--out", str(out), "--resume"]) == 0
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # summary.json (its seconds) included
    assert "coop" in capsys.readouterr().out


@pytest.mark.parametrize("raised, code", [
    ("RunFolderError", 2), ("FolderBusyError", 2), ("StateFileError", 2), ("CassetteFileError", 2),
    ("ModelNotFoundError", 2), ("KeyError", None), ("ValueError", None),
])
def test_main_prints_the_librarys_typed_errors_and_lets_bugs_through(monkeypatch, capsys, tmp_path, raised, code):
    """One place turns user-caused failures into ``error:`` lines; any other exception is a bug and is raised."""
    import catalyst_nb.experiment.cli as run_cli
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

    monkeypatch.setattr(run_cli, "run_command", fail)
    if code is None:
        with pytest.raises(type(errors[raised])):
            main(["run"])
        return
    assert main(["run"]) == code
    assert capsys.readouterr().err == f"error: {errors[raised]}\n"
