"""One run, one object: the same config in a notebook (in-process) and on the command line gives the same
events; the experiment reads, evaluates, waits for approval and stops what it started."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from catalyst_nb import Experiment, RunConfig
from catalyst_nb.runs import RunFolder
from deterministic_llm import deterministic_llm

ROOT = Path(__file__).resolve().parents[1]
SMALL = dict(model="tiny-native", pretrained="none", shots=2, steps=18, scoring_shots=4,
             gradient={"n_ctx": 4, "batch_size": 8, "lr": 0.5}, catalyst={"rounds": 2})


def _toml(config: dict) -> str:
    """A config dict as a TOML file (top-level keys first, then one table per dict)."""
    def value(v):
        return json.dumps(v)  # strings, numbers and booleans are written alike in JSON and TOML

    lines = [f"{k} = {value(v)}" for k, v in config.items() if not isinstance(v, dict)]
    for name, table in config.items():
        if isinstance(table, dict):
            lines += [f"[{name}]", *(f"{k} = {value(v)}" for k, v in table.items())]
    return "\n".join(lines) + "\n"


def _comparable(folder: Path) -> list[dict]:
    """The events as written, without what measures time."""
    events = []
    for e in RunFolder(folder).read_events():
        e = {k: v for k, v in e.items() if k != "seconds"}
        if e.get("kind") == "llm":
            e["data"] = {k: v for k, v in e["data"].items() if k != "latency_s"}
        events.append(e)
    return events


def test_a_notebook_and_the_command_line_give_identical_events(tmp_path):
    env = dict(os.environ, HF_HUB_OFFLINE="1", CATALYST_NB_CACHE=str(tmp_path / "cache"), PYTHONPATH=str(ROOT),
               CATALYST_NB_THREADS="1")
    env.pop("OPENAI_API_KEY", None)
    with deterministic_llm() as url:
        config = {"method": "catalyst", **SMALL, "llm": {"source": url, "model": "fake"}}
        (tmp_path / "run.toml").write_text(_toml(config))
        # the notebook's lines
        with Experiment.from_toml(tmp_path / "run.toml", folder=tmp_path / "notebook", progress=False) as exp:
            summary = exp.run(progress=False)
        # the command line's
        done = subprocess.run([sys.executable, "-m", "catalyst_nb", "run", str(tmp_path / "run.toml"),
                               "--out", str(tmp_path / "cli"), "--no-progress"],
                              env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    notebook, cli = _comparable(tmp_path / "notebook"), _comparable(tmp_path / "cli")
    kinds = [e.get("kind") for e in notebook]
    assert kinds.count("llm") == 2 and kinds.count("restart") >= 1 and kinds.count("stage_end") == 3
    assert notebook == cli
    saved = json.loads((tmp_path / "cli" / "summary.json").read_text())
    assert saved["test_accuracy"] == summary["test_accuracy"] and saved["llm"] == summary["llm"]
    assert json.loads((tmp_path / "cli" / "config.json").read_text())["config"] == exp.config.to_dict()


def test_without_a_folder_nothing_is_written_and_the_run_is_the_same(tmp_path, monkeypatch):
    from catalyst_nb.evaluation import EvalResult

    monkeypatch.chdir(tmp_path)
    with Experiment(method="coop", **SMALL, progress=False) as in_memory:
        in_memory.run(progress=False)
    assert list(tmp_path.iterdir()) == []
    with Experiment(RunConfig(method="coop", **SMALL), folder=tmp_path / "run", progress=False) as written:
        written.run(progress=False)
    assert [e["loss"] if e["type"] == "step" else e["kind"] for e in in_memory.events] == \
        [e["loss"] if e["type"] == "step" else e["kind"] for e in written.events]
    assert in_memory.summary()["test_accuracy"] == written.summary()["test_accuracy"]
    assert isinstance(in_memory.evaluate("scoring"), EvalResult)
    assert in_memory.evaluate("test").accuracy == in_memory.summary()["test_accuracy"]
    with pytest.raises(ValueError, match="split='new' exists only in a base-to-new run"):
        in_memory.evaluate("new")
    with pytest.raises(ValueError, match="split='valid'"):
        in_memory.evaluate("valid")
    with pytest.raises(RuntimeError, match="done"):
        in_memory.step()


def test_one_set_of_defaults_warm_up_and_task(tiny_splits):
    """The experiment leaves the warm-up and the task description to the rules the optimizers use alone."""
    from catalyst_nb import CatalystOptimizer, PromptLearner
    from catalyst_nb.llm.examples import describe_task

    with Experiment(method="coop", **SMALL, progress=False) as exp:
        assert exp.optimizer.gradient.config.warmup_steps == 5  # GradientConfig's rule: min(5, total - 1)
        assert exp.context.task == describe_task(exp.context.train.name, exp.context.classnames)
        assert exp.config.gradient.n_ctx == 4 and RunConfig().gradient.n_ctx == 4
    train, scoring, _ = tiny_splits
    alone = CatalystOptimizer(PromptLearner(exp.context.clip, train.classnames, n_ctx=4), train, scoring=scoring,
                              client=None, rounds=1, gradient={"total_steps": 18})
    assert alone.gradient.config.warmup_steps == 5
    assert alone.llm.task == describe_task(train.name, train.classnames)


def test_a_human_approval_returns_from_run_and_the_next_run_continues():
    from catalyst_nb.llm import ScriptedClient
    from catalyst_nb.widgets import RestartApproval

    client = ScriptedClient([f"a {{}} on rail {i}" for i in range(32)], kind="completion")
    with Experiment(method="catalyst", **SMALL, llm_client=client, approval="human", progress=False) as exp:
        first = exp.run(progress=False)
        assert first["status"] == "awaiting approval" and exp.awaiting is not None
        assert exp.events[-1]["type"] == "round" and exp.events[-1]["kind"] == "awaiting"
        RestartApproval(exp.optimizer).reject()
        exp.run(progress=False)
        assert exp.status == "awaiting approval"  # round 1 waits too
        RestartApproval(exp.optimizer).reject()
        final = exp.run(progress=False)
    assert final["status"] == "done" and final["budget_used"] == 18
    decisions = [e for e in exp.events if e.get("kind") == "decision"]  # taken outside step(), recorded all the same
    assert [(e["round"], e["data"]["decider"]) for e in decisions] == [(0, "human"), (1, "human")]


def test_rounds_with_nothing_usable_are_in_the_events_file_as_the_summary_counts_them(tmp_path):
    from catalyst_nb.llm import ScriptedClient

    client = ScriptedClient(["{}"] * 32, kind="completion")  # no line is a template
    with Experiment(method="catalyst", **SMALL, folder=tmp_path / "run", llm_client=client, progress=False) as exp:
        summary = exp.run(progress=False)
    written = [e for e in RunFolder(tmp_path / "run").read_events() if e.get("kind") == "skipped"]
    assert summary["llm"]["skipped"] == 2 and len(written) == 2


def test_the_local_server_starts_lazily_and_stops_on_exit(monkeypatch):
    import catalyst_nb.experiment.build as build
    from catalyst_nb.llm import ScriptedClient

    made = []

    class FakeLocalServer(ScriptedClient):
        def __init__(self):
            super().__init__([f"a {{}} in shop {i}" for i in range(32)], kind="completion")
            self.closed = False
            made.append(self)

        def close(self):
            self.closed = True

    monkeypatch.setattr(build, "LazyLocalServer", FakeLocalServer)
    with Experiment(method="catalyst", **{**SMALL, "catalyst": {"rounds": 1}}, progress=False) as exp:
        assert len(made) == 1 and not made[0].closed
        exp.run(progress=False)
    assert made[0].closed
    with Experiment(method="coop", **SMALL, progress=False):
        assert len(made) == 1  # no LLM for CoOp


def test_settings_come_flat_nested_or_from_a_file_alike(tmp_path):
    conf = tmp_path / "run.toml"
    conf.write_text(_toml({"method": "coop", **SMALL}))
    nested = RunConfig(method="coop", **SMALL)
    flat = RunConfig(method="coop", model="tiny-native", pretrained=None, shots=2, steps=18, scoring_shots=4,
                     n_ctx=4, batch_size=8, lr=0.5, rounds=2)
    assert nested == flat == RunConfig.from_dict(json.loads(json.dumps(flat.to_dict())))
    with pytest.raises(ValueError, match=r"unknown \[gradient\] settings \['lrr'\]"):
        Experiment(method="coop", gradient={"lrr": 1})
    with pytest.raises(ValueError, match="approval='sometimes'"):
        Experiment(method="coop", approval="sometimes")
    with pytest.raises(ValueError, match="llm_samples=0"):
        RunConfig(llm={"samples": 0})
    from catalyst_nb.experiment.build import llm_overrides

    # the embedded model's server decodes a round's samples together; another server gets separate calls
    assert llm_overrides(RunConfig(seed=3, llm_temperature=1.3)) == {"seed": 3, "temperature": 1.3,
                                                                     "batch_samples": True}
    assert llm_overrides(RunConfig(seed=3, llm="http://127.0.0.1:9/v1", llm_kind="completion")) == {"seed": 3}
    assert "batch_samples" not in llm_overrides(RunConfig(llm="local-chat"))
    from catalyst_nb.runs.config import load_toml

    assert RunConfig.from_dict(load_toml(conf)) == nested
