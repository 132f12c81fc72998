"""Valid new templates per LLM call: the local base model (Gemma 3 270M) against the local chat model
(Qwen2.5-Coder-1.5B-Instruct), each with the meta-prompt its presets give it, in one run.

    python benchmarks/llm_valid_rate.py [--rounds 4] [--threads 1] [--only gemma|qwen]

The history is a catalyst round as a run sees it: the projections of a 4-shot run of the embedded model
(with the prompt learner's "x" filler words) and their scores on the scoring split.  Each variant asks
``--rounds`` rounds of the same history through :class:`LLMPromptOptimizer` (the catalyst's own
parser: valid = a new template that passes every check), with the run's hashed seeds, so the numbers
are what a run would get.  Printed: calls, valid templates, valid per call, seconds per call, and a
few of the templates.  The Qwen variants also show its answer when the filler words are left in.
"""
from __future__ import annotations

import argparse
import json
import time

from catalyst_nb.llm import FASHION_MNIST_TASK, ScoredTemplate
from catalyst_nb.llm.optimizer import LLMPromptOptimizer
from catalyst_nb.optim.catalyst_config import llm_settings

# round 0 of `catalyst-nb run --method random-edits --shots 4 --steps 40 --seed 1` (scoring loss, accuracy)
HISTORY = [
    ScoredTemplate("x x x x a photo of a {}.", 0.4348, 0.8281),
    ScoredTemplate("xx x x a photo of a {}.", 0.4888, 0.7281),
    ScoredTemplate("xx x a photo of a {}.", 0.4740, 0.7781),
    ScoredTemplate("x x x xx a photo of a {}.", 0.4802, 0.7719),
    ScoredTemplate("x x x x a photo of an {}.", 0.4650, 0.7906),
    ScoredTemplate("x x x x a picture of a {}.", 0.4561, 0.8031),
]


def measure(name: str, client, *, preset: str, rounds: int, seed: int, **overrides) -> dict:
    settings = llm_settings(preset, client.kind, {"seed": seed, **overrides})
    opt = LLMPromptOptimizer(client, task=FASHION_MNIST_TASK, **settings)
    started = time.perf_counter()
    for _ in range(rounds):
        opt.ask(HISTORY)
    seconds = time.perf_counter() - started
    calls = sum(r.n_calls for r in opt.rounds)
    valid = [p.template for p in opt.proposals]
    return {"variant": name, "preset": preset, "calls": calls, "valid": len(valid),
            "valid_per_call": round(len(valid) / calls, 3), "seconds_per_call": round(seconds / calls, 2),
            "examples": valid[:6], "first_reply": opt.rounds[0].replies[0] if opt.rounds else ""}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--only", choices=["gemma", "qwen"], default=None)
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per call (a busy CPU is slow)")
    args = parser.parse_args()
    results: list[dict] = []

    def report(row: dict) -> None:
        results.append(row)
        print(json.dumps(row), flush=True)
    if args.only in (None, "gemma"):
        from catalyst_nb.llm import LocalLLMServer

        with LocalLLMServer(n_threads=args.threads) as server:
            client = server.completion_client()
            for preset in ("default", "paper"):
                report(measure(f"gemma-3-270m, {preset}", client, preset=preset, rounds=args.rounds,
                               seed=args.seed))
    if args.only in (None, "qwen"):
        from catalyst_nb.llm.launcher import local_chat_server

        started = time.perf_counter()
        with local_chat_server(n_threads=args.threads) as server:
            start_s = time.perf_counter() - started
            client = server.chat_client(timeout=args.timeout)
            for preset in ("paper", "default"):
                row = measure(f"qwen2.5-coder-1.5b-instruct, {preset}", client, preset=preset, rounds=args.rounds,
                              seed=args.seed)
                report({**row, "server_start_s": round(start_s, 1)})
            report(measure("qwen2.5-coder-1.5b-instruct, paper, filler shown", client, preset="paper",
                           rounds=args.rounds, seed=args.seed, without_filler=False))


if __name__ == "__main__":
    main()
