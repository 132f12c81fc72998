"""Headless runs of the same objects the notebooks drive: ``catalyst-nb run|tune|serve-llm`` (or ``python -m catalyst_nb``).

The default run needs nothing from the network: the embedded model and the Fashion-MNIST subset that ship
inside the package.  With ``--model ViT-B-16 --pretrained openai --data-root ...`` the same code runs on
real CLIP weights.  Everything a run produces goes to ``--out``: the settings (``run.json``), the
trajectory (JSON Lines), the optimizer state (to resume; checksummed, see :mod:`catalyst_nb.state_io`) and
a summary (JSON), all written atomically, so an interrupted run loses at most the current chunk of steps
(``--resume`` continues from the saved state).  A folder that holds a run is never overwritten unless
``--overwrite`` says so.  Mistakes in the arguments are reported as ``error: ...`` with exit status 2
before the model loads.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time
from pathlib import Path
from typing import Any, Sequence

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    from catalyst_nb.defaults import EMBEDDED_MODEL, EMBEDDED_TAG  # not backbone: no torch import yet

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
    tune.add_argument("--resume", action="store_true", help="continue the run saved in --out (its state.pt)")
    tune.add_argument("--overwrite", action="store_true", help="replace a run already saved in --out")
    tune.add_argument("--coop-schedule", action="store_true",
                      help="CoOp's exact schedule: learning rate stepped once per epoch, last partial batch dropped")
    tune.add_argument("--no-progress", action="store_true")
    from catalyst_nb.runs.cli import add_run_parser

    add_run_parser(sub)
    from catalyst_nb.sweeps.cli import add_sweep_parser

    add_sweep_parser(sub)
    serve = sub.add_parser("serve-llm", help="serve the embedded local LLM (OpenAI-compatible) until Ctrl-C",
                           add_help=False)
    serve.add_argument("server_args", nargs=argparse.REMAINDER, help="arguments of the server command (--help)")
    return parser


class UsageError(ValueError):
    """A mistake in the command's arguments or its output folder: reported as ``error: ...``, exit 2."""


# Files a run writes into --out; one of them present means the folder holds a run.
RUN_FILES = ("run.json", "state.pt", "trajectory.jsonl", "summary.json")
# Arguments that do not change what a run computes, so --resume may change them.
_NOT_SETTINGS = {"command", "out", "resume", "overwrite", "no_progress", "device"}


def run_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The arguments that define a run (stored in ``run.json``; ``--resume`` must repeat them)."""
    return {k: v for k, v in sorted(vars(args).items()) if k not in _NOT_SETTINGS}


def check_tune_args(args: argparse.Namespace) -> None:
    """Everything about the arguments and the output folder that can be checked without the model.

    The checks that need no heavy import come first, so most mistakes are reported before torch loads.

    Raises:
        UsageError: naming the argument and its value.
    """
    positive = {"--shots": args.shots, "--epochs": args.epochs, "--batch-size": args.batch_size}
    for flag, value in positive.items():
        if value < 1:
            raise UsageError(f"{flag} {value}: must be at least 1")
    if args.views < 0:
        raise UsageError(f"--views {args.views}: must be 0 or more")
    if not (math.isfinite(args.lr) and args.lr > 0):
        raise UsageError(f"--lr {args.lr}: must be a finite number above 0")
    if args.n_ctx is not None and args.n_ctx < 1:
        raise UsageError(f"--n-ctx {args.n_ctx}: must be at least 1")
    if args.data == "fashion-mnist" and not args.data_root:
        raise UsageError("--data fashion-mnist needs --data-root (the folder with the IDX files)")
    if args.resume and args.overwrite:
        raise UsageError("--resume and --overwrite contradict each other: continue the run or replace it")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: exists and is not a folder")
    present = [name for name in RUN_FILES if (out / name).exists()]
    if args.resume:
        if not (out / "state.pt").is_file():
            raise UsageError(f"--resume: {out} holds no saved state (state.pt); nothing to continue")
        saved_path = out / "run.json"
        if saved_path.is_file():
            try:
                saved = json.loads(saved_path.read_text())
            except ValueError as exc:
                raise UsageError(f"--resume: {saved_path} is not valid JSON ({exc})") from None
            mine = run_settings(args)
            changed = {k: (saved.get(k), v) for k, v in mine.items() if saved.get(k) != v}
            if changed:
                listed = ", ".join(f"--{k.replace('_', '-')} {old!r} -> {new!r}" for k, (old, new) in changed.items())
                raise UsageError(f"--resume with changed settings ({listed}); repeat the run's own arguments")
    elif present and not args.overwrite:
        raise UsageError(
            f"--out {out} already holds a run ({', '.join(present)}); pass --resume to continue it, "
            "--overwrite to replace it, or choose another folder"
        )
    # these need torch (and open_clip's config list), still without loading any weights
    from catalyst_nb.backbone import check_model, context_length_of
    from catalyst_nb.devices import resolve_device

    check_model(args.model, None if args.pretrained.lower() == "none" else args.pretrained)

    if args.n_ctx is not None:
        limit = context_length_of(args.model)
        # start and end markers, at least one class-name token and the period take 4 positions
        if limit is not None and args.n_ctx > limit - 4:
            raise UsageError(f"--n-ctx {args.n_ctx}: must be 1..{limit - 4} for {args.model} (text context length {limit})")
    try:
        resolve_device(args.device)
    except (ValueError, RuntimeError) as exc:
        raise UsageError(f"--device {args.device}: {exc}") from None


def _datasets(args):
    from catalyst_nb.data import few_shot, load_embedded_fashion_mnist, load_fashion_mnist

    if args.data == "embedded":
        pool, test = load_embedded_fashion_mnist("train"), load_embedded_fashion_mnist("test")
    else:
        pool, test = load_fashion_mnist("train", root=args.data_root), load_fashion_mnist("test", root=args.data_root)
    return few_shot(pool, shots=args.shots, seed=args.seed), test


def run_tune(args) -> dict:
    """Check the arguments, then tune, saving state every tenth of the run; returns the summary."""
    check_tune_args(args)
    out = Path(args.out)
    if args.resume and (out / "summary.json").is_file():  # finished: report it, do not run (or rewrite) it again
        from catalyst_nb.state_io import load_state

        load_state(out / "state.pt")  # still checked: a damaged folder is named, not reported as fine
        try:
            return json.loads((out / "summary.json").read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise UsageError(f"--resume: {out / 'summary.json'} is damaged ({exc})") from None
    import torch

    from catalyst_nb.backbone import load_clip
    from catalyst_nb.evaluation import evaluate_templates
    from catalyst_nb.features import extract_features
    from catalyst_nb.optim import GradientPromptOptimizer, ProgressBar
    from catalyst_nb.prompt_learner import PromptLearner
    from catalyst_nb.state_io import atomic_write_text, load_state, save_state
    from catalyst_nb.threads import configure_torch_threads

    configure_torch_threads()  # the CPUs this process may use, not the machine's (CATALYST_NB_THREADS overrides)
    out.mkdir(parents=True, exist_ok=True)
    if args.overwrite:  # asked for: the old run goes before the new one writes anything
        for name in RUN_FILES:
            (out / name).unlink(missing_ok=True)
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
    schedule = {"schedule": "epoch", "drop_last": True} if args.coop_schedule else {}
    opt = GradientPromptOptimizer(learner, train_f, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                                  seed=args.seed, **schedule)
    state_path = out / "state.pt"
    if args.resume:
        opt.load_state_dict(load_state(state_path))
    else:  # written once everything is set up, so a run that fails to start leaves the folder empty
        atomic_write_text(out / "run.json", json.dumps(run_settings(args), indent=2))
    started = time.perf_counter()
    save_every = max(1, opt.config.total_steps // 10)
    bar = ProgressBar(opt.config.total_steps, initial=opt.step_count) if progress else None
    handle = opt.register_step_hook(bar) if bar is not None else None  # one bar for the whole run
    try:
        while opt.step_count < opt.config.total_steps:
            opt.run(min(save_every, opt.config.total_steps - opt.step_count), progress=False)
            save_state(state_path, opt.state_dict())  # a crash loses at most one chunk of steps
    finally:
        if handle is not None:
            handle.remove()
            bar.close()
        opt.trajectory.save(out / "trajectory.jsonl")
    tuned = opt.evaluate(test_f)
    summary = {
        "model": args.model, "pretrained": pretrained, "device": str(clip.device),
        "train": train.name, "test": test.name, "shots": args.shots, "seed": args.seed,
        "steps": opt.step_count, "seconds": round(time.perf_counter() - started, 2),
        "baseline_template": args.baseline, "baseline_accuracy": baseline.accuracy,
        "tuned_accuracy": tuned.accuracy, "final_projection": learner.to_text().template,
    }
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2))
    return summary


# The library's typed errors that a user causes and can fix (a bad argument, a damaged or busy folder, an
# unknown model, missing data): ``main`` prints them as ``error: ...`` with exit code 2.  Anything else is
# a bug and keeps its traceback.  Listed by module so that the error path imports nothing: an exception of
# a class whose module was never imported cannot have been raised.
_USER_ERRORS = {
    "catalyst_nb.cli": ("UsageError",),
    "catalyst_nb.runs.folder": ("RunFolderError",),
    "catalyst_nb.runs.lock": ("FolderBusyError",),
    "catalyst_nb.runs.preflight": ("RunInputError",),
    "catalyst_nb.state_io": ("StateFileError",),
    "catalyst_nb.llm.cassette": ("CassetteFileError",),
    "catalyst_nb.backbone": ("ModelNotFoundError", "WeightsUnavailableError", "WeightsIntegrityError"),
    "catalyst_nb.data.errors": ("DatasetNotFoundError", "CorruptImageError", "CorruptDataError"),
    "catalyst_nb.templates": ("TemplateError",),
    "catalyst_nb.sweeps.config": ("SweepConfigError",),
    "catalyst_nb.sweeps.folder": ("SweepFolderError",),
    "catalyst_nb.sweeps.ray_executor": ("RayAddressError",),
}


def user_errors() -> tuple[type[BaseException], ...]:
    """The classes of :data:`_USER_ERRORS` whose modules are loaded (see there why only those)."""
    found: list[type[BaseException]] = []
    for module_name, names in _USER_ERRORS.items():
        module = sys.modules.get(module_name)
        if module is not None:
            found.extend(getattr(module, name) for name in names)
    return tuple(found)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return _dispatch(args, parser)
    except user_errors() as exc:  # evaluated only when an exception arrives, so every loaded class counts
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _dispatch(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    if args.command == "run":
        from catalyst_nb.runs.cli import run_command

        return run_command(args, parser, print)
    if args.command == "sweep":
        from catalyst_nb.sweeps.cli import run_sweep_command

        return run_sweep_command(args, print)
    if args.command == "serve-llm":
        from catalyst_nb.llm.server import main as serve_main

        return serve_main(args.server_args)
    if args.command == "tune":
        try:
            s = run_tune(args)
        except ValueError as exc:  # refused input found once the model and data are loaded
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(f"model        {s['model']} ({s['pretrained']}) on {s['device']}")
        print(f"data         {s['train']} -> {s['test']}")
        print(f"hand-written {s['baseline_template']!r}: {100 * s['baseline_accuracy']:.2f}% test accuracy")
        print(f"CoOp         {s['steps']} steps in {s['seconds']} s: {100 * s['tuned_accuracy']:.2f}% test accuracy")
        print(f"projection   {s['final_projection']!r}")
        print(f"saved        {args.out}/summary.json, trajectory.jsonl, state.pt")
    return 0


if __name__ == "__main__":
    sys.exit(main())
