"""One catalyst round on a real trajectory: gradient stage -> projected candidates -> scores -> LLM.

Runs a CoOp gradient stage on the embedded model with 16-shot Fashion-MNIST, collects the distinct
projected prompts of the stage (the paper's candidates), scores each as a hard prompt on the held-out
``val`` split, shows them with their scores to the LLM (the embedded Gemma 3 270M server by default),
then scores the LLM's proposals the same way and reports their test accuracy next to the candidates'.

    python benchmarks/llm_round.py [--steps 50] [--base-url URL --model NAME] [--chat]
"""
from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch

from catalyst_nb import (
    GradientPromptOptimizer,
    PromptLearner,
    evaluate_templates,
    extract_features,
    few_shot,
    load_clip,
    load_embedded_fashion_mnist,
)
from catalyst_nb.llm import (
    FASHION_MNIST_TASK,
    LocalLLMServer,
    OpenAIChatClient,
    OpenAICompletionClient,
    ScoredTemplate,
)
from catalyst_nb.llm.optimizer import LLMPromptOptimizer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--candidates", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=6, help="LLM calls at most, until 3 proposals")
    parser.add_argument("--base-url", default=None)
    parser.add_argument("--model", default=None)
    parser.add_argument("--chat", action="store_true", help="the server is a chat model")
    parser.add_argument("--weights", default="embedded", help="weights of the embedded model (tag or file)")
    args = parser.parse_args()
    torch.manual_seed(args.seed)

    clip = load_clip(pretrained=args.weights)
    train = few_shot(load_embedded_fashion_mnist("train"), shots=16, seed=args.seed)
    train_f = extract_features(clip, train, views=4, seed=args.seed)
    val_f = extract_features(clip, load_embedded_fashion_mnist("val"))
    test_f = extract_features(clip, load_embedded_fashion_mnist("test"))

    learner = PromptLearner(clip, train.classnames, ctx_init="a photo of a", seed=args.seed)
    opt = GradientPromptOptimizer(learner, train_f, total_steps=args.steps, warmup_steps=1, lr=0.02, seed=args.seed)
    opt.run(args.steps)
    templates = opt.trajectory.distinct_templates()[-args.candidates:]
    history = []
    for t in templates:
        val = evaluate_templates(clip, t, val_f)
        history.append(ScoredTemplate(t, val.loss, val.accuracy, source="projection"))
    print(f"gradient stage: {args.steps} steps, soft-prompt test accuracy {100 * opt.evaluate(test_f).accuracy:.2f}%")
    print("candidates (hard prompts, val loss / val acc / test acc):")
    for h in history:
        print(f"  {h.loss:.3f}  {100 * h.accuracy:5.1f}%  {100 * evaluate_templates(clip, h.template, test_f).accuracy:5.1f}%  {h.template!r}")

    server = None
    if args.base_url is None:
        server = LocalLLMServer().start()
        client = server.completion_client()
    else:
        cls = OpenAIChatClient if args.chat else OpenAICompletionClient
        client = cls(args.model or "local", base_url=args.base_url, max_retries=1)
    try:
        llm = LLMPromptOptimizer(client, task=FASHION_MNIST_TASK, seed=args.seed)
        started = time.perf_counter()
        for _ in range(args.rounds):
            llm.ask(history)
            if len(llm.pending) >= 3:
                break
        elapsed = time.perf_counter() - started
    finally:
        if server is not None:
            server.stop()
    llm.score(lambda text: (lambda r: (r.loss, r.accuracy))(evaluate_templates(clip, text, val_f)))
    print(f"LLM ({client.model}): {len(llm.rounds)} calls in {elapsed:.1f} s, {len(llm.proposals)} proposals")
    print("proposals (val loss / val acc / test acc):")
    for p in llm.proposals:
        test_acc = evaluate_templates(clip, p.template, test_f).accuracy
        print(f"  {p.loss:.3f}  {100 * p.accuracy:5.1f}%  {100 * test_acc:5.1f}%  {p.template!r}")


if __name__ == "__main__":
    main()
