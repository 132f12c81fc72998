"""Run folders tried as a hostile user would: damaged files, bad inputs, two writers, lost state or cassette.

Every user-caused failure must end as one ``error: ...`` line with exit code 2 (no traceback) that names
the file or setting at fault, and must leave the folder as it was.  A folder has one writer at a time; a
resume never appends a second history and never asks the LLM again what it already answered.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from catalyst_nb.experiment import execute
from catalyst_nb.runs import RunConfig, RunFolderError, load_run
from catalyst_nb.runs.status import run_status
from deterministic_llm import Deterministic, deterministic_llm

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(model="tiny-native", pretrained=None, shots=2, steps=18, rounds=2, n_ctx=4, batch_size=8, lr=0.5,
            scoring_shots=4)
FLAGS = ["--model", "tiny-native", "--pretrained", "none", "--shots", "2", "--steps", "18", "--rounds", "2",
         "--n-ctx", "4", "--batch-size", "8", "--lr", "0.5", "--scoring-shots", "4", "--no-progress"]
DEAD_URL = "http://127.0.0.1:9/v1"  # never called: every refusal below comes before any LLM call
TEMPLATES = [f"a {{}} on rail {i}" for i in range(16)]


def _env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ, HF_HUB_OFFLINE="1", CATALYST_NB_CACHE=str(tmp_path / "cache"), PYTHONPATH=str(ROOT),
               CATALYST_NB_THREADS="1")
    env.pop("OPENAI_API_KEY", None)
    return env


def _cli(tmp_path: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "catalyst_nb", *args], env=_env(tmp_path), capture_output=True,
                          text=True, timeout=timeout)


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())} if folder.exists() else {}


def _refused(done: subprocess.CompletedProcess, *needles: str) -> None:
    """Exit code 2, one ``error:`` line naming what is wrong, no traceback."""
    assert done.returncode == 2, (done.returncode, done.stderr[-3000:])
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    lines = [line for line in done.stderr.splitlines() if "error:" in line]
    assert len(lines) == 1, done.stderr[-3000:]
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def _scripted(texts=TEMPLATES):
    from catalyst_nb.llm import ScriptedClient

    return ScriptedClient(list(texts), kind="completion")


# ---------------------------------------------------------------------------------------------- folders

@pytest.fixture(scope="module")
def coop_run(tmp_path_factory) -> Path:
    """A CoOp run stopped after its last unit but before its summary: what a kill leaves to resume."""
    folder = tmp_path_factory.mktemp("coop") / "run"
    execute(RunConfig(method="coop", llm="none", **TINY), folder, progress=False)
    for name in ("summary.json", "report.html"):
        (folder / name).unlink()
    return folder


@pytest.fixture(scope="module")
def catalyst_run(tmp_path_factory) -> Path:
    """A catalyst run (URL client, replies from a script) stopped the same way."""
    folder = tmp_path_factory.mktemp("catalyst") / "run"
    config = RunConfig(method="catalyst", llm=DEAD_URL, llm_model="fake", **TINY)
    summary = execute(config, folder, llm_client=_scripted(), progress=False)
    assert summary["llm"]["calls"] == 16
    for name in ("summary.json", "report.html"):
        (folder / name).unlink()
    return folder


def _copy(src: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "run"
    shutil.copytree(src, dst)
    return dst


def _cut_mid_line(folder: Path) -> None:
    lines = (folder / "events.jsonl").read_text().splitlines(keepends=True)
    (folder / "events.jsonl").write_text("".join(lines[:5]) + lines[5][: len(lines[5]) // 2])


def _cut_to_half(folder: Path) -> None:
    data = (folder / "events.jsonl").read_bytes()
    (folder / "events.jsonl").write_bytes(data[: len(data) // 2])


def _four_lines_short(folder: Path) -> None:
    lines = (folder / "events.jsonl").read_text().splitlines(keepends=True)
    (folder / "events.jsonl").write_text("".join(lines[:-4]))


def _flip_state_bytes(folder: Path) -> None:
    data = bytearray((folder / "state.pt").read_bytes())
    for i in (len(data) // 3, len(data) // 2, len(data) - 30):
        data[i] ^= 0xFF
    (folder / "state.pt").write_bytes(bytes(data))


def _edit_config(folder: Path, key: str, value) -> None:
    data = json.loads((folder / "config.json").read_text())
    table, _, inner = key.rpartition(".")
    (data["config"][table] if table else data["config"])[inner] = value
    (folder / "config.json").write_text(json.dumps(data))


def _edit_fingerprint(folder: Path) -> None:
    data = json.loads((folder / "config.json").read_text())
    data["fingerprint"]["train"] = "0" * 16
    (folder / "config.json").write_text(json.dumps(data))


@pytest.mark.parametrize("damage, extra, needles", [
    (_cut_mid_line, [], ["events.jsonl:6 is damaged"]),
    (_cut_to_half, [], ["events.jsonl:", "is damaged"]),
    (_four_lines_short, [], ["events.jsonl has", "the state expects"]),
    (_flip_state_bytes, [], ["state.pt", "checksum mismatch"]),
    (lambda f: _edit_config(f, "gradient.lr", 0.1), ["--lr", "0.1"],
     ["config.json does not match", "state.pt", "gradient.lr: state 0.5, config.json 0.1"]),
    (lambda f: _edit_config(f, "steps", 30), ["--steps", "30"], ["config.json does not match", "steps: state 18"]),
    (_edit_fingerprint, [], ["config.json", "fingerprint differs", "train"]),
], ids=["events-cut-mid-line", "events-cut-to-half", "events-4-lines-short", "state-bytes-flipped",
        "config-lr-edited-and-flag", "config-steps-edited-and-flag", "fingerprint-edited"])
def test_a_damaged_folder_is_refused_on_resume_naming_the_file_and_left_as_it_was(tmp_path, coop_run, damage,
                                                                                   extra, needles):
    folder = _copy(coop_run, tmp_path)
    damage(folder)
    before = _snapshot(folder)
    done = _cli(tmp_path, "run", "--method", "coop", "--llm", "none", *FLAGS, "--out", str(folder), "--resume",
                *extra)
    _refused(done, *needles)
    assert _snapshot(folder) == before


def test_a_cassette_that_is_not_json_is_refused_naming_it(tmp_path, catalyst_run):
    folder = _copy(catalyst_run, tmp_path)
    (folder / "llm_cassette.json").write_text("{ not json")
    before = _snapshot(folder)
    done = _cli(tmp_path, "run", "--llm", DEAD_URL, "--llm-model", "fake", *FLAGS, "--out", str(folder), "--resume")
    _refused(done, "llm_cassette.json is not JSON")
    assert _snapshot(folder) == before


# ------------------------------------------------------------------------------------------- bad input

def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("make_args, needles", [
    (lambda t: ["run", str(t)], ["config file", "is a folder"]),
    (lambda t: ["run", str(_write(t / "bin.toml", bytes(range(256)) * 4))], ["config file", "bin.toml",
                                                                            "not a text file"]),
    (lambda t: ["run", str(_write(t / "b.toml", b'method = "coop"\nllm = "none"\nshots = true\n'))],
     ["shots=True must be an integer"]),
    (lambda t: ["run", "--method", "coop", "--llm", "none", "--model", "ViT-B-99"], ["unknown model 'ViT-B-99'"]),
    (lambda t: ["run", "--method", "coop", "--llm", "none", "--pretrained", "openai"],
     ["pretrained='openai'", "package model 'catalyst-fmnist'"]),
    (lambda t: ["run", "--method", "coop", "--llm", "none", "--base-to-new", "maybe"], ["--base-to-new", "'maybe'"]),
    (lambda t: ["run", "--method", "coop", "--llm", "none", "--resume", "--overwrite"],
     ["--resume and --overwrite contradict"]),
], ids=["config-is-a-folder", "config-is-binary", "toml-bool-as-int", "unknown-model", "tag-on-package-model",
        "bool-flag-maybe", "resume-and-overwrite"])
def test_bad_input_is_an_error_before_the_model_loads_and_leaves_no_folder(tmp_path, make_args, needles):
    out = tmp_path / "out"
    done = _cli(tmp_path, *make_args(tmp_path), "--out", str(out), "--no-progress")
    _refused(done, *needles)
    assert not out.exists()


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_on_a_machine_without_it_is_an_error_naming_the_device(tmp_path):
    out = tmp_path / "out"
    _refused(_cli(tmp_path, "run", "--method", "coop", "--llm", "none", "--device", "cuda", "--out", str(out)),
             "device='cuda'", "CUDA is not available")
    assert not out.exists()


def test_an_out_that_is_a_file_is_refused_and_kept(tmp_path):
    out = _write(tmp_path / "out", b"mine")
    _refused(_cli(tmp_path, "run", "--method", "coop", "--llm", "none", "--out", str(out)), str(out), "is a file")
    assert out.read_bytes() == b"mine"


def test_run_config_refuses_bools_and_strings_where_numbers_belong():
    with pytest.raises(ValueError, match=r"shots=True must be an integer, not bool"):
        RunConfig(shots=True)
    with pytest.raises(ValueError, match=r"lr=False must be a number"):
        RunConfig(lr=False)
    with pytest.raises(ValueError, match=r"base_to_new='maybe' must be true or false"):
        RunConfig.from_dict({"base_to_new": "maybe"})
    with pytest.raises(ValueError, match=r"model=3 must be a string"):
        RunConfig(model=3)
    with pytest.raises(ValueError, match=r"llm_samples=True must be an integer"):
        RunConfig(llm_samples=True)
    assert RunConfig(lr=1).gradient.lr == 1  # an integer is a number


def test_a_run_that_fails_while_loading_leaves_nothing_behind(tmp_path, monkeypatch):
    """Past the input checks (a checkpoint that is not one, say): the folder made for the run goes again."""
    import catalyst_nb.experiment.build as build

    def broken(*args, **kwargs):
        raise OSError("the checkpoint could not be read")

    monkeypatch.setattr(build, "build_context", broken)
    out = tmp_path / "a" / "b" / "run"
    with pytest.raises(OSError):
        execute(RunConfig(method="coop", llm="none", **TINY), out, progress=False)
    assert not (tmp_path / "a").exists()
    kept = tmp_path / "kept"
    kept.mkdir()
    (kept / "notes.txt").write_text("mine")
    with pytest.raises(OSError):
        execute(RunConfig(method="coop", llm="none", **TINY), kept, progress=False)
    assert sorted(p.name for p in kept.iterdir()) == ["notes.txt"]


# ------------------------------------------------------------------------------------------ one writer

class _Gate(Deterministic):
    """A completions endpoint that holds every request until the test opens the gate."""

    gate = threading.Event()
    served = 0

    def reply_text(self, body):
        self.gate.wait(timeout=300)
        type(self).served += 1
        return TEMPLATES[type(self).served % len(TEMPLATES)]


@pytest.fixture
def gated_url():
    _Gate.gate.clear()
    _Gate.served = 0
    try:
        with deterministic_llm(_Gate) as url:
            yield url
    finally:
        _Gate.gate.set()


def _start(tmp_path: Path, url: str, out: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "catalyst_nb", "run", "--llm", url, "--llm-model", "fake", *FLAGS,
                             "--out", str(out)], env=_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)


def _wait_for(ready, proc: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None:
            raise AssertionError(f"the run ended early (rc {proc.returncode}): {proc.stderr.read()[-2000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("the run did not reach the waiting point in time")
        time.sleep(0.05)


def test_two_runs_into_one_new_folder_one_is_refused_and_the_history_is_single(tmp_path, gated_url):
    out = tmp_path / "run"
    runs = [_start(tmp_path, gated_url, out) for _ in range(2)]
    try:
        # one of them holds the folder and waits in its first LLM round (the gate is closed); the other ends
        deadline = time.monotonic() + 300
        while all(p.poll() is None for p in runs) and time.monotonic() < deadline:
            time.sleep(0.05)
        loser = next(p for p in runs if p.poll() is not None)
        winner = next(p for p in runs if p is not loser)
        err = loser.stderr.read()
        assert loser.returncode == 2 and "Traceback" not in err, err[-3000:]
        assert f"in use by process {winner.pid}" in err or "already holds a run" in err, err[-3000:]
        _Gate.gate.set()
        assert winner.wait(timeout=300) == 0, winner.stderr.read()[-3000:]
    finally:
        for p in runs:
            if p.poll() is None:
                p.kill()
                p.wait()
    record = load_run(out)
    assert record.finished and [s.step for s in record.trajectory] == list(range(18))
    assert not (out / ".lock").exists()


def test_a_second_writer_is_refused_while_the_first_runs_and_a_killed_one_leaves_no_lock(tmp_path, gated_url):
    out = tmp_path / "run"
    first = _start(tmp_path, gated_url, out)
    try:
        # the first run holds its folder and waits inside its first LLM round (the gate is closed)
        _wait_for(lambda: (out / "events.jsonl").exists() and '"kind": "candidates"' in (out / "events.jsonl").read_text(),
                  first)
        for extra in ([], ["--resume"], ["--overwrite"]):
            again = _cli(tmp_path, "run", "--llm", gated_url, "--llm-model", "fake", *FLAGS, "--out", str(out), *extra)
            _refused(again, str(out), f"in use by process {first.pid}")
        status = run_status(out)
        assert (status.state, status.alive) == ("running", True) and f"process {first.pid}" in status.detail
        first.send_signal(signal.SIGKILL)
        first.wait()
        # known at once, not after minutes of silence: the lock file names a process that is gone
        assert (out / ".lock").exists() and run_status(out).state == "stopped"
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    # the kernel dropped the killed run's lock: the folder resumes, and its history is one history
    _Gate.gate.set()
    done = _cli(tmp_path, "run", "--llm", gated_url, "--llm-model", "fake", *FLAGS, "--out", str(out), "--resume")
    assert done.returncode == 0, done.stderr[-3000:]
    record = load_run(out)
    assert record.finished and [s.step for s in record.trajectory] == list(range(18))
    assert not (out / ".lock").exists()


def test_status_tells_running_from_stopped_by_the_lock_not_by_silence(tmp_path):
    """A run that stopped a second ago is stopped; one that holds its lock is running, however long it is silent."""
    from catalyst_nb.runs.lock import FolderLock, lock_holder

    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "events.jsonl").write_text("")  # an event just now
    assert lock_holder(folder) is None
    status = run_status(folder)
    assert (status.state, status.alive) == ("stopped", False) and "no run process holds the folder" in status.detail
    with FolderLock(folder):
        old = time.time() - 3600
        os.utime(folder / "events.jsonl", (old, old))  # silent for an hour: a long LLM call, say
        assert lock_holder(folder) == os.getpid()
        status = run_status(folder)
        assert (status.state, status.alive) == ("running", True)
        assert f"process {os.getpid()}" in status.detail and "60 min ago" in status.detail
    assert run_status(folder).state == "stopped"
    (folder / ".lock").write_text("not a pid")
    assert lock_holder(folder) is None


def test_the_lock_names_its_holder_and_is_gone_after_the_run(tmp_path):
    from catalyst_nb.runs.lock import FolderBusyError, FolderLock

    folder = tmp_path / "run"
    folder.mkdir()
    with FolderLock(folder):
        with pytest.raises(FolderBusyError, match=rf"in use by this process \(process {os.getpid()}\)"):
            FolderLock(folder).acquire()
        with pytest.raises(FolderBusyError):
            execute(RunConfig(method="coop", llm="none", **TINY), folder, progress=False)
    assert list(folder.iterdir()) == []
    with FolderLock(folder):  # released: free again
        pass


# ------------------------------------------------------------------------------- lost state, lost cassette

def test_resume_without_state_but_with_events_is_refused_and_appends_nothing(tmp_path, coop_run):
    folder = _copy(coop_run, tmp_path)
    (folder / "state.pt").unlink()
    before = _snapshot(folder)
    done = _cli(tmp_path, "run", "--method", "coop", "--llm", "none", *FLAGS, "--out", str(folder), "--resume")
    _refused(done, "state.pt is missing", "events.jsonl holds")
    assert _snapshot(folder) == before


class _Interrupt(BaseException):
    """Stands for a kill at a chosen point (not an Exception, so nothing on the way catches it)."""


def _interrupted_catalyst(tmp_path: Path, *, after_llm_events: int | None = None, at_call: int | None = None):
    """A catalyst run stopped after its n-th LLM event, or inside an LLM round at its n-th call."""
    from catalyst_nb.llm import ScriptedClient

    folder = tmp_path / "run"
    config = RunConfig(method="catalyst", llm=DEAD_URL, llm_model="fake", **TINY)
    calls = {"n": 0, "llm": 0}

    class Counting(ScriptedClient):
        def complete(self, request):
            calls["n"] += 1
            if at_call is not None and calls["n"] == at_call:
                raise _Interrupt()
            return super().complete(request)

    def on_event(event):
        calls["llm"] += event.get("kind") == "llm"
        if after_llm_events is not None and calls["llm"] == after_llm_events:
            raise _Interrupt()

    with pytest.raises(_Interrupt):
        execute(config, folder, llm_client=Counting(TEMPLATES, kind="completion"), progress=False, on_event=on_event)
    return config, folder


def test_a_resume_never_asks_again_what_the_cassette_holds(tmp_path):
    from catalyst_nb.llm import ScriptedClient

    config, folder = _interrupted_catalyst(tmp_path, after_llm_events=1)
    assert len(json.loads((folder / "llm_cassette.json").read_text())["entries"]) == 8
    live = ScriptedClient(TEMPLATES[8:], kind="completion")  # only the second round's replies
    summary = execute(config, folder, resume=True, llm_client=live, progress=False)
    assert summary["llm"]["calls"] == 16 and len(live.requests) == 8
    assert len(json.loads((folder / "llm_cassette.json").read_text())["entries"]) == 16


@pytest.mark.parametrize("where, needles", [
    ("after-a-round", ["llm_cassette.json is missing", "8 LLM calls recorded"]),
    ("inside-a-round", ["llm_cassette.json is missing"]),
    ("short", ["llm_cassette.json holds 3 LLM calls but the events record 8"]),
])
def test_a_lost_cassette_is_refused_instead_of_asking_the_llm_again(tmp_path, where, needles):
    if where == "inside-a-round":
        config, folder = _interrupted_catalyst(tmp_path, at_call=4)  # 3 calls made and paid for, no event yet
    else:
        config, folder = _interrupted_catalyst(tmp_path, after_llm_events=1)
    if where == "short":
        data = json.loads((folder / "llm_cassette.json").read_text())
        data["entries"] = data["entries"][:3]
        (folder / "llm_cassette.json").write_text(json.dumps(data))
    else:
        (folder / "llm_cassette.json").unlink()
    before = _snapshot(folder)
    live = _scripted()
    with pytest.raises(RunFolderError) as refused:
        execute(config, folder, resume=True, llm_client=live, progress=False)
    for needle in needles:
        assert needle in str(refused.value)
    assert len(live.requests) == 0 and _snapshot(folder) == before
    done = _cli(tmp_path, "run", "--llm", DEAD_URL, "--llm-model", "fake", *FLAGS, "--out", str(folder), "--resume")
    _refused(done, *needles)


# ------------------------------------------------------------------------------------- skipped rounds

def test_skipped_rounds_are_in_the_folder_as_in_the_summary(tmp_path):
    """Replies without a usable template skip the round: events, load_run and the report say so too."""
    folder = tmp_path / "run"
    config = RunConfig(method="catalyst", llm=DEAD_URL, llm_model="fake", **TINY)
    summary = execute(config, folder, llm_client=_scripted(["Sure! Here are some ideas:"] * 16), progress=False)
    assert summary["llm"]["skipped"] == 2
    lines = [json.loads(line) for line in (folder / "events.jsonl").read_text().splitlines()]
    skipped = [e for e in lines if e.get("kind") == "skipped"]
    assert [e["round"] for e in skipped] == [0, 1]
    assert all(e["data"]["reason"] == "no usable template in the LLM's reply" for e in skipped)
    record = load_run(folder)
    assert [e.round for e in record.events if e.kind == "skipped"] == [0, 1]
    assert record.summary["llm"]["skipped"] == 2
    report = (folder / "report.html").read_text()
    assert report.count("no usable template in the LLM&#x27;s reply") == 2


# ------------------------------------------------------------------------------------------------ sweeps

def test_a_sweep_cell_whose_summary_was_deleted_is_finished_again(tmp_path):
    from catalyst_nb.sweeps import SweepConfig, run_sweep

    config = SweepConfig.from_dict({
        "sweep": {"name": "one"}, "defaults": {**{k: v for k, v in TINY.items() if k not in ("pretrained", "shots")},
                                              "pretrained": "none", "llm": "none"},
        "grid": {"data": ["embedded"], "shots": [2], "seed": [1]}, "methods": {"coop": {"method": "coop"}},
    })
    out = tmp_path / "sweep"
    first = run_sweep(config, out, progress=False)
    (cell,) = (out / "cells").iterdir()
    summary = json.loads((cell / "summary.json").read_text())
    (cell / "summary.json").unlink()
    again = run_sweep(config, out, progress=False)
    assert (again.ran, again.skipped, again.failed) == (1, 0, 0)
    record = load_run(cell)
    assert record.finished and record.summary["test_accuracy"] == summary["test_accuracy"]
    assert [r["test_accuracy"] for r in again.rows] == [r["test_accuracy"] for r in first.rows]


def test_a_stop_inside_a_step_writes_no_half_done_state(tmp_path, monkeypatch):
    """The state is written every few seconds of steps and when a run stops; a stop (Ctrl-C) that lands
    inside a unit must not write the optimizer's state of that moment, or the resume would skip a step.
    Resumed, the run ends with exactly the events of a run that was never stopped."""
    import catalyst_nb.experiment.experiment as experiment
    from catalyst_nb.experiment import Experiment

    monkeypatch.setattr(experiment, "STATE_EVERY_S", 1e9)  # only round events and the end write the state
    config = RunConfig(method="coop", llm="none", **{**TINY, "steps": 30})
    execute(config, tmp_path / "whole", progress=False)

    def stop_at_step_13(optimizer, record):
        if record.step == 13:
            raise KeyboardInterrupt

    with Experiment(config, folder=tmp_path / "stopped", progress=False) as exp:
        exp.optimizer.register_step_hook(stop_at_step_13)
        with pytest.raises(KeyboardInterrupt):
            exp.run(progress=False)
    with Experiment(config, folder=tmp_path / "stopped", resume=True, progress=False) as exp:
        assert len(exp.events) < 13  # it went back to the last state written, not to the stop
        exp.run(progress=False)

    def events(folder):
        return [{k: v for k, v in json.loads(line).items() if k != "seconds"}
                for line in (folder / "events.jsonl").read_text().splitlines()]

    assert events(tmp_path / "stopped") == events(tmp_path / "whole")
