"""The probe's forks batched against the same forks one by one, and the cost of one catalyst round.

For each model and class count, side by side in one process on the same context, data and seed:

* **probe**: ``run_forks`` for the current context and M proposals (M + 1 forks of P steps each), once
  one fork after another (``batched=False``, what the probe did before) and once as one batch of
  contexts (``batched=True``); their wall times, the ratio, and the largest difference of the forks'
  scoring losses (which must be float rounding, < 1e-4);
* **round**: the compute of one catalyst round without the LLM call: the stage-end scoring and
  evaluation of the current prompt, then scoring 10 candidate and 3 proposal templates (one batched
  pass each), as :class:`~catalyst_nb.optim.CatalystOptimizer` does it; against one gradient step.

Models: the embedded model (plain text path) and a random-weight ViT-B-16 (shared-prefix path; the
same cost as pretrained weights).

    python benchmarks/probe_speed.py --device cpu --models embedded --classes 10 --forks 3
    python benchmarks/probe_speed.py --device cuda --models vit,embedded --classes 10,100 --forks 3,5,9
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch

from catalyst_nb.backbone import load_clip
from catalyst_nb.features import FeatureSet
from catalyst_nb.optim.gradient import GradientPromptOptimizer
from catalyst_nb.prompt_learner import PromptLearner
from catalyst_nb.optim.probing import CURRENT, run_forks
from catalyst_nb.scoring import TemplateScorer
from speed import MODELS, TEMPLATES, make_problem, sync

N_CTX = 8


def _setup(clip, n_classes: int, batch: int, precision: str):
    problem = make_problem(clip, n_classes, batch)
    learner = PromptLearner(clip, problem.classnames, n_ctx=N_CTX, ctx_init="a photo of a", seed=0).to(clip.device)
    train = FeatureSet(problem.features, problem.labels, None, tuple(problem.classnames), key="probe-bench")
    scoring = FeatureSet(problem.features.flip(0), problem.labels.flip(0), None, tuple(problem.classnames),
                         key="probe-bench-scoring")
    opt = GradientPromptOptimizer(learner, train, batch_size=batch, total_steps=10_000, warmup_steps=0,
                                  precision=precision)
    opt.step()  # momentum exists, as in a run
    return opt, TemplateScorer(learner, scoring), TemplateScorer(learner, train)


def _timed(fn, device) -> float:
    sync(device)
    started = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - started


def bench_probe(opt, scorer, forks: int, steps: int, repeats: int, device) -> tuple[float, float, float]:
    branches = {CURRENT: None, **{f"p{i}": TEMPLATES[1 + i % (len(TEMPLATES) - 1)] for i in range(forks - 1)}}

    def load(template: str) -> None:
        opt.load_text(template)

    results = {}
    times: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(repeats):  # interleaved, so a change of load hits both alike
        for batched in (False, True):
            times[batched].append(_timed(lambda b=batched: results.__setitem__(
                b, run_forks(opt, scorer, branches, steps=steps, load_template=load, batched=b)), device))
    diff = max(abs(results[True].losses[k] - results[False].losses[k]) for k in branches)
    return statistics.median(times[False]), statistics.median(times[True]), diff


def bench_round(opt, scorer, evaluation, repeats: int, device) -> tuple[float, float]:
    candidates, proposals = TEMPLATES, TEMPLATES[1:4]

    def one_round() -> None:
        scorer.current()
        evaluation.current()
        scorer.score(candidates)
        scorer.score(proposals)

    round_s = statistics.median(_timed(one_round, device) for _ in range(repeats))
    step_s = statistics.median(_timed(opt.step, device) for _ in range(repeats))
    return round_s, step_s


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    p.add_argument("--models", default="embedded")
    p.add_argument("--classes", default="10")
    p.add_argument("--forks", default="3", help="forks (current + proposals), comma-separated")
    p.add_argument("--steps", type=int, default=10, help="probe steps per fork")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cpu":
        from catalyst_nb.threads import configure_torch_threads

        configure_torch_threads()
    print(f"device {device} ({torch.cuda.get_device_name(0) if device.type == 'cuda' else f'{torch.get_num_threads()} threads'}), "
          f"{args.precision}, probe {args.steps} steps per fork, batch {args.batch}, load {os.getloadavg()[0]:.2f}")
    print(f"{'model':<10} {'classes':>7} {'forks':>5} {'separate s':>10} {'batched s':>9} {'ratio':>6} {'max |dloss|':>11}")
    rounds = []
    for key in args.models.split(","):
        name, pretrained = MODELS[key]
        with torch.random.fork_rng():
            torch.manual_seed(0)
            clip = load_clip(name, pretrained, device=str(device))
        for n_classes in (int(c) for c in args.classes.split(",")):
            opt, scorer, evaluation = _setup(clip, n_classes, args.batch, args.precision)
            for forks in (int(f) for f in args.forks.split(",")):
                sep, bat, diff = bench_probe(opt, scorer, forks, args.steps, args.repeats, device)
                print(f"{key:<10} {n_classes:>7} {forks:>5} {sep:>10.3f} {bat:>9.3f} {bat / sep:>6.2f} {diff:>11.1e}",
                      flush=True)
            rounds.append((key, n_classes, opt.learner.text_path, *bench_round(opt, scorer, evaluation, args.repeats, device)))
    print()
    print(f"{'model':<10} {'classes':>7} {'text path':<14} {'round compute s':>15} {'one step s':>10} {'round/step':>10}")
    for key, n_classes, path, round_s, step_s in rounds:
        print(f"{key:<10} {n_classes:>7} {path:<14} {round_s:>15.3f} {step_s:>10.3f} {round_s / step_s:>10.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
