"""The catalyst's wall time against CoOp's on the demo setting, and where its extra time goes.

Demo setting: the embedded model, 16 shots, n_ctx 8, 250 steps, 3 rounds, the real local Gemma server.
Runs CoOp and the catalyst variants interleaved (``--repeats`` times each, in one process, on the same
machine state) through the run layer (``execute``: events file and state save after every unit, as the
CLI runs them) and prints, per variant: the median wall time, its ratio to CoOp's, and the time split
into setup (model and cached features), gradient steps, the LLM calls, scoring, evaluation, probe
forks, restarts, bookkeeping (event and state writes) and the tail (final test, summary, report).

Variants (torch's threads and the local LLM server's):
  coop      CoOp with the run layer's own thread choice (the CPUs other work leaves free);
  coop-all  CoOp with torch on every CPU, busy or not;
  reserve   the catalyst with the old policy: the server's one core reserved for the whole run (torch
            gets the free CPUs less one) and the server started at the first call;
  lend      the server lends its cores (the shipped policy): torch gets the free CPUs, the server is
            started on the free CPUs too and loads while the first stage runs; a round's 8 samples are
            the 8 choices of one call, decoded as one batch by the embedded model's own server;
  lend-sep  as lend, but llama-cpp-python's server and a round's 8 samples as 8 separate calls (before);
  projection  the catalyst's loop without an LLM (the projection-restarts control: candidates scored, no LLM);
  lend1     as lend, the server on one thread;
  lend-all  as lend, torch and the server on every CPU, busy or not;
  probe     lend, with the probe restart policy (10 steps, top 2: three forks, batched).

    python benchmarks/catalyst_wall_time.py [--repeats 2] [--variants coop reserve lend] [--out runs/bench-wall]
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

from catalyst_nb.experiment import execute
from catalyst_nb.llm.batch_decoding import choice_seed
from catalyst_nb.llm.client import LLMResponse
from catalyst_nb.llm.launcher import LocalLLMServer, WarmingLocalClient
from catalyst_nb.runs import RunConfig
from catalyst_nb.threads import THREADS_ENV, available_cpus, free_cpus

DEMO = dict(shots=16, n_ctx=8, steps=250, rounds=3, seed=1)
VARIANTS = ("coop", "coop-all", "reserve", "lend", "lend-sep", "projection", "lend1", "lend-all", "probe")
PARTS = ("setup", "steps", "llm", "scoring", "eval", "probe", "restart", "bookkeeping", "tail")


class _StartAtFirstCall:
    """The old run client: the server starts (and is waited for) at the first call, one thread."""

    kind = "completion"

    def __init__(self, n_threads: int) -> None:
        self.model = "gemma-3-270m"
        self._server = LocalLLMServer(n_threads=n_threads, engine="llama-cpp")
        self._client: Any = None

    def complete(self, request: Any) -> Any:
        if self._client is None:
            self._client = self._server.start().completion_client()
        return _separately(self._client, request)

    def close(self) -> None:
        self._server.stop()


def _separately(client: Any, request: Any) -> Any:
    """A request's ``n`` choices as ``n`` calls of one choice each (seeded as the batched server seeds its
    choices), as the catalyst sent a round's samples before its server decoded them together."""
    replies = [client.complete(dataclasses.replace(request, n=1, seed=choice_seed(request.seed, i)))
               for i in range(request.n)]
    return LLMResponse(texts=tuple(t for r in replies for t in r.texts), model=replies[0].model,
                       prompt_tokens=sum(r.prompt_tokens or 0 for r in replies),
                       completion_tokens=sum(r.completion_tokens or 0 for r in replies),
                       latency_s=sum(r.latency_s for r in replies),
                       finish_reasons=tuple(f for r in replies for f in r.finish_reasons))


class _SeparateCalls(WarmingLocalClient):
    """The shipped client on llama-cpp-python's server, a request's choices sent as separate calls."""

    def __init__(self) -> None:
        super().__init__(engine="llama-cpp")

    def complete(self, request: Any) -> Any:
        return _separately(super(), request)


def _setting(variant: str, steps: int) -> tuple[RunConfig, int, Any]:
    """(config, torch threads, client) of one variant.  The threads are counted as the run layer counts
    them (the CPUs other work leaves free) *before* the variant's server starts loading, as a run does."""
    cpus, free = available_cpus(), free_cpus()
    demo = {**DEMO, "steps": steps}
    coop = RunConfig(method="coop", llm="none", **demo)
    config = RunConfig(method="catalyst", **demo)
    if variant == "coop":
        return coop, free, None
    if variant == "coop-all":
        return coop, cpus, None
    if variant == "reserve":
        return config, max(1, free - 1), _StartAtFirstCall(1)
    if variant == "projection":
        return RunConfig(method="projection-restarts", llm="none", **demo), free, None
    if variant == "lend-sep":
        return config, free, _SeparateCalls()
    if variant == "lend1":
        return config, free, WarmingLocalClient(n_threads=1)
    if variant == "lend-all":
        return config, cpus, WarmingLocalClient(n_threads=cpus)
    if variant == "probe":
        config = RunConfig(method="catalyst", restart="probe", probe_steps=10, probe_top=2, **demo)
    return config, free, WarmingLocalClient()


def _split(events: list[tuple[float, dict[str, Any]]], started: float, ended: float) -> dict[str, float]:
    """Wall time per part from the run's events (each with its own ``seconds``) and their arrival times."""
    parts = dict.fromkeys(PARTS, 0.0)
    if not events:
        parts["setup"] = ended - started
        return parts
    first_at, first = events[0]
    parts["setup"] = first_at - started - float(first.get("seconds") or 0.0)
    kinds = {"llm": "llm", "candidates": "scoring", "proposals": "scoring", "stage_end": "eval",
             "decision": "probe", "restart": "restart", "skipped": "llm"}
    for _, event in events:
        seconds = float(event.get("seconds") or 0.0)
        part = "steps" if event.get("type") == "step" else kinds.get(event.get("kind", ""), "bookkeeping")
        parts[part] += seconds
    measured = sum(parts[p] for p in PARTS if p not in ("setup", "bookkeeping", "tail"))
    parts["bookkeeping"] = max(events[-1][0] - first_at + float(first.get("seconds") or 0.0) - measured, 0.0)
    parts["tail"] = ended - events[-1][0]
    return parts


def run_once(variant: str, out: Path, *, steps: int = DEMO["steps"]) -> dict[str, Any]:
    config, threads, client = _setting(variant, steps)
    os.environ[THREADS_ENV] = str(threads)  # the run layer's thread setting follows it
    events: list[tuple[float, dict[str, Any]]] = []
    started = time.perf_counter()
    try:
        summary = execute(config, out, overwrite=True, progress=False, llm_client=client,
                          on_event=lambda e: events.append((time.perf_counter(), e)))
    finally:
        if client is not None:
            client.close()
    ended = time.perf_counter()
    threads = torch.get_num_threads()
    n_steps = sum(1 for _, e in events if e.get("type") == "step")
    return {"variant": variant, "wall": ended - started, "threads": threads, "parts": _split(events, started, ended),
            "steps": n_steps, "test": summary.get("test_accuracy"), "llm": summary.get("llm")}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--variants", nargs="+", default=["coop", "reserve", "lend"], choices=VARIANTS)
    p.add_argument("--out", default="runs/bench-wall")
    p.add_argument("--steps", type=int, default=DEMO["steps"], help="fewer for a smoke run (the demo: 250)")
    args = p.parse_args(argv)
    if "coop" not in args.variants:
        args.variants.insert(0, "coop")
    out = Path(args.out)
    from catalyst_nb.experiment.build import build_context

    build_context(RunConfig(method="coop", llm="none", **DEMO), progress=False)  # features cached, untimed
    load_before = os.getloadavg()
    print(f"{available_cpus()} CPUs; load average before: {' '.join(f'{x:.2f}' for x in load_before)}", flush=True)
    results: dict[str, list[dict[str, Any]]] = {v: [] for v in args.variants}
    for r in range(args.repeats):
        for variant in args.variants:
            res = run_once(variant, out / variant, steps=args.steps)
            results[variant].append(res)
            out.mkdir(parents=True, exist_ok=True)
            (out / "results.json").write_text(json.dumps(results, indent=1))  # kept if a later run fails
            print(f"  repeat {r + 1} {variant:<8} {res['wall']:6.1f} s  torch threads {res['threads']}  "
                  f"{res['steps']} steps  test {100 * (res['test'] or float('nan')):.2f} %  "
                  f"load {os.getloadavg()[0]:.2f}", flush=True)
    load_after = os.getloadavg()
    coop = statistics.median(r["wall"] for r in results["coop"])
    print()
    print(f"{'variant':<8} {'wall s':>7} {'x CoOp':>7} {'steps/s':>8} " + " ".join(f"{p:>11}" for p in PARTS))
    for variant, runs in results.items():
        wall = statistics.median(r["wall"] for r in runs)
        parts = {p: statistics.median(r["parts"][p] for r in runs) for p in PARTS}
        rate = statistics.median(r["steps"] / max(r["parts"]["steps"], 1e-9) for r in runs)
        print(f"{variant:<8} {wall:7.1f} {wall / coop:7.2f} {rate:8.1f} " + " ".join(f"{parts[p]:11.1f}" for p in PARTS))
    print()
    base = {p: statistics.median(r["parts"][p] for r in results["coop"]) for p in PARTS}
    for variant, runs in results.items():
        if variant == "coop":
            continue
        extra = {p: statistics.median(r["parts"][p] for r in runs) - base[p] for p in PARTS}
        total = statistics.median(r["wall"] for r in runs) - coop
        print(f"{variant}: +{total:.1f} s over CoOp = " + ", ".join(f"{p} {v:+.1f}" for p, v in extra.items() if abs(v) >= 0.05))
    print(f"load average after: {' '.join(f'{x:.2f}' for x in load_after)} (1, 5, 15 min; other work shares the machine)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
