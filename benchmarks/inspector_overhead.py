"""Slowdown of a live TrajectoryInspector on a 1,000-step run (target: at most 10 %).

Two identical GradientPromptOptimizer runs on the embedded model and 16-shot Fashion-MNIST features, one
plain and one followed by a live inspector (queued records, context snapshots every step, throttled
batched redraws of the plotly FigureWidget), advanced in lockstep: step of the plain run, step of the
watched run, and so on.  Each step is timed on its own, so a shared machine's load falls on both runs
alike; the watched run's step times include the inspector's hook and every redraw it triggers.  Without
a browser attached, widget messages are built and serialized but not sent, so this measures the kernel
side, which is what slows ``run()``.

Usage: ``python benchmarks/inspector_overhead.py [--steps 1000] [--redraw-every 0.5]``.
"""
from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch
from tqdm.auto import tqdm

from catalyst_nb import GradientPromptOptimizer, PromptLearner, extract_features, few_shot, load_clip
from catalyst_nb import load_embedded_fashion_mnist
from catalyst_nb.widgets import TrajectoryInspector


def make_optimizer(clip, train, steps: int) -> GradientPromptOptimizer:
    learner = PromptLearner(clip, train.classnames, ctx_init="a photo of a", seed=0)
    return GradientPromptOptimizer(learner, train, total_steps=steps, warmup_steps=10, batch_size=32, seed=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--redraw-every", type=float, default=0.5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    clip = load_clip(device="cpu")
    train = extract_features(clip, few_shot(load_embedded_fashion_mnist("train"), shots=16, seed=1), progress=False)
    plain, watched = make_optimizer(clip, train, args.steps), make_optimizer(clip, train, args.steps)
    view = TrajectoryInspector(watched, redraw_every=args.redraw_every)
    times = {"plain": 0.0, "watched": 0.0}
    for _ in tqdm(range(args.steps), desc="lockstep", unit="step"):
        for name, opt in (("plain", plain), ("watched", watched)):
            started = time.perf_counter()
            opt.step()
            times[name] += time.perf_counter() - started
    started = time.perf_counter()
    view.detach()  # the last redraw belongs to the watched run's cost
    times["watched"] += time.perf_counter() - started
    assert [r.loss for r in plain.trajectory] == [r.loss for r in watched.trajectory], "the runs must be identical"
    print(f"steps per run: {args.steps}, two identical runs advanced in lockstep, each step timed")
    print(f"plain:   {times['plain']:.2f} s ({1000 * times['plain'] / args.steps:.2f} ms/step)")
    print(f"watched: {times['watched']:.2f} s ({1000 * times['watched'] / args.steps:.2f} ms/step, "
          f"{view.redraws} redraws, {len(view.snapshots)} context snapshots, redraw_every={args.redraw_every} s)")
    print(f"slowdown: {100 * (times['watched'] / times['plain'] - 1):+.1f} % (target <= 10 %)")


if __name__ == "__main__":
    main()
