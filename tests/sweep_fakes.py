"""A stand-in for the run layer's ``execute`` in sweep tests: no model, deterministic numbers.

Module-level functions, so that worker processes and Ray tasks can import them.  Behaviour:
  * accuracy = a per-method base + 1 point per doubling of shots (not for zero-shot and LLM-only, which
    never read the few-shot images) + 0.1 point per seed;
  * ``lr == 9.0`` makes a NaN accuracy (a collapsed run);
  * a cell whose ``method:shots:seed`` is written in the file ``$SWEEP_FAKE_FAIL`` raises (a failing
    cell; the variable reaches worker processes and Ray workers, and a test removes the file to let
    the retry succeed);
  * every call is appended to ``calls.jsonl`` in the run folder (to see skips and resumes).
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

BASE = {"zero-shot": 0.60, "coop": 0.80, "llm-only": 0.62, "catalyst": 0.82, "projection-restarts": 0.805}


def accuracy(method: str, shots: int, seed: int, lr: float = 0.002) -> float:
    if lr == 9.0:
        return float("nan")
    if method in ("zero-shot", "llm-only"):  # as the real ones: they never read the few-shot images
        shots = 1
    return BASE[method] + 0.01 * math.log2(shots) + 0.001 * seed


def fake_execute(config, run_dir, *, resume=False, overwrite=False, progress=True, llm_client=None):
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.json").write_text(json.dumps(config.to_dict()))  # as the run layer: a run has started
    with open(run_dir / "calls.jsonl", "a") as log:
        log.write(json.dumps({"resume": resume, "pid": os.getpid()}) + "\n")
    flag = Path(os.environ.get("SWEEP_FAKE_FAIL", "/nonexistent"))
    fail = flag.read_text().strip() if flag.is_file() else None
    if fail == f"{config.method}:{config.shots}:{config.seed}":
        (run_dir / "state.pt").write_text("{}")  # an interrupted run leaves state behind
        raise RuntimeError(f"injected failure in {fail}")
    acc = accuracy(config.method, config.shots, config.seed, config.gradient.lr)
    summary = {
        "method": config.method, "preset": config.catalyst.preset, "seed": config.seed, "shots": config.shots,
        "steps": config.steps, "test_accuracy": acc, "zero_shot_accuracy": accuracy("zero-shot", config.shots, config.seed),
        "seconds": 0.01, "status": "done", "stages": [],
        "llm": {"valid": 3, "chosen": 1, "calls": 3} if config.method in ("catalyst", "llm-only") else {"valid": 0, "chosen": 0, "calls": 0},
        "llm_url": getattr(llm_client, "base_url", None),
    }
    if config.base_to_new:
        base, new = acc, acc - 0.1
        summary.update(base_accuracy=base, new_accuracy=new, harmonic_mean=2 * base * new / (base + new))
    (run_dir / "summary.json").write_text(json.dumps(summary))
    return summary


def threads_execute(config, run_dir, **kwargs):
    """``fake_execute`` that first sets torch's threads as the run layer does and reports the count."""
    import torch

    from catalyst_nb.threads import configure_torch_threads

    configure_torch_threads()
    summary = fake_execute(config, run_dir, **kwargs)
    summary["torch_threads"] = torch.get_num_threads()
    return summary


class PidServer:
    """A stand-in local LLM server whose URL names the process that made it (port 10000 + pid % 50000);
    like the embedded model's batched server, its answers depend on each request alone."""

    independent_requests = True

    def __init__(self):
        self.base_url = f"http://127.0.0.1:{10000 + os.getpid() % 50000}/v1"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class ChatPidServer:
    """A stand-in for the chat model's server (which does not say its answers are independent of earlier
    requests): URL ``/chat/v1`` on the PidServer's port; every start and every stop is appended (``start
    <pid>``, ``stop <pid>``) to the file ``$SWEEP_FAKE_STARTS`` when that is set."""

    def __init__(self):
        self.base_url = f"http://127.0.0.1:{10000 + os.getpid() % 50000}/chat/v1"

    def __enter__(self):
        starts = os.environ.get("SWEEP_FAKE_STARTS")
        if starts:
            with open(starts, "a") as log:
                log.write(f"start {os.getpid()}\n")
        return self

    def __exit__(self, *exc):
        starts = os.environ.get("SWEEP_FAKE_STARTS")
        if starts:
            with open(starts, "a") as log:
                log.write(f"stop {os.getpid()}\n")
        return False


def slow_execute(config, run_dir, **kwargs):
    """A cell that says it started (``started`` holds the worker's pid), then runs for minutes."""
    import time

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.json").write_text(json.dumps(config.to_dict()))
    (run_dir / "started").write_text(str(os.getpid()))
    time.sleep(300)
    return fake_execute(config, run_dir, **kwargs)
