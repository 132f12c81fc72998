"""``catalyst-nb run`` (alias ``tune``: ``run --method coop``): one config into a run folder, from a TOML
file and/or flags, resumable; every run is built through :class:`~catalyst_nb.experiment.Experiment`.

The flags are the config's keys, the tables' keys flat (``--lr`` is ``[gradient] lr``, ``--rounds`` is
``[catalyst] rounds``, ``--llm`` is ``[llm] source``); a flag overrides the file.  Every user mistake
(an unknown key, an impossible value, a folder that holds a run, ``--resume`` of a folder with no run or
with other settings) is reported as ``error: ...`` with exit code 2 before any model loads.  With ``--compare coop`` the same settings also run CoOp alone (same steps, same stage
boundaries) and the per-stage accuracies are printed side by side.
"""
from __future__ import annotations

import argparse
import os
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any, Callable

from catalyst_nb.optim.catalyst_config import RESTART_POLICIES
from catalyst_nb.runs.config import FLAT_KEYS, METHODS, RunConfig, load_toml

__all__ = ["add_run_parser", "run_command", "config_from_args"]

_CHOICES = {"method": METHODS, "preset": ("default", "paper"), "data": ("embedded", "fashion-mnist"),
            "restart": RESTART_POLICIES, "llm_kind": ("completion", "chat"),
            "schedule": ("step", "epoch"), "approval": ("auto", "human")}
# defaults of None, numbers when given
_TYPES = {"warmup_steps": int, "llm_samples": int, "llm_temperature": float, "approval_timeout": float}


def _flags() -> dict[str, Any]:
    """Every flag's config key and default: the top-level settings, then the tables' keys by flat name."""
    defaults = RunConfig()
    out = {f.name: f.default for f in fields(RunConfig) if f.default is not MISSING}
    for flat, (table, inner) in FLAT_KEYS.items():
        out[flat] = getattr(getattr(defaults, table), inner)
    return out


_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def _yes_no(value: str) -> bool:
    """A boolean flag's value; anything but the usual spellings is refused (``maybe`` is not false)."""
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise argparse.ArgumentTypeError(f"{value!r} is not one of {', '.join(_TRUE + _FALSE)}")


def _flag_type(default: Any) -> Callable[[str], Any]:
    if isinstance(default, bool):
        return _yes_no
    if isinstance(default, int):
        return int
    if isinstance(default, float):
        return float
    return str


def add_run_parser(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser("run", aliases=["tune"], help="run one method (default: the catalyst) into a run folder; "
                       "'tune' is 'run --method coop'", description=__doc__.splitlines()[0])
    p.add_argument("config", nargs="?", help="TOML file with run settings (flags override it)")
    for key, default in _flags().items():
        flag = "--" + key.replace("_", "-")
        p.add_argument(flag, dest=key, default=None, type=_TYPES.get(key, _flag_type(default)),
                       choices=_CHOICES.get(key), help=f"default: {default!r}")
    p.add_argument("--out", default=None, help="run folder (default: runs/<method>-seed<seed>)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--overwrite", action="store_true", help="replace a run that --out already holds")
    p.add_argument("--compare", choices=("none", "coop"), default="none",
                   help="also run CoOp alone with the same settings and print both")
    p.add_argument("--no-progress", action="store_true")
    return p


def config_from_args(args: argparse.Namespace) -> RunConfig:
    """The file's config with the given flags on top; ``tune`` means ``--method coop`` unless told otherwise."""
    config = RunConfig.from_dict(load_toml(args.config)) if args.config else RunConfig()
    flags = {key: getattr(args, key) for key in _flags() if getattr(args, key) is not None}
    if args.command == "tune":
        flags.setdefault("method", "coop")
    return config.replace(**flags) if flags else config


def _pct(x: Any) -> str:
    return "   –  " if x is None else f"{100 * x:6.2f}"


def _print_summary(s: dict[str, Any], out: Path, echo: Callable[[str], None]) -> None:
    echo(f"{s['method']:<20} test {_pct(s.get('test_accuracy'))} %   ({s.get('seconds', '?')} s, {out})")


def _print_stages(runs: list[tuple[str, dict[str, Any]]], echo: Callable[[str], None]) -> None:
    stages = [s.get("stages") or [] for _, s in runs]
    if not any(stages):
        return
    header = "stage  step " + "".join(f"  {name:>10} score/test" for name, _ in runs)
    echo(header)
    for i in range(max(len(x) for x in stages)):
        row = [x[i] if i < len(x) else None for x in stages]
        first = next(r for r in row if r is not None)
        cells = "".join(
            f"  {_pct(r['scoring_accuracy'])} /{_pct(r['test_accuracy'])}" if r else " " * 23 for r in row
        )
        echo(f"{first['stage']:>5} {first['step']:>5}{cells}")


def _announce_waiting(echo: Callable[..., None]) -> Callable[[dict[str, Any]], None]:
    """The one line a run with ``--approval human`` prints when it starts waiting: how to answer."""
    from catalyst_nb.runs.approval_cli import answer_hint

    def on_event(event: dict[str, Any]) -> None:
        if event.get("type") == "waiting":
            echo(f"round {event['round']} waits for approval: {answer_hint(event['run_dir'])}", flush=True)
    return on_event


def run_command(args: argparse.Namespace, parser: argparse.ArgumentParser, echo: Callable[[str], None]) -> int:
    """Run (and compare); ``echo`` writes the command's output (the command line passes ``print``)."""
    from catalyst_nb.experiment.headless import execute
    from catalyst_nb.runs.folder import RunFolder, RunFolderError
    from catalyst_nb.runs.lock import ensure_free

    if args.resume and args.overwrite:
        parser.error("--resume and --overwrite contradict each other: continue the run or replace it")
    try:
        config = config_from_args(args)
    except ValueError as exc:
        parser.error(str(exc))
    out = Path(args.out or f"runs/{config.method}-seed{config.seed}")
    plan = [(config.method, config, out)]
    if args.compare == "coop" and config.method != "coop":
        coop = config.replace(method="coop", llm="none")
        plan.append(("coop", coop, out.parent / f"{out.name}-coop"))
    # folder checks before any model loads
    for _, cfg, folder in plan:
        try:
            if folder.exists() and not folder.is_dir():
                raise RunFolderError(f"--out {os.fspath(folder)} is a file, not a folder")
            ensure_free(folder)  # a run writing there now is the first thing to say
            if args.resume:
                RunFolder.for_resume(folder, cfg)
            elif RunFolder(folder).has_run() and not args.overwrite:
                raise RunFolderError(f"{os.fspath(folder)} already holds a run; pass --overwrite to replace it "
                                     "or --resume to continue it")
        except RunFolderError as exc:
            parser.error(str(exc))
    results = []
    for name, cfg, folder in plan:
        summary = execute(cfg, folder, resume=args.resume, overwrite=args.overwrite, progress=not args.no_progress,
                          on_event=_announce_waiting(echo))
        results.append((name, summary))
        if summary.get("status") != "done":
            echo(f"{name}: {summary.get('status')} — see {folder}")
            return 1
    for (name, s), (_, _, folder) in zip(results, plan):
        _print_summary(s, folder, echo)
    _print_stages(results, echo)
    first = results[0][1]
    if "llm" in first:
        llm = first["llm"]
        echo(f"LLM: {llm['calls']} calls, {llm['valid']} valid new templates, {llm['chosen']} chosen as restarts, "
              f"{llm.get('skipped', 0)} rounds skipped")
    if first.get("harmonic_mean") is not None:
        echo(f"base {_pct(first['base_accuracy'])} %, new {_pct(first['new_accuracy'])} %, "
              f"harmonic mean {_pct(first['harmonic_mean'])} %")
    echo(f"zero-shot 'a photo of a {{}}.': {_pct(first['zero_shot_accuracy'])} %")
    echo(f"report: {os.fspath(plan[0][2] / 'report.html')}")
    return 0
