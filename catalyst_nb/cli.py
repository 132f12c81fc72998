"""Headless runs of the same objects the notebooks drive: ``catalyst-nb tune`` (or ``python -m catalyst_nb``).

The default run needs nothing from the network: the embedded model and the Fashion-MNIST subset that ship
inside the package.  With ``--model ViT-B-16 --pretrained openai --data-root ...`` the same code runs on
real CLIP weights.  Everything a run produces goes to ``--out``: the trajectory (JSON Lines), the
optimizer state (to resume), and a summary (JSON) — so an interrupted run loses at most the current step
(``--resume`` continues from the saved state).
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Sequence

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    from catalyst_nb.backbone import EMBEDDED_MODEL, EMBEDDED_TAG

    parser = argparse.ArgumentParser(prog="catalyst-nb", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    tune = sub.add_parser("tune", help="CoOp prompt tuning, then test accuracy against the hand-written prompt")
    tune.add_argument("--model", default=EMBEDDED_MODEL, help="open_clip model name or package model")
    tune.add_argument("--pretrained", default=EMBEDDED_TAG,
                      help="pretrained tag, checkpoint file, 'embedded', or 'none' for random weights")
    tune.add_argument("--data", choices=["embedded", "fashion-mnist"], default="embedded",
                      help="embedded Fashion-MNIST subset (default) or full Fashion-MNIST IDX files")
    tune.add_argument("--data-root", default=None, help="folder with Fashion-MNIST IDX files (for --data fashion-mnist)")
    tune.add_argument("--shots", type=int, default=16)
    tune.add_argument("--seed", type=int, default=1)
    tune.add_argument("--epochs", type=int, default=50)
    tune.add_argument("--batch-size", type=int, default=32)
    tune.add_argument("--lr", type=float, default=0.002)
    tune.add_argument("--n-ctx", type=int, default=None, help="context length (default: from --ctx-init, or 16)")
    tune.add_argument("--ctx-init", default="a photo of a", help="initial context text ('' for random)")
    tune.add_argument("--class-specific", action="store_true")
    tune.add_argument("--views", type=int, default=0,
                      help="augmented views cached per training image (crop+flip helps large photos; on the 28-pixel embedded images it costs accuracy)")
    tune.add_argument("--baseline", default="a photo of a {}.", help="hand-written template to compare with")
    tune.add_argument("--device", default=None)
    tune.add_argument("--out", default="runs/tune", help="output folder")
    tune.add_argument("--resume", action="store_true", help="continue from --out/state.pt if present")
    tune.add_argument("--no-progress", action="store_true")
    return parser


def _datasets(args):
    from catalyst_nb.data import few_shot, load_embedded_fashion_mnist, load_fashion_mnist

    if args.data == "embedded":
        pool, test = load_embedded_fashion_mnist("train"), load_embedded_fashion_mnist("test")
    else:
        pool, test = load_fashion_mnist("train", root=args.data_root), load_fashion_mnist("test", root=args.data_root)
    return few_shot(pool, shots=args.shots, seed=args.seed), test


def run_tune(args) -> dict:
    import torch

    from catalyst_nb.backbone import load_clip
    from catalyst_nb.evaluation import evaluate_templates
    from catalyst_nb.features import extract_features
    from catalyst_nb.optim import GradientPromptOptimizer
    from catalyst_nb.prompt_learner import PromptLearner
    from catalyst_nb.threads import configure_torch_threads

    configure_torch_threads()  # the CPUs this process may use, not the machine's (CATALYST_NB_THREADS overrides)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    pretrained = None if args.pretrained.lower() == "none" else args.pretrained
    torch.manual_seed(args.seed)  # random-weight models (smoke runs) are then the same on every run
    clip = load_clip(args.model, pretrained, device=args.device)
    train, test = _datasets(args)
    progress = not args.no_progress
    train_f = extract_features(clip, train, views=args.views, seed=args.seed, progress=progress)
    test_f = extract_features(clip, test, progress=progress)
    baseline = evaluate_templates(clip, args.baseline, test_f)
    learner = PromptLearner(clip, train.classnames, n_ctx=args.n_ctx, ctx_init=args.ctx_init or None,
                            class_specific=args.class_specific, seed=args.seed).to(clip.device)
    opt = GradientPromptOptimizer(learner, train_f, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                                  seed=args.seed)
    state_path = out / "state.pt"
    if args.resume and state_path.is_file():
        opt.load_state_dict(torch.load(state_path, weights_only=False))
    started = time.perf_counter()
    save_every = max(1, opt.config.total_steps // 10)
    try:
        while opt.step_count < opt.config.total_steps:
            opt.run(min(save_every, opt.config.total_steps - opt.step_count), progress=progress)
            torch.save(opt.state_dict(), state_path)  # a crash loses at most one chunk of steps
    finally:
        opt.trajectory.save(out / "trajectory.jsonl")
    tuned = opt.evaluate(test_f)
    summary = {
        "model": args.model, "pretrained": pretrained, "device": str(clip.device),
        "train": train.name, "test": test.name, "shots": args.shots, "seed": args.seed,
        "steps": opt.step_count, "seconds": round(time.perf_counter() - started, 2),
        "baseline_template": args.baseline, "baseline_accuracy": baseline.accuracy,
        "tuned_accuracy": tuned.accuracy, "final_projection": learner.to_text().template,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.command == "tune":
        s = run_tune(args)
        print(f"model        {s['model']} ({s['pretrained']}) on {s['device']}")
        print(f"data         {s['train']} -> {s['test']}")
        print(f"hand-written {s['baseline_template']!r}: {100 * s['baseline_accuracy']:.2f}% test accuracy")
        print(f"CoOp         {s['steps']} steps in {s['seconds']} s: {100 * s['tuned_accuracy']:.2f}% test accuracy")
        print(f"projection   {s['final_projection']!r}")
        print(f"saved        {args.out}/summary.json, trajectory.jsonl, state.pt")
    return 0


if __name__ == "__main__":
    sys.exit(main())
