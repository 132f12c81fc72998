"""Per-step time of GradientPromptOptimizer, and what encoding only the real prompt length saves.

Measures, side by side in one run, on a random-weight ViT-B-32 (open_clip's native 12-layer text tower,
the same cost as pretrained weights) with 10 and 100 classes, CoOp's n_ctx=16, batch 32, cached features:

* the per-step time with the default truncation (encode up to the longest real prompt), and
* the per-step time when every prompt is encoded at the full 77-token context (what CoOp does),

and prints the ratio.  Usage: ``python benchmarks/step_time.py [--steps N] [--model ViT-B-32]``.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch
import torch.nn.functional as F

from catalyst_nb import FeatureSet, GradientPromptOptimizer, PromptLearner, load_clip


def classnames(clip, n):
    """n distinct single-word class names taken from the tokenizer's vocabulary (deterministic)."""
    tok = clip.tokenizer
    words = []
    for i in range(1000, tok.vocab_size, 97):
        word = tok.decode([i])
        if word.isalpha() and len(word) > 3 and word not in words:
            words.append(word)
        if len(words) == n:
            return words
    raise RuntimeError("vocabulary too small")


def time_steps(clip, n_classes, steps, full_length):
    names = classnames(clip, n_classes)
    gen = torch.Generator().manual_seed(0)
    n = 16 * n_classes
    feats = F.normalize(torch.randn(n, clip.embed_dim, generator=gen), dim=-1)
    train = FeatureSet(feats, torch.arange(n_classes).repeat_interleave(16), None, tuple(names), key="bench")
    learner = PromptLearner(clip, names, n_ctx=16, seed=0)
    if full_length:  # re-lay the prompts at the full context length, as CoOp does
        tok = clip.tokenizer
        ids = torch.stack([tok.wrap(row[row != tok.pad_id][1:-1].tolist()) for row in learner.token_ids])
        learner.token_ids = ids
        learner.base_embeddings = clip.token_embedding.weight.detach()[ids].float()
    opt = GradientPromptOptimizer(learner, train, total_steps=steps + 1, warmup_steps=0)
    if full_length:
        import catalyst_nb.prompt_learner as pl

        original = pl.encode_text_from_embeddings
        pl.encode_text_from_embeddings = lambda c, e, i, truncate=True: original(c, e, i, truncate=False)
    try:
        opt.step()  # warm-up
        times = []
        for _ in range(steps):
            start = time.perf_counter()
            opt.step()
            times.append(time.perf_counter() - start)
    finally:
        if full_length:
            pl.encode_text_from_embeddings = original
    return statistics.median(times), learner.token_ids.shape[1]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="ViT-B-32")
    parser.add_argument("--steps", type=int, default=5)
    args = parser.parse_args()
    torch.manual_seed(0)
    clip = load_clip(args.model, None, device="cpu")
    print(f"model {args.model} (random weights), device cpu, torch threads {torch.get_num_threads()}")
    print(f"{'classes':>8} {'length':>7} {'s/step (ours)':>14} {'length':>7} {'s/step (77 tokens)':>19} {'speed-up':>9}")
    for n_classes in (10, 100):
        ours, len_ours = time_steps(clip, n_classes, args.steps, full_length=False)
        full, len_full = time_steps(clip, n_classes, args.steps, full_length=True)
        print(f"{n_classes:>8} {len_ours:>7} {ours:>14.3f} {len_full:>7} {full:>19.3f} {full / ours:>8.2f}x")


if __name__ == "__main__":
    main()
