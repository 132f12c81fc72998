"""``catalyst-nb sweep``: bad input ends with ``error: ...`` and exit status 2 before any cell runs."""
from __future__ import annotations

import re
import time

import pytest

from catalyst_nb.cli import main

GOOD = '[defaults]\nllm = "none"\nsteps = 4\nn_ctx = 4\nscoring_shots = 4\n[grid]\nshots = [1]\nseed = [1]\n[methods.coop]\nmethod = "coop"\n'


@pytest.fixture
def good(tmp_path):
    path = tmp_path / "good.toml"
    path.write_text(GOOD)
    return path


@pytest.mark.parametrize("text, message", [
    (GOOD + "[colours]\n", "unknown key.*'colours'"),
    (GOOD.replace("seed = [1]", "seed = []"), "seed is an empty list"),
    (GOOD.replace('"coop"', '"telepathy"'), "telepathy"),
    ("[grid\n", "not valid TOML"),
])
def test_bad_config_exits_2_with_an_error_line(tmp_path, capsys, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    assert main(["sweep", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ")
    assert re.search(message, err), err
    assert not (tmp_path / "out").exists()  # refused before anything was written


def test_bad_options_and_foreign_folders_exit_2(tmp_path, capsys, good):
    assert main(["sweep", str(good), "--jobs", "0"]) == 2
    assert "--jobs must be >= 1" in capsys.readouterr().err
    assert main(["sweep", str(good), "--address", "auto"]) == 2
    assert "--address needs --executor ray" in capsys.readouterr().err
    assert main(["sweep", str(tmp_path / "missing.toml")]) == 2
    assert "not found" in capsys.readouterr().err
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "thesis.tex").write_text("mine")
    assert main(["sweep", str(good), "--out", str(busy)]) == 2
    assert "not a sweep folder" in capsys.readouterr().err
    assert (busy / "thesis.tex").read_text() == "mine"


def test_ray_address_that_does_not_answer_exits_2_in_seconds(tmp_path, capsys, good):
    pytest.importorskip("ray")
    from catalyst_nb.llm.launcher import free_port

    started = time.perf_counter()
    code = main(["sweep", str(good), "--executor", "ray", "--address", f"127.0.0.1:{free_port()}",
                 "--out", str(tmp_path / "out")])
    assert code == 2 and time.perf_counter() - started < 15
    assert "no Ray cluster answers" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_ray_auto_without_a_cluster_exits_2(tmp_path, capsys, good, monkeypatch):
    pytest.importorskip("ray")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    started = time.perf_counter()
    code = main(["sweep", str(good), "--executor", "ray", "--address", "auto", "--out", str(tmp_path / "out")])
    assert code == 2 and time.perf_counter() - started < 30
    assert "Could not find any running Ray instance" in capsys.readouterr().err


@pytest.mark.slow
def test_real_sweep_command_runs_then_skips(tmp_path, capsys, good):
    out = tmp_path / "out"
    assert main(["sweep", str(good), "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "failed" not in printed.replace("(0 failed)", ""), printed
    assert "| coop | 1 |" in printed and "1 cells: 1 run (0 failed), 0 already done" in printed
    assert (out / "cells" / "coop__1shot__seed1" / "summary.json").is_file()
    assert main(["sweep", str(good), "--out", str(out), "--no-progress"]) == 0
    assert "1 cells: 0 run (0 failed), 1 already done" in capsys.readouterr().out
