"""Slowdown of a live TrajectoryInspector on a 1,000-step run (target: at most 10 %).

Two identical runs of GradientPromptOptimizer on the embedded model and 16-shot Fashion-MNIST features,
one plain and one followed by a live inspector (queued records, context snapshots every step, throttled
batched redraws of the plotly FigureWidget), timed side by side in one process in the order A B B A so
that drift of a shared machine falls on both.  Without a browser attached, widget messages are built and
serialized but not sent, so this measures the kernel-side cost, which is what slows ``run()``.

Usage: ``python benchmarks/inspector_overhead.py [--steps 1000] [--redraw-every 0.5]``.
"""
from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch

from catalyst_nb import GradientPromptOptimizer, PromptLearner, extract_features, few_shot, load_clip
from catalyst_nb import load_embedded_fashion_mnist
from catalyst_nb.widgets import TrajectoryInspector


def one_run(clip, train, steps: int, *, inspector: bool, redraw_every: float) -> tuple[float, int]:
    learner = PromptLearner(clip, train.classnames, ctx_init="a photo of a", seed=0)
    opt = GradientPromptOptimizer(learner, train, total_steps=steps, warmup_steps=10, batch_size=32, seed=0)
    view = TrajectoryInspector(opt, redraw_every=redraw_every) if inspector else None
    started = time.perf_counter()
    opt.run(steps, progress=False)
    if view is not None:
        view.detach()  # the last redraw belongs to the run's cost
    elapsed = time.perf_counter() - started
    return elapsed, (view.redraws if view is not None else 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--redraw-every", type=float, default=0.5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    clip = load_clip(device="cpu")
    train = extract_features(clip, few_shot(load_embedded_fashion_mnist("train"), shots=16, seed=1), progress=False)
    one_run(clip, train, 20, inspector=True, redraw_every=args.redraw_every)  # warm-up: imports, caches
    times = {False: [], True: []}
    redraws = 0
    for live in (False, True, True, False):
        elapsed, n = one_run(clip, train, args.steps, inspector=live, redraw_every=args.redraw_every)
        times[live].append(elapsed)
        redraws = max(redraws, n)
    plain, watched = sum(times[False]), sum(times[True])
    print(f"steps per run: {args.steps}, runs: 2 plain + 2 with a live inspector (order A B B A)")
    print(f"plain:     {plain / 2:.2f} s per run ({1000 * plain / (2 * args.steps):.2f} ms/step)")
    print(f"inspector: {watched / 2:.2f} s per run ({1000 * watched / (2 * args.steps):.2f} ms/step, "
          f"{redraws} redraws, redraw_every={args.redraw_every} s)")
    print(f"slowdown: {100 * (watched / plain - 1):+.1f} % (target <= 10 %)")


if __name__ == "__main__":
    main()
