"""Human approval through a run folder: the inbox's rules, checks from the tokenizer alone, the waiting
run (in-process and as `catalyst-nb run --approval human`), `catalyst-nb approve|status`, attached notebooks,
and sweeps whose cells wait."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from catalyst_nb.experiment import execute
from catalyst_nb.runs import RunConfig
from catalyst_nb.runs.approval_check import TemplateFit, decide, fit_spec
from catalyst_nb.runs.approval_inbox import ApprovalError, ApprovalInbox, Decision, DecisionTaken
from catalyst_nb.runs.status import run_status
from test_runs import _cli_args, _comparable, _env, llm_url  # noqa: F401 - llm_url is a fixture

ROOT = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------------------------------- set-up

def _request(run_id: str = "run-a", round_index: int = 0, recommended: str | None = "r0-1") -> dict:
    from catalyst_nb.candidates import Candidate
    from catalyst_nb.optim.events import AwaitingApproval

    proposals = tuple(Candidate(id=f"r0-{i}", template=t, source="llm", round=0, loaded=t).with_score(1.0 + i, 0.5 - i / 10)
                      for i, t in enumerate(["a photo of a {}", "a grey {}"]))
    awaiting = AwaitingApproval(round=round_index, step=6, proposals=proposals, recommended=recommended,
                                current={"loss": 2.0, "accuracy": 0.3}, meta_prompt="", replies=(), dropped=(),
                                policy="first")
    return {"run_id": run_id, "posted": time.time(), "step": 6, "deadline": None,
            "known": {p.id: p.template for p in proposals},
            "fit": {"model": "tiny-native", "n_ctx": 4, "class_token_position": "end", "filler": "X"},
            "awaiting": awaiting.to_dict()}


def _asking_inbox(tmp_path: Path, **kw) -> ApprovalInbox:
    inbox = ApprovalInbox(tmp_path / "run").start(fresh=True)
    inbox.post(_request(run_id=inbox.run_id, **kw))
    return inbox


def _config(**kw) -> RunConfig:
    base = dict(method="catalyst", model="tiny-native", pretrained=None, shots=2, steps=18, rounds=2, n_ctx=4,
                batch_size=8, lr=0.5, scoring_shots=4, llm="local", approval="human")
    base.update(kw)
    return RunConfig(**base)


def _scripted():
    from catalyst_nb.llm import ScriptedClient

    words = ["grey", "folded", "small", "clean", "worn", "bright", "new", "old", "dark", "plain", "soft", "large",
             "thin", "cheap", "odd", "neat"]
    return ScriptedClient([f"a {w} {{}}" for w in words], kind="completion")  # 2 rounds x 8 samples, all new


def _run_in_thread(config: RunConfig, folder: Path, **kw) -> tuple[threading.Thread, dict]:
    result: dict = {}

    def target() -> None:
        try:
            result["summary"] = execute(config, folder, llm_client=_scripted(), progress=False, **kw)
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            result["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, result


def _until(condition, timeout: float = 300, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"{what} not reached in {timeout} s")


def _decisions(folder: Path) -> list[dict]:
    lines = [json.loads(line) for line in (folder / "events.jsonl").read_text().splitlines()]
    return [e for e in lines if e.get("kind") in ("decision", "restart")]


# ---------------------------------------------------------------------------------------------- the inbox

@pytest.mark.parametrize("links", [True, False], ids=["hard-links", "no-hard-links"])
def test_the_first_of_many_racing_deciders_wins_and_the_others_are_told_its_decision(tmp_path, monkeypatch, links):
    if not links:  # a file system without hard links (some network mounts): exclusive creation instead
        def no_link(*_a, **_k):
            raise PermissionError("hard links not supported here")
        monkeypatch.setattr(os, "link", no_link)
    inbox = _asking_inbox(tmp_path)
    barrier = threading.Barrier(8)
    results: list = [None] * 8

    def decider(i: int) -> None:
        action = "reject" if i % 2 else "approve"
        barrier.wait()
        try:
            results[i] = decide(inbox.run_dir, action=action, decider="cli", candidate="2" if i % 2 == 0 else None)
        except DecisionTaken as exc:
            results[i] = exc

    threads = [threading.Thread(target=decider, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [r for r in results if isinstance(r, Decision)]
    losers = [r for r in results if isinstance(r, DecisionTaken)]
    assert len(winners) == 1 and len(losers) == 7
    assert inbox.decision(0) == winners[0]
    assert all(exc.taken == winners[0] and winners[0].describe() in str(exc) for exc in losers)
    assert [p.name for p in inbox.path.iterdir() if p.name.endswith(".tmp")] == []  # no temporary left behind


def test_decisions_for_another_round_or_another_run_are_refused(tmp_path):
    inbox = _asking_inbox(tmp_path)
    with pytest.raises(ApprovalError, match="round 1 is not waiting"):
        decide(inbox.run_dir, action="reject", decider="cli", round_index=1)
    with pytest.raises(ApprovalError, match="this decision is for run old-run"):
        decide(inbox.run_dir, action="reject", decider="notebook", run_id="old-run")
    with pytest.raises(ApprovalError, match=r"no proposal 'r9-9' in round 0"):
        decide(inbox.run_dir, action="approve", decider="cli", candidate="r9-9")
    with pytest.raises(ApprovalError, match=r"rank '3': round 0 has 2 proposals"):
        decide(inbox.run_dir, action="approve", decider="cli", candidate="3")
    assert inbox.decision(0) is None  # nothing refused was written
    taken = decide(inbox.run_dir, action="approve", decider="cli", candidate="#2")
    assert taken.candidate_id == "r0-1" and taken.text is None
    # the run moved on to round 1: an answer to round 0 names the decision round 0 got
    inbox.post(_request(run_id=inbox.run_id, round_index=1))
    with pytest.raises(DecisionTaken, match="round 0 was already decided: approve r0-1 by cli"):
        decide(inbox.run_dir, action="reject", decider="notebook", round_index=0)
    # a fresh run in the same folder forgets the old run's questions and answers
    fresh = ApprovalInbox(inbox.run_dir).start(fresh=True)
    assert fresh.run_id != taken.run_id and fresh.latest() is None and fresh.decision(0) is None


@pytest.mark.parametrize("position", ["end", "front", "middle"])
def test_the_decider_fits_a_text_exactly_as_the_runs_learner_does(tiny_native, position):
    from catalyst_nb.prompt_learner import PromptLearner

    learner = PromptLearner(tiny_native, ["shirt", "boot"], n_ctx=4, class_token_position=position)
    fit = TemplateFit(fit_spec(learner))
    texts = ["a {}", "a photo of a {}.", "a very small grey photo of a {} on a rail", "{} seen from far away today",
             "an old {} ."]
    for text in texts:
        assert fit.preview(text) == learner.fit_text(text)[1], text


def test_an_edit_that_would_be_cut_is_refused_naming_the_words_lost(tmp_path):
    inbox = _asking_inbox(tmp_path)
    with pytest.raises(ApprovalError, match=r"n_ctx=4\): the words 'a very small' would be cut") as refused:
        decide(inbox.run_dir, action="approve", decider="cli", candidate="1",
               text="a very small grey photo of a {}")
    assert "shorten it" in str(refused.value)
    with pytest.raises(ApprovalError, match="would be cut"):
        decide(inbox.run_dir, action="suggest", decider="cli", text="one two three four five {}")
    assert inbox.decision(0) is None
    with pytest.raises(ApprovalError, match=r"'a grey {}.' is the same as proposal 'r0-1' \('a grey {}'\)"):
        decide(inbox.run_dir, action="suggest", decider="cli", text="a grey {}.")  # as the optimizer would
    ok = decide(inbox.run_dir, action="approve", decider="cli", candidate="1", text="  a  small   {}  ")
    assert ok.text == "a small {}" and ok.candidate_id == "r0-0"


# ---------------------------------------------------------------------------------------------- in-process runs

def test_a_timeout_takes_the_recommendation_and_says_so(tmp_path):
    auto = execute(_config(approval="auto", rounds=1), tmp_path / "auto", llm_client=_scripted(), progress=False)
    timed = execute(_config(approval_timeout=0.0, rounds=1), tmp_path / "timed", llm_client=_scripted(),
                    progress=False)
    assert timed["status"] == auto["status"] == "done"
    assert timed["test_accuracy"] == auto["test_accuracy"] and timed["restarts"] == auto["restarts"]
    (decision,) = [e for e in _decisions(tmp_path / "timed") if e["kind"] == "decision"]
    (reference,) = [e for e in _decisions(tmp_path / "auto") if e["kind"] == "decision"]
    assert decision["data"]["decider"] == "timeout" and reference["data"]["decider"] == "auto"
    assert decision["data"]["chosen"] == reference["data"]["chosen"]
    assert ApprovalInbox(tmp_path / "timed").decision(0).decider == "timeout"


def test_a_notebook_attached_to_a_run_folder_follows_it_and_decides_in_the_same_panel(tmp_path):
    pytest.importorskip("ipywidgets")
    from catalyst_nb.runs import attach
    from catalyst_nb.widgets import RestartApproval

    folder = tmp_path / "run"
    thread, result = _run_in_thread(_config(), folder)
    _until(lambda: (folder / "config.json").exists(), what="the run's folder")
    run = attach(folder, follow=False)
    seen: list = []
    run.register_event_hook(lambda _run, event: seen.append(event))
    awaiting = run.wait_for_approval(timeout=300)
    assert run.status().state == "waiting for approval" and awaiting.round == 0
    assert [e.kind for e in run.events][:4] == ["stage_end", "candidates", "llm", "proposals"]
    assert len(run.trajectory) == 6 and run.trajectory[-1].step == 5 and awaiting in seen
    panel = RestartApproval(run)
    second = awaiting.proposals[1]
    panel.editors[1].value = "a neat {}"
    assert "neat" in panel.previews[1].value  # the preview comes from the run's tokenizer
    panel.approve(1)
    assert panel.decided
    # a second panel on the same round (another notebook) is told what was decided
    other = attach(folder, follow=False)
    other._shown = run._shown  # noqa: SLF001 - the other notebook looked at round 0 before the decision
    with pytest.raises(DecisionTaken, match=f"approve {second.id} edited to 'a neat {{}}' by notebook"):
        other.reject()
    run.wait_for_approval(timeout=300)  # round 1
    run.reject()
    thread.join(300)
    assert "error" not in result and result["summary"]["status"] == "done"
    run.poll()
    decisions = [e for e in run.events if e.kind == "decision"]
    assert [d.data["decider"] for d in decisions] == ["notebook", "notebook"]
    assert decisions[0].data["edited_from"] == second.id
    restart = next(e for e in run.events if e.kind == "restart")
    assert restart.data["template"] == "a neat {}" and decisions[1].data["chosen"] is None
    assert run_status(folder).state == "finished"


# ---------------------------------------------------------------------------------------------- the command line

def _cli(args: list[str], env: dict, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "catalyst_nb", *args], env=env, capture_output=True, text=True,
                          timeout=300, **kw)


def _waiting(folder: Path, round_index: int):
    inbox = ApprovalInbox(folder)
    return lambda: (inbox.pending() or {}).get("awaiting", {}).get("round") == round_index and inbox.waiting_alive()


def _wait_or_fail(proc: subprocess.Popen, ready, what: str, timeout: float = 400) -> None:
    def check():
        if proc.poll() is not None:
            raise AssertionError(f"the run ended (rc {proc.returncode}) before {what}: {proc.stderr.read()[-2000:]}")
        return ready()
    _until(check, timeout, what)


@pytest.mark.slow
def test_a_waiting_run_is_answered_from_the_shell_and_a_killed_one_resumes_to_the_same_events(tmp_path, llm_url):
    env = _env(tmp_path)
    ask = ["--approval", "human"]
    # uninterrupted: round 0 approved edited (the second proposal), round 1 rejected, both from the shell
    ref = tmp_path / "uninterrupted"
    proc = subprocess.Popen(_cli_args(llm_url, ref) + ask, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    _wait_or_fail(proc, _waiting(ref, 0), "round 0 waits")
    status = _cli(["status", str(ref)], env)
    assert status.returncode == 0 and "waiting for approval (round 0, the run is waiting)" in status.stdout
    assert "context would hold" in status.stdout and "<- recommended" in status.stdout
    done = _cli(["approve", str(ref), "2", "--text", "a neat {}"], env)
    assert done.returncode == 0 and "edited to 'a neat {}' by cli" in done.stdout, done.stderr
    _wait_or_fail(proc, _waiting(ref, 1), "round 1 waits")
    assert _cli(["approve", str(ref), "--reject", "--round", "1"], env).returncode == 0
    out, err = proc.communicate(timeout=400)
    assert proc.returncode == 0, err[-2000:]
    assert out.count("waits for approval: catalyst-nb approve") == 2  # the one line, once per round

    # the same run killed while it waits, answered while it is down, resumed
    run = tmp_path / "killed"
    proc = subprocess.Popen(_cli_args(llm_url, run) + ask, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    _wait_or_fail(proc, _waiting(run, 0), "round 0 waits")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    _until(lambda: not ApprovalInbox(run).waiting_alive(), 30, "the heartbeat to go stale")
    status = _cli(["status", str(run)], env)
    assert "waiting for approval (round 0, the run is not running" in status.stdout, status.stdout
    done = _cli(["approve", str(run), "2", "--text", "a neat {}"], env)
    assert done.returncode == 0 and "the run is not running" in done.stdout
    proc = subprocess.Popen(_cli_args(llm_url, run) + ask + ["--resume"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    _wait_or_fail(proc, _waiting(run, 1), "round 1 waits after the resume")
    # two deciders at once: the first wins, the second is told which decision was taken
    racers = [subprocess.Popen([sys.executable, "-m", "catalyst_nb", "approve", str(run), *extra], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
              for extra in (["--reject"], ["--reject", "--round", "1"])]
    results = [(p.wait(timeout=300), p.stdout.read(), p.stderr.read()) for p in racers]
    assert sorted(rc for rc, _, _ in results) == [0, 2], results
    winner = ApprovalInbox(run).decision(1)
    loser_err = next(err for rc, _, err in results if rc == 2)
    assert f"error: round 1 was already decided: {winner.describe()}" in loser_err
    out, err = proc.communicate(timeout=400)
    assert proc.returncode == 0, err[-2000:]
    # the same decisions as the uninterrupted run: the same run, event for event, bit for bit
    events, ctx = _comparable(run)
    ref_events, ref_ctx = _comparable(ref)
    assert events == ref_events and torch.equal(ctx, ref_ctx)
    decisions = [e for e in events if e.get("kind") == "decision"]
    assert len(decisions) == 2 and decisions[0]["data"]["edited_from"] is not None  # applied once, not twice
    assert _cli(["status", str(run)], env).stdout.startswith(f"{run}: finished")


def test_approve_and_status_refusals_are_errors_with_exit_code_2(tmp_path):
    env = _env(tmp_path)
    done = _cli(["status", str(tmp_path / "nothing")], env)
    assert done.returncode == 2 and "holds no run" in done.stderr
    done = _cli(["approve", str(tmp_path / "nothing"), "--reject"], env)
    assert done.returncode == 2 and "holds no run" in done.stderr
    inbox = _asking_inbox(tmp_path)
    (inbox.run_dir / "config.json").write_text(json.dumps({"config": _config().to_dict(), "fingerprint": {}}))
    done = _cli(["approve", str(inbox.run_dir), "1", "--text", "a very small grey photo of a {}"], env)
    assert done.returncode == 2 and "error:" in done.stderr and "the words 'a very small' would be cut" in done.stderr
    done = _cli(["approve", str(inbox.run_dir), "1", "--reject"], env)
    assert done.returncode == 2 and "take no proposal ID" in done.stderr
    assert inbox.decision(0) is None
    done = _cli(["run", "--method", "coop", "--approval", "human", "--out", str(tmp_path / "x")], env)
    assert done.returncode == 2 and "approval='human' needs a method with restarts" in done.stderr


# ---------------------------------------------------------------------------------------------- sweeps

def test_the_sweep_watcher_announces_each_waiting_cell_once(tmp_path):
    from catalyst_nb.sweeps.waiting import WaitingWatcher

    cell = tmp_path / "sweep" / "cells" / "catalyst__2shot__seed1"
    inbox = ApprovalInbox(cell).start(fresh=True)
    (cell / "config.json").write_text(json.dumps({"config": _config().to_dict(), "fingerprint": {}}))
    lines: list[str] = []
    watcher = WaitingWatcher(tmp_path / "sweep", lambda text, **_: lines.append(text))
    watcher.check()
    assert lines == []  # nothing asked yet
    inbox.post(_request(run_id=inbox.run_id))
    inbox.beat(0)
    watcher.check()
    watcher.check()
    assert len(lines) == 1 and lines[0].startswith("cell catalyst__2shot__seed1 waits for approval (round 0): "
                                                   f"catalyst-nb approve {cell}")
    decide(cell, action="reject", decider="cli")
    inbox.post(_request(run_id=inbox.run_id, round_index=1))
    watcher.check()
    assert len(lines) == 2 and "(round 1)" in lines[1]


@pytest.mark.slow
def test_a_sweep_lists_its_waiting_cell_and_the_other_cells_go_on(tmp_path, llm_url):
    env = _env(tmp_path)
    sweep = tmp_path / "sweep.toml"
    sweep.write_text(f"""
[defaults]
model = "tiny-native"
pretrained = "none"
steps = 18
rounds = 1
n_ctx = 4
batch_size = 8
lr = 0.5
scoring_shots = 4
llm = "{llm_url}"
llm_model = "fake"

[grid]
shots = [2]
seed = [1]

[methods."catalyst (human)"]
method = "catalyst"
approval = "human"

[methods.coop]
method = "coop"
""")
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "catalyst_nb", "sweep", str(sweep), "--out", str(out), "--jobs", "2",
                             "--no-progress"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True)
    reader.start()
    announced = _until(lambda: next((ln for ln in lines if "waits for approval" in ln), None) or
                       (proc.poll() is not None and pytest.fail(f"the sweep ended: {proc.stderr.read()[-2000:]}")),
                       600, "the waiting cell to be listed")
    cell = out / "cells" / announced.split()[1]
    assert announced.startswith("cell catalyst-human") and f"catalyst-nb approve {cell}" in announced
    # the other cell finishes while this one waits
    _until(lambda: any((out / "cells").glob("coop*/summary.json")), 600, "the coop cell to finish")
    assert run_status(cell).state == "waiting for approval"
    assert _cli(["approve", str(cell), "--reject"], env).returncode == 0
    rc = proc.wait(timeout=600)
    reader.join(10)
    assert rc == 0, proc.stderr.read()[-2000:]
    assert sum("waits for approval" in ln for ln in lines) == 1
    assert "2 cells: 2 run (0 failed)" in "".join(lines)
    (decision,) = [e for e in _decisions(cell) if e["kind"] == "decision"]
    assert decision["data"]["decider"] == "cli"


def test_a_decision_the_run_cannot_apply_is_set_aside_and_the_round_stays_open(tmp_path):
    from types import SimpleNamespace

    from catalyst_nb.optim.approval import AwaitingApproval
    from catalyst_nb.runs.approval_wait import ApprovalWaiter

    calls: list = []

    class Waiting:  # the optimizer's side of the protocol: what it waits for and its three verbs
        awaiting = AwaitingApproval.from_dict(_request()["awaiting"])
        step_count = 6
        learner = SimpleNamespace(clip=SimpleNamespace(name="tiny-native"), n_ctx=4, class_token_position="end",
                                  filler="X")
        llm = SimpleNamespace(proposals=())

        def approve(self, cid, text=None, *, decider):
            calls.append(("approve", cid, text, decider))
            raise ValueError(f"{text!r} cannot be loaded into the context")

        def reject(self, *, decider):
            calls.append(("reject", decider))
            return "decision event"

    inbox = ApprovalInbox(tmp_path / "run").start(fresh=True)
    (inbox.run_dir / "config.json").write_text(json.dumps({"config": _config().to_dict(), "fingerprint": {}}))
    waiter = ApprovalWaiter(inbox, poll=0.01)
    result: list = []
    thread = threading.Thread(target=lambda: result.append(waiter.wait(Waiting())))
    thread.start()
    _until(lambda: inbox.pending() is not None, 30, "the request")
    inbox.write_decision(Decision(run_id=inbox.run_id, round=0, action="approve", decider="cli",
                                  candidate_id="r0-0", text="a bad {}"))
    _until(lambda: inbox.refusals(0), 30, "the refusal")
    assert inbox.pending() is not None and "cannot be loaded" in inbox.refusals(0)[0]["reason"]
    assert "an earlier answer was refused: 'a bad {}' cannot be loaded" in run_status(inbox.run_dir).detail
    decide(inbox.run_dir, action="reject", decider="notebook")
    thread.join(30)
    assert result == ["decision event"]
    assert calls == [("approve", "r0-0", "a bad {}", "cli"), ("reject", "notebook")]


def test_a_decider_killed_while_writing_leaves_nothing_that_counts(tmp_path):
    inbox = _asking_inbox(tmp_path)
    # what a decider killed between writing its temporary file and linking it into place leaves behind
    (inbox.path / ".round-0.decision.json.k1ll3d.tmp").write_text('{"run_id": "x", "rou')
    assert inbox.decision(0) is None and inbox.pending() is not None
    (inbox.run_dir / "config.json").write_text(json.dumps({"config": _config().to_dict(), "fingerprint": {}}))
    assert run_status(inbox.run_dir).state == "waiting for approval"
    assert decide(inbox.run_dir, action="reject", decider="cli").action == "reject"
    assert inbox.decision(0).action == "reject" and inbox.pending() is None
