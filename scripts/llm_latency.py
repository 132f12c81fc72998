"""Measure the latency per call of the embedded local LLM and show proposals it makes.

    python scripts/llm_latency.py [--calls 10] [--base-url URL --model NAME] [--record CASSETTE]

Without ``--base-url`` it starts the embedded Gemma 3 270M server itself. Each call sends the
completion meta-prompt built from the illustrative Fashion-MNIST history (a different seed per call,
so the server cannot answer from a cache of the whole reply), then an ``LLMPromptOptimizer`` asks for
proposals until it has three. ``--record`` saves those optimizer rounds as a cassette for offline
replay. Gemma weights: Gemma Terms of Use, https://ai.google.dev/gemma/terms.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from catalyst_nb.llm import (
    FASHION_MNIST_TASK,
    LocalLLMServer,
    OpenAICompletionClient,
    RecordingClient,
    example_fashion_mnist_history,
)
from catalyst_nb.llm.meta_prompt import MetaPromptConfig, build_request
from catalyst_nb.llm.optimizer import LLMPromptOptimizer


def measure(client, *, calls: int, seed: int, temperature: float, max_tokens: int) -> dict:
    history = example_fashion_mnist_history()
    rows = []
    for i in range(calls):
        request = build_request(
            history, FASHION_MNIST_TASK, client_kind=client.kind, model=client.model, config=MetaPromptConfig(),
            temperature=temperature, max_tokens=max_tokens, seed=seed + i,
        )
        response = client.complete(request)
        rows.append((response.latency_s, response.prompt_tokens or 0, response.completion_tokens or 0))
    latencies = [r[0] for r in rows]
    completion = sum(r[2] for r in rows)
    warm = latencies[1:] or latencies
    return {
        "calls": calls,
        "latency_s": {
            "first": latencies[0],
            "mean": statistics.fmean(latencies),
            "median": statistics.median(latencies),
            "min": min(latencies),
            "max": max(latencies),
            "mean_after_first": statistics.fmean(warm),
            "median_after_first": statistics.median(warm),
        },
        "prompt_tokens_per_call": statistics.fmean(r[1] for r in rows),
        "completion_tokens_per_call": completion / calls,
        "completion_tokens_per_s": completion / sum(latencies),
    }


def examples(client, *, seed: int, temperature: float, max_tokens: int, want: int, max_rounds: int) -> list[dict]:
    opt = LLMPromptOptimizer(client, task=FASHION_MNIST_TASK, seed=seed, temperature=temperature, max_tokens=max_tokens)
    history = example_fashion_mnist_history()
    for _ in range(max_rounds):
        opt.ask(history)
        if len(opt.proposals) >= want:
            break
    return [{"id": p.id, "text": p.template, "round": p.round} for p in opt.proposals[:want]] + [
        {"rounds": len(opt.rounds), "empty_rounds": sum(r.empty for r in opt.rounds)}
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--temperature", type=float, default=0.7)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--base-url", default=None, help="an already running OpenAI-compatible server")
    parser.add_argument("--model", default=None, help="model name at --base-url")
    parser.add_argument("--record", default=None, help="save the proposal rounds as a cassette here")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    args = parser.parse_args()

    server = None
    started = time.perf_counter()
    if args.base_url is None:
        server = LocalLLMServer().start()
        client = server.completion_client()
    else:
        client = OpenAICompletionClient(args.model or "local", base_url=args.base_url, api_key="EMPTY", max_retries=0)
    startup_s = time.perf_counter() - started
    try:
        result = measure(client, calls=args.calls, seed=args.seed, temperature=args.temperature, max_tokens=args.max_tokens)
        result["server_startup_s"] = startup_s if server is not None else None
        rec = RecordingClient(client) if args.record else client
        found = examples(rec, seed=args.seed, temperature=args.temperature, max_tokens=args.max_tokens, want=3, max_rounds=6)
        if args.record:
            rec.cassette.save(args.record)
        result["proposals"], result["proposal_rounds"] = found[:-1], found[-1]
    finally:
        if server is not None:
            server.stop()

    if args.json:
        print(json.dumps(result, indent=1))
        return
    lat = result["latency_s"]
    if result["server_startup_s"] is not None:
        print(f"server start-up: {result['server_startup_s']:.2f} s")
    print(f"{result['calls']} calls: mean {lat['mean']:.3f} s, median {lat['median']:.3f} s, "
          f"first {lat['first']:.3f} s, min {lat['min']:.3f} s, max {lat['max']:.3f} s")
    print(f"after the first call: mean {lat['mean_after_first']:.3f} s, median {lat['median_after_first']:.3f} s")
    print(f"tokens per call: {result['prompt_tokens_per_call']:.0f} prompt, {result['completion_tokens_per_call']:.1f} completion; "
          f"{result['completion_tokens_per_s']:.1f} completion tokens/s")
    print(f"proposals ({result['proposal_rounds']['rounds']} rounds, {result['proposal_rounds']['empty_rounds']} empty):")
    for p in result["proposals"]:
        print(f"  {p['id']}: {p['text']}")


if __name__ == "__main__":
    main()
