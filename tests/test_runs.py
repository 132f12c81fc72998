"""Run folders and `catalyst-nb run`: exact resume after SIGKILL, refusals, damaged files, CLI errors."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from catalyst_nb.experiment import execute
from catalyst_nb.runs import RunConfig, RunFolder, RunFolderError, load_run
from catalyst_nb.state_io import load_state, save_state
from deterministic_llm import deterministic_llm

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def llm_url():
    with deterministic_llm() as url:
        yield url


def _config(**kw) -> RunConfig:
    base = dict(method="coop", model="tiny-native", pretrained=None, shots=2, steps=18, rounds=2, n_ctx=4,
                batch_size=8, lr=0.5, scoring_shots=4, llm="none")
    base.update(kw)
    return RunConfig(**base)


def _cli_args(url: str, out: Path) -> list[str]:
    return [sys.executable, "-m", "catalyst_nb", "run", "--model", "tiny-native", "--pretrained", "none",
            "--shots", "2", "--steps", "18", "--rounds", "2", "--n-ctx", "4", "--batch-size", "8", "--lr", "0.5",
            "--scoring-shots", "4", "--llm", url, "--llm-model", "fake", "--out", str(out), "--no-progress"]


def _env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ, HF_HUB_OFFLINE="1", CATALYST_NB_CACHE=str(tmp_path / "cache"), PYTHONPATH=str(ROOT))
    env.pop("OPENAI_API_KEY", None)
    return env


def _comparable(folder: Path) -> tuple[list, torch.Tensor]:
    events = [{k: v for k, v in e.items() if k not in ("seconds",)} for e in RunFolder(folder).read_events()]
    for e in events:
        if e.get("type") == "round" and e["kind"] == "llm":
            e["data"].pop("latency_s", None)
    state = load_state(folder / "state.pt")["state"]["optimizer"]
    return events, state["state"]["gradient"]["state"]["ctx"]


def _kill_when(proc: subprocess.Popen, ready, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the run ended (rc {proc.returncode}) before the kill point")
        if ready():
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return
        time.sleep(0.02)
    proc.kill()
    raise AssertionError("kill point not reached in time")


def _steps_written(folder: Path, n: int):
    def ready() -> bool:
        try:
            return sum('"type": "step"' in line for line in (folder / "events.jsonl").read_text().splitlines()) >= n
        except FileNotFoundError:
            return False
    return ready


def _cassette_entries(folder: Path, n: int):
    def ready() -> bool:  # the cassette is created empty with the run and rewritten whole after each call
        try:
            return len(json.loads((folder / "llm_cassette.json").read_text())["entries"]) >= n
        except (FileNotFoundError, ValueError):
            return False
    return ready


@pytest.mark.slow
def test_a_killed_run_resumes_to_the_same_context_and_events(tmp_path, llm_url):
    env = _env(tmp_path)
    ref = tmp_path / "uninterrupted"
    subprocess.run(_cli_args(llm_url, ref), env=env, check=True, capture_output=True, timeout=600)
    kill_points = {
        "mid-stage": _steps_written(tmp_path / "mid-stage", 3),
        "after-llm-reply": _cassette_entries(tmp_path / "after-llm-reply", 1),
        "second-stage": _steps_written(tmp_path / "second-stage", 9),
    }
    for name, ready in kill_points.items():
        out = tmp_path / name
        proc = subprocess.Popen(_cli_args(llm_url, out), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                start_new_session=True)
        _kill_when(proc, ready)
        assert not (out / "summary.json").exists(), name
        done = subprocess.run(_cli_args(llm_url, out) + ["--resume"], env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
        events, ctx = _comparable(out)
        ref_events, ref_ctx = _comparable(ref)
        assert torch.equal(ctx, ref_ctx), name
        assert events == ref_events, name
    summary = json.loads((ref / "summary.json").read_text())
    assert summary["llm"]["calls"] >= 2 and (ref / "report.html").stat().st_size > 10_000


def test_a_run_with_a_given_client_reads_back_without_models(tmp_path):
    from catalyst_nb.llm import ScriptedClient

    cfg = _config(method="catalyst", llm="local")
    folder = tmp_path / "run"
    client = ScriptedClient([f"a {{}} on rail {i}" for i in range(16)], kind="completion")
    summary = execute(cfg, folder, llm_client=client, progress=False)
    # 2 rounds x 8 caption samples, each round one call of 8 choices (the embedded model's batched server)
    assert summary["status"] == "done" and summary["llm"]["calls"] == 2 and client.remaining == 0
    assert [r.n for r in client.requests] == [8, 8]
    record = load_run(folder)
    assert record.finished and [e.kind for e in record.events].count("stage_end") == 3
    assert len(record.trajectory) == 18 and record.trajectory[-1].step == 17
    assert [s["step"] for s in record.stage_accuracies()] == [6, 12, 18]
    entries = json.loads((folder / "llm_cassette.json").read_text())["entries"]
    assert len(entries) == 2 and all(len(e["response"]["texts"]) == 8 for e in entries)


def test_events_file_agrees_with_the_summary_on_skipped_rounds(tmp_path):
    """A reply with nothing usable skips the round: the skip is in events.jsonl, load_run and the report,
    and every count in summary.json matches what the events file holds."""
    from catalyst_nb.llm import ScriptedClient
    from catalyst_nb.runs.report import report_data

    cfg = _config(method="catalyst", llm="local")
    folder = tmp_path / "run"
    garbage = ScriptedClient(["Sure! Here are some ideas:"] * 16, kind="completion")
    summary = execute(cfg, folder, llm_client=garbage, progress=False)
    lines = RunFolder(folder).read_events()
    rounds = [e for e in lines if e["type"] == "round"]
    kinds = [e["kind"] for e in rounds]
    assert summary["llm"]["skipped"] == 2 == kinds.count("skipped")
    assert [e["round"] for e in rounds if e["kind"] == "skipped"] == [0, 1]
    assert summary["llm"]["rounds"] == kinds.count("llm") and summary["llm"]["valid"] == 0
    assert summary["llm"]["chosen"] == sum(1 for e in rounds if e["kind"] == "decision" and e["data"]["chosen"])
    assert len(summary["stages"]) == kinds.count("stage_end") == 3
    assert len(summary["restarts"]) == kinds.count("restart") == 0
    assert summary["steps"] == sum(e["type"] == "step" for e in lines)
    record = load_run(folder)
    assert [e.kind for e in record.events] == kinds
    assert [e.reason for e in record.events if e.kind == "skipped"] == ["no usable template in the LLM's reply"] * 2
    assert [s["round"] for s in report_data(lines)["skipped"]] == [0, 1]


def test_a_fresh_run_into_a_used_folder_is_refused_unless_overwrite(tmp_path):
    cfg = _config(method="coop")
    folder = tmp_path / "run"
    first = execute(cfg, folder, progress=False)
    with pytest.raises(RunFolderError, match="already holds a run"):
        execute(cfg, folder, progress=False)
    again = execute(cfg, folder, overwrite=True, progress=False)
    assert again["test_accuracy"] == first["test_accuracy"]
    assert execute(cfg, folder, resume=True, progress=False)["test_accuracy"] == first["test_accuracy"]


def test_resume_refusals_name_what_is_wrong(tmp_path):
    cfg = _config(method="coop")
    with pytest.raises(RunFolderError, match="holds no run"):
        execute(cfg, tmp_path / "empty", resume=True, progress=False)
    folder = tmp_path / "run"
    execute(cfg, folder, progress=False)
    with pytest.raises(RunFolderError, match=r"lr: saved 0.5, given 0.1"):
        execute(_config(method="coop", lr=0.1), folder, resume=True, progress=False)
    (folder / "summary.json").unlink()  # an unfinished run made on other data
    cfg_json = json.loads((folder / "config.json").read_text())
    cfg_json["fingerprint"]["train"] = "another"
    (folder / "config.json").write_text(json.dumps(cfg_json))
    with pytest.raises(RunFolderError, match=r"config.json: the fingerprint differs .* \(in \['train'\]\); was config.json edited"):
        execute(cfg, folder, resume=True, progress=False)  # config.json no longer says what the state ran on
    state = load_state(folder / "state.pt")
    state["fingerprint"]["train"] = "another"
    save_state(folder / "state.pt", state)  # both say "another": the run was made on other data
    with pytest.raises(RunFolderError, match=r"another model or other data \(differs in \['train'\]\)"):
        execute(cfg, folder, resume=True, progress=False)


def test_damaged_files_are_named_with_line_or_reason(tmp_path):
    cfg = _config(method="coop")
    folder = tmp_path / "run"
    execute(cfg, folder, progress=False)
    (folder / "summary.json").unlink()
    lines = (folder / "events.jsonl").read_text().splitlines()
    lines[2] = lines[2][:10]
    (folder / "events.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(RunFolderError, match=r"events.jsonl:3 is damaged"):
        execute(cfg, folder, resume=True, progress=False)
    data = bytearray((folder / "state.pt").read_bytes())
    data[-20] ^= 0xFF
    (folder / "state.pt").write_bytes(bytes(data))
    with pytest.raises(RunFolderError, match=r"state.pt: checksum mismatch"):
        execute(cfg, folder, resume=True, progress=False)


def _cli(args, tmp_path, **kw):
    return subprocess.run([sys.executable, "-m", "catalyst_nb", *args], env=_env(tmp_path), capture_output=True,
                          text=True, timeout=120, **kw)


@pytest.mark.parametrize(
    "args, message",
    [
        (["run", "--shots", "0"], "shots=0"),
        (["run", "--lr", "nan"], "lr=nan"),
        (["run", "--n-ctx", "500"], "n_ctx=500"),
        (["run", "--device", "tpu"], "device='tpu'"),
        (["run", "--method", "llm-only", "--llm", "none"], "needs an LLM"),
        (["run", "--llm", "ftp://x"], "llm="),
    ],
)
def test_cli_mistakes_are_errors_with_exit_code_2_before_any_model_loads(tmp_path, args, message):
    done = _cli(args + ["--out", str(tmp_path / "x")], tmp_path)
    assert done.returncode == 2 and "error:" in done.stderr and message in done.stderr, done.stderr
    assert not (tmp_path / "x").exists()


def test_toml_with_unknown_keys_is_refused_naming_them(tmp_path):
    conf = tmp_path / "run.toml"
    conf.write_text('method = "coop"\nshots = 2\nstpes = 10\n')
    done = _cli(["run", str(conf), "--out", str(tmp_path / "x")], tmp_path)
    assert done.returncode == 2 and "stpes" in done.stderr


def test_cli_refuses_a_used_folder_and_a_resume_without_run(tmp_path):
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "config.json").write_text("{}")
    done = _cli(["run", "--out", str(tmp_path / "used")], tmp_path)
    assert done.returncode == 2 and "already holds a run" in done.stderr
    done = _cli(["run", "--resume", "--out", str(tmp_path / "nothing")], tmp_path)
    assert done.returncode == 2 and "holds no run" in done.stderr


def test_the_command_line_is_built_without_importing_torch():
    """Mistyped flags are reported at once: building the parser must not pay for torch."""
    code = "import sys; from catalyst_nb.cli import build_parser; build_parser(); print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert done.stdout.strip() == "False", done.stderr


def test_restart_rule_settings_come_from_toml_and_flags_with_probe_defaults(tmp_path):
    from catalyst_nb.cli import build_parser
    from catalyst_nb.experiment.cli import config_from_args
    from catalyst_nb.runs.config import load_toml

    conf = tmp_path / "run.toml"
    conf.write_text('restart = "probe"\n')
    cfg = RunConfig.from_dict(load_toml(conf))
    c = cfg.catalyst
    assert (c.restart, c.probe_steps, c.probe_top) == ("probe", 10, 2)
    parser = build_parser()
    args = parser.parse_args(["run", str(conf), "--probe-steps", "3", "--probe-top", "1", "--restart", "margin",
                              "--restart-margin", "0.1"])
    c = config_from_args(args).catalyst
    assert (c.restart, c.restart_margin, c.probe_steps, c.probe_top) == ("margin", 0.1, 3, 1)
    for bad, message in ((dict(restart_margin=-1.0), "restart_margin=-1.0"), (dict(probe_steps=0), "probe_steps=0"),
                         (dict(restart="sometimes"), "restart='sometimes'")):
        with pytest.raises(ValueError, match=message):
            RunConfig.from_dict(bad)


def test_what_a_restart_does_to_momentum_and_schedule_comes_from_the_config(tmp_path):
    """``momentum`` and ``restart_schedule`` reach the catalyst (preset's when not given); bad values are named."""
    from catalyst_nb.cli import build_parser
    from catalyst_nb.experiment.cli import config_from_args
    from catalyst_nb.llm import ScriptedClient
    from catalyst_nb.runs.config import load_toml

    conf = tmp_path / "run.toml"
    conf.write_text('momentum = "reset"\nrestart_schedule = "rewarm"\n')
    c = RunConfig.from_dict(load_toml(conf)).catalyst
    assert (c.momentum, c.restart_schedule) == ("reset", "rewarm")
    args = build_parser().parse_args(["run", str(conf), "--momentum", "keep", "--restart-schedule", "none"])
    c = config_from_args(args).catalyst
    assert (c.momentum, c.restart_schedule) == ("keep", None)
    for bad, message in ((dict(momentum="zero"), "momentum='zero'"), (dict(restart_schedule="warm"), "restart_schedule='warm'")):
        with pytest.raises(ValueError, match=message):
            RunConfig.from_dict(bad)
    from catalyst_nb.experiment import Experiment

    client = ScriptedClient([f"a {{}} on rail {i}" for i in range(16)], kind="completion")
    given = _config(method="catalyst", llm="local", restart="best", momentum="reset", restart_schedule="rewarm")
    with Experiment(given, llm_client=client, progress=False) as exp:
        assert (exp.optimizer.config.momentum, exp.optimizer.config.schedule) == ("reset", "rewarm")
    with Experiment(_config(method="catalyst", llm="local"), llm_client=client, progress=False) as exp:
        assert (exp.optimizer.config.momentum, exp.optimizer.config.schedule) == ("keep", "continue")  # the preset's


@pytest.mark.parametrize("restart", ["margin", "probe"])
def test_decision_evidence_reaches_the_report(tmp_path, restart):
    from catalyst_nb.llm import ScriptedClient
    from catalyst_nb.runs.report import report_data

    cfg = _config(method="catalyst", llm="local", restart=restart, probe_steps=1, probe_top=1)
    folder = tmp_path / "run"
    client = ScriptedClient([f"a {{}} on rail {i}" for i in range(16)], kind="completion")
    assert execute(cfg, folder, llm_client=client, progress=False)["status"] == "done"
    decisions = report_data(RunFolder(folder).read_events())["decisions"]
    assert len(decisions) == 2
    page = (folder / "report.html").read_text()
    assert "<h2>Decisions</h2>" in page
    for d in decisions:
        assert set(d["current"]) == {"loss", "accuracy"} and set(d["proposal"]) == {"loss", "accuracy"}
        assert d["reason"] and d["cost"].startswith("this restart ")
        assert d["cost"] in page and d["reason"].split(":")[0] in page


def test_a_catalyst_that_keeps_its_context_every_round_ends_exactly_where_coop_ends(tmp_path):
    """What a refused restart costs: nothing. The rounds only read the context (the scoring, the LLM), so a
    catalyst whose rule keeps the context every round is CoOp step for step (the paired difference is 0)."""
    from catalyst_nb.llm import ScriptedClient

    coop = execute(_config(method="coop"), tmp_path / "coop", progress=False)
    client = ScriptedClient([f"a {{}} on rail {i}" for i in range(16)], kind="completion")
    kept = execute(_config(method="catalyst", llm="local", restart="none"), tmp_path / "kept", llm_client=client,
                   progress=False)
    assert kept["llm"]["calls"] == 2 and client.remaining == 0 and not kept.get("restarts")
    assert kept["test_accuracy"] == coop["test_accuracy"]
    ctx = [load_state(tmp_path / name / "state.pt")["state"]["optimizer"]["state"]["gradient"]["state"]["ctx"] for name in ("coop", "kept")]
    assert torch.equal(*ctx)
