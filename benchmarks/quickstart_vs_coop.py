"""Notebook 01's configuration at its full budget, outside the notebook: the catalyst against CoOp.

n_ctx 4 from "a photo of a", 250 steps, warm-up 2, 3 rounds, the default preset, the task left to the
optimizer, 16 shots, a 32-per-class scoring split from ``val``, 300 test images per class, the local
Gemma 3 270M.  Per seed it prints one JSON line: both test accuracies, their difference in points, and
every decision with the context's and the proposal's scoring scores and the rule's reason.  The catalyst
runs first; when it kept its context every round it is CoOp step for step (tests/test_runs.py), and the
CoOp run that follows shows the same number.

    python benchmarks/quickstart_vs_coop.py --seeds 1,2,3 [--restart best]
"""
from __future__ import annotations

import argparse
import json
import time

from catalyst_nb import (CatalystOptimizer, GradientPromptOptimizer, LocalLLMServer, PromptLearner,
                         extract_features, few_shot, load_clip, load_embedded_fashion_mnist)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--restart", default=None, help="restart rule (default: the preset's)")
    args = parser.parse_args()
    clip = load_clip()
    data = {part: load_embedded_fashion_mnist(part) for part in ("train", "val", "test")}
    rule = {} if args.restart is None else {"restart": args.restart}
    with LocalLLMServer() as server:
        for seed in (int(s) for s in args.seeds.split(",")):
            started = time.perf_counter()
            train = extract_features(clip, few_shot(data["train"], shots=16, seed=seed), progress=False)
            scoring = extract_features(clip, few_shot(data["val"], shots=32, seed=seed), progress=False)
            test = extract_features(clip, few_shot(data["test"], shots=300, seed=seed), progress=False)
            catalyst = CatalystOptimizer(PromptLearner(clip, train.classnames, ctx_init="a photo of a"), train,
                                         scoring=scoring, evaluation=test, llm=server.completion_client(),
                                         rounds=3, gradient=dict(total_steps=250, warmup_steps=2, seed=seed), **rule)
            catalyst.run(progress=False)
            line = {"seed": seed, "rule": catalyst.config.restart, "catalyst": catalyst.gradient.evaluate(test).accuracy,
                    "decisions": [{"round": e.round, "step": e.step, "chosen": e.data["chosen"],
                                   "template": e.data["template"], "current": e.data["current"],
                                   "proposal": e.data["proposal"], "reason": e.data["reason"]}
                                  for e in catalyst.events if e.kind == "decision"]}
            print(json.dumps(line), flush=True)
            coop = GradientPromptOptimizer(PromptLearner(clip, train.classnames, ctx_init="a photo of a"), train,
                                           total_steps=250, warmup_steps=2, seed=seed)
            coop.run(250, progress=False)
            line.update(coop=coop.evaluate(test).accuracy, seconds=round(time.perf_counter() - started))
            line["diff_points"] = 100 * (line["catalyst"] - line["coop"])
            print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
