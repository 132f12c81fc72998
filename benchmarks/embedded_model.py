#!/usr/bin/env python
"""Measured properties of the embedded offline model ``catalyst-fmnist`` on the shipped Fashion-MNIST subset.

Prints three measurements, all on the embedded *test* split (300 images per class from Fashion-MNIST's
own test split, never seen in training):

1. zero-shot accuracy with ``"a photo of a {}."``;
2. prompt sensitivity: zero-shot accuracy of each template in the fixed probe set
   (``benchmarks/probe_templates.py``) and the spread between the best and the worst; prompt tuning only
   has something to find when that spread is large;
3. 16-shot CoOp (``GradientPromptOptimizer``) over several seeds against the best hand-written probe
   template, and CoOp's base-to-new protocol (train on classes 0-4, test on base and new, harmonic mean)
   against the reference template.

The best probe template is picked *on the test split itself*, so it is an optimistic baseline: CoOp has
to beat the best wording a person could have found with the test labels in hand.  The template a person
would pick honestly, by accuracy on the embedded val split, is reported next to it.

Usage::

    python benchmarks/embedded_model.py                   # everything (a few minutes on 2 CPU cores)
    python benchmarks/embedded_model.py --skip-coop       # zero-shot and the probe table only
    python benchmarks/embedded_model.py --json out.json   # also write the numbers
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import torch

log = logging.getLogger("embedded_model_benchmark")


@dataclass(frozen=True)
class ProbeRow:
    kind: str
    template: str
    accuracy: float


@dataclass(frozen=True)
class CoopRun:
    seed: int
    accuracy: float
    base: float | None = None
    new: float | None = None
    harmonic: float | None = None
    seconds: float = 0.0


def probe_table(clip: Any, test: Any, probes: Sequence[tuple[str, str]]) -> list[ProbeRow]:
    """Zero-shot accuracy of every probe template on ``test`` features."""
    from catalyst_nb.evaluation import evaluate_templates

    return [ProbeRow(kind, template, evaluate_templates(clip, template, test).accuracy) for kind, template in probes]


def coop_learner(
    clip: Any, classnames: Sequence[str], *, n_ctx: int, ctx_init: str | None, seed: int, class_specific: bool = False
) -> Any:
    from catalyst_nb.prompt_learner import PromptLearner

    return PromptLearner(
        clip, classnames, n_ctx=None if ctx_init else n_ctx, ctx_init=ctx_init, seed=seed,
        class_specific=class_specific,
    )


def train_coop(clip: Any, pool: Any, *, shots: int, seed: int, args: argparse.Namespace) -> Any:
    """CoOp on ``shots`` images per class of ``pool`` (cached features); returns the trained optimizer."""
    from catalyst_nb.data import few_shot
    from catalyst_nb.features import Augmentation, extract_features
    from catalyst_nb.optim import GradientPromptOptimizer

    subset = few_shot(pool, shots=shots, seed=seed)
    augmentation = Augmentation(scale=(args.crop_scale, 1.0)) if args.views else None
    feats = extract_features(
        clip, subset, views=args.views, seed=seed, augmentation=augmentation, cache_dir=args.cache_dir, progress=False
    )
    learner = coop_learner(
        clip, subset.classnames, n_ctx=args.n_ctx, ctx_init=args.ctx_init, seed=seed, class_specific=args.csc
    )
    opt = GradientPromptOptimizer(
        learner, feats, epochs=args.epochs, seed=seed, lr=args.lr, batch_size=args.batch_size, project_every=0
    )
    opt.run(opt.config.total_steps, progress=False)
    return opt


def run_coop(clip: Any, pool: Any, test_feats: Any, *, seed: int, args: argparse.Namespace) -> CoopRun:
    started = time.time()
    opt = train_coop(clip, pool, shots=args.shots, seed=seed, args=args)
    return CoopRun(seed=seed, accuracy=opt.evaluate(test_feats).accuracy, seconds=time.time() - started)


def run_base_to_new(clip: Any, pool: Any, test: Any, *, seed: int, args: argparse.Namespace) -> CoopRun:
    """Train on the base classes, evaluate the same context on base and on new classes."""
    from catalyst_nb.data import split_base_new
    from catalyst_nb.evaluation import harmonic_mean
    from catalyst_nb.features import extract_features

    started = time.time()
    pool_base, _ = split_base_new(pool)
    test_base, test_new = split_base_new(test)
    # new classes have no class-specific context to carry over: the protocol uses a shared context
    shared = argparse.Namespace(**{**vars(args), "csc": False})
    opt = train_coop(clip, pool_base, shots=args.shots, seed=seed, args=shared)
    base_feats = extract_features(clip, test_base, cache_dir=args.cache_dir, progress=False)
    new_feats = extract_features(clip, test_new, cache_dir=args.cache_dir, progress=False)
    base = opt.evaluate(base_feats).accuracy
    new_learner = coop_learner(clip, test_new.classnames, n_ctx=opt.learner.n_ctx, ctx_init=None, seed=seed)
    with torch.no_grad():
        new_learner.ctx.copy_(opt.learner.ctx)
        text = new_learner.text_features()
    from catalyst_nb.evaluation import evaluate_classifier

    new = evaluate_classifier(text, new_feats, logit_scale=clip.logit_scale).accuracy
    return CoopRun(seed=seed, accuracy=float("nan"), base=base, new=new, harmonic=harmonic_mean(base, new),
                   seconds=time.time() - started)


def zero_shot_base_new(clip: Any, test: Any, template: str, cache_dir: Any) -> tuple[float, float, float]:
    from catalyst_nb.data import split_base_new
    from catalyst_nb.evaluation import evaluate_templates, harmonic_mean
    from catalyst_nb.features import extract_features

    test_base, test_new = split_base_new(test)
    base = evaluate_templates(clip, template, extract_features(clip, test_base, cache_dir=cache_dir, progress=False)).accuracy
    new = evaluate_templates(clip, template, extract_features(clip, test_new, cache_dir=cache_dir, progress=False)).accuracy
    return base, new, harmonic_mean(base, new)


def pct(x: float) -> str:
    return f"{100 * x:6.2f}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", default="embedded", help="'embedded' (shipped) or a checkpoint file")
    parser.add_argument("--skip-coop", action="store_true", help="only zero-shot and the probe table")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--shots", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=50, help="CoOp epochs over the few-shot set")
    parser.add_argument("--n-ctx", type=int, default=16,
                        help="context length when --ctx-init is not given (with it, the init text's token count)")
    parser.add_argument("--ctx-init", default="a photo of a",
                        help="initialise the context from this text ('' for n_ctx random vectors); the default "
                             "was chosen over random 16-vector contexts on the embedded val split")
    parser.add_argument("--lr", type=float, default=0.002)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--csc", action="store_true", help="class-specific context (CoOp's CSC)")
    parser.add_argument("--views", type=int, default=0, help="augmented feature views per training image")
    parser.add_argument("--crop-scale", type=float, default=0.8, help="smallest crop area of the augmented views")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cache-dir", default=None, help="feature cache folder (default: the user cache)")
    parser.add_argument("--json", type=Path, default=None, help="also write all numbers to this file")
    args = parser.parse_args(argv)
    args.ctx_init = args.ctx_init or None
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)

    from catalyst_nb.backbone import load_clip
    from catalyst_nb.data import load_embedded_fashion_mnist
    from catalyst_nb.evaluation import evaluate_templates, summarize_seeds
    from catalyst_nb.features import extract_features
    from probe_templates import PROBE_TEMPLATES, REFERENCE_TEMPLATE

    clip = load_clip("catalyst-fmnist", args.weights, device="cpu")
    test = load_embedded_fashion_mnist("test")
    pool = load_embedded_fashion_mnist("train")
    test_feats = extract_features(clip, test, cache_dir=args.cache_dir, progress=False)
    report: dict[str, Any] = {"model": "catalyst-fmnist", "weights": args.weights, "test_images": len(test)}

    zero = evaluate_templates(clip, REFERENCE_TEMPLATE, test_feats).accuracy
    report["zero_shot"] = {"template": REFERENCE_TEMPLATE, "accuracy": zero}
    print(f"catalyst-fmnist ({args.weights}) on the embedded Fashion-MNIST test split ({len(test)} images)\n")
    print(f"1. zero-shot accuracy with {REFERENCE_TEMPLATE!r}: {pct(zero).strip()}%\n")

    rows = probe_table(clip, test_feats, PROBE_TEMPLATES)
    best = max(rows, key=lambda r: r.accuracy)
    worst = min(rows, key=lambda r: r.accuracy)
    spread = best.accuracy - worst.accuracy
    report["probes"] = [asdict(r) for r in rows]
    report["probe_spread"] = spread
    report["best_probe"] = asdict(best)
    print(f"2. prompt sensitivity: {len(rows)} probe templates")
    print(f"   {'kind':<12} {'acc %':>6}  template")
    for r in rows:
        print(f"   {r.kind:<12} {pct(r.accuracy)}  {r.template}")
    print(f"   best {pct(best.accuracy).strip()}% ({best.template!r}), worst {pct(worst.accuracy).strip()}% "
          f"({worst.template!r}), spread {100 * spread:.2f} points")
    val_feats = extract_features(clip, load_embedded_fashion_mnist("val"), cache_dir=args.cache_dir, progress=False)
    val_rows = probe_table(clip, val_feats, PROBE_TEMPLATES)
    chosen = max(range(len(rows)), key=lambda i: val_rows[i].accuracy)
    report["probe_chosen_on_val"] = {**asdict(rows[chosen]), "val_accuracy": val_rows[chosen].accuracy}
    print(f"   chosen on the embedded val split instead: {rows[chosen].template!r}, "
          f"test {pct(rows[chosen].accuracy).strip()}%\n")

    if not args.skip_coop:
        # with ctx_init the context has as many slots as the init text has tokens, whatever --n-ctx says
        n_ctx = len(clip.tokenizer.encode(args.ctx_init)) if args.ctx_init else args.n_ctx
        prompt = f"ctx_init={args.ctx_init!r}, n_ctx={n_ctx}" if args.ctx_init else f"n_ctx={n_ctx}"
        print(f"3. {args.shots}-shot CoOp ({prompt}, {args.epochs} epochs, lr {args.lr}, seeds {args.seeds})")
        runs = [run_coop(clip, pool, test_feats, seed=s, args=args) for s in args.seeds]
        summary = summarize_seeds([r.accuracy for r in runs])
        for r in runs:
            print(f"   seed {r.seed}: {pct(r.accuracy).strip()}%  ({r.seconds:.0f}s)")
        gain = summary.mean - best.accuracy
        print(f"   CoOp mean {summary} vs best template {pct(best.accuracy).strip()}%: "
              f"{'+' if gain >= 0 else ''}{100 * gain:.2f} points\n")
        b2n = [run_base_to_new(clip, pool, test, seed=s, args=args) for s in args.seeds]
        zb, zn, zh = zero_shot_base_new(clip, test, REFERENCE_TEMPLATE, args.cache_dir)
        mb = summarize_seeds([r.base for r in b2n])
        mn = summarize_seeds([r.new for r in b2n])
        mh = summarize_seeds([r.harmonic for r in b2n])
        print("   base-to-new (base: classes 0-4, new: classes 5-9; 5-way accuracy within each half)")
        print(f"   {'':<26} {'base':>7} {'new':>7} {'HM':>7}")
        print(f"   {'zero-shot ' + repr(REFERENCE_TEMPLATE):<26} {pct(zb)} {pct(zn)} {pct(zh)}")
        for r in b2n:
            print(f"   {'CoOp seed ' + str(r.seed):<26} {pct(r.base)} {pct(r.new)} {pct(r.harmonic)}")
        print(f"   {'CoOp mean':<26} {pct(mb.mean)} {pct(mn.mean)} {pct(mh.mean)}")
        report["coop"] = {
            "shots": args.shots, "epochs": args.epochs, "n_ctx": n_ctx, "ctx_init": args.ctx_init,
            "lr": args.lr, "batch_size": args.batch_size, "views": args.views, "class_specific": args.csc,
            "runs": [asdict(r) for r in runs], "mean": summary.mean, "std": summary.std,
            "gain_over_best_probe": gain,
        }
        report["base_to_new"] = {
            "zero_shot": {"template": REFERENCE_TEMPLATE, "base": zb, "new": zn, "harmonic": zh},
            "coop_runs": [asdict(r) for r in b2n],
            "coop_mean": {"base": mb.mean, "new": mn.mean, "harmonic": mh.mean},
        }
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        import catalyst_nb  # noqa: F401
    except ModuleNotFoundError:  # a source checkout without `pip install -e .`
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    sys.exit(main())
