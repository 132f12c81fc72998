"""``catalyst-nb sweep CONFIG.toml``: the command-line face of :func:`catalyst_nb.sweeps.run_sweep`.

Everything that can be checked without running a cell is checked first (the file, the grid, the output
folder, Ray and its address), so bad input ends with ``error: ...`` and exit status 2 before any
model loads.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, Callable

__all__ = ["add_sweep_parser", "run_sweep_command"]


def add_sweep_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "sweep", help="a grid of runs (methods x shots x seeds ...) from a TOML file, with a results table",
        description="Run every cell of a sweep file; a rerun skips finished cells and resumes interrupted ones.",
    )
    parser.add_argument("config", help="sweep file (TOML), e.g. benchmarks/methods.toml")
    parser.add_argument("--out", default=None, help="sweep folder (default: runs/sweeps/<config file name>)")
    parser.add_argument("--jobs", type=int, default=1, help="cells at once with the local executor (default 1)")
    parser.add_argument("--executor", choices=["local", "ray"], default="local")
    parser.add_argument("--address", default=None,
                        help="Ray cluster address (HOST:PORT, ray://HOST:PORT or 'auto'); default: a Ray instance here")
    parser.add_argument("--force", action="store_true",
                        help="reuse a sweep folder made by a different config (changed cells start over)")
    parser.add_argument("--no-progress", action="store_true")
    return parser


Echo = Callable[..., None]


def run_sweep_command(args: argparse.Namespace, echo: Echo) -> int:
    """Run the sweep; ``echo`` writes the command's output (the command line passes ``print``)."""

    def _fail(message: str) -> int:
        echo(f"error: {message}", file=sys.stderr)
        return 2

    from catalyst_nb.sweeps import (LocalExecutor, RayExecutor, SweepConfigError, SweepFolder,
                                    expand, load_sweep_config, run_sweep)

    if args.jobs < 1:
        return _fail(f"--jobs must be >= 1, got {args.jobs}")
    if args.address is not None and args.executor != "ray":
        return _fail("--address needs --executor ray")
    try:
        config = load_sweep_config(args.config)
    except SweepConfigError as exc:
        return _fail(str(exc))
    out = Path(args.out) if args.out else Path("runs") / "sweeps" / Path(args.config).stem
    try:
        if args.executor == "ray":
            executor: Any = RayExecutor(address=args.address, num_cpus=config.num_cpus, num_gpus=config.num_gpus)
            executor.check()
        else:
            executor = LocalExecutor(jobs=args.jobs)
        SweepFolder.prepare(out, config, expand(config), force=args.force)  # refuse a foreign folder now
    except (ValueError, RuntimeError) as exc:
        return _fail(str(exc))
    started = time.perf_counter()
    from catalyst_nb.sweeps.stopping import stop_signals
    from catalyst_nb.sweeps.waiting import WaitingWatcher

    try:
        with stop_signals(), WaitingWatcher(out, echo):  # cells with approval "human" wait: say how to answer
            result = run_sweep(config, out, executor=executor, force=args.force, progress=not args.no_progress,
                               on_budget=lambda budget: echo(budget.line()))
    except KeyboardInterrupt:
        echo(f"stopped after {(time.perf_counter() - started) / 60:.1f} min; run the same command again to go on "
             "(finished cells are kept, interrupted ones continue from their last saved state)", file=sys.stderr)
        return 130
    minutes = (time.perf_counter() - started) / 60
    echo(result.table)
    shared = f", {result.shared} shared another cell's run" if result.shared else ""
    echo(f"{len(result.rows)} cells: {result.ran} run ({result.failed} failed), {result.skipped} already done"
         f"{shared}; {minutes:.1f} min")
    for name, path in result.paths.items():
        echo(f"{name:8s} {path}")
    for row in result.rows:
        if row["status"] == "failed":
            echo(f"failed   {row['cell_id']}: {row['error']}")
    if result.failed:
        echo(f"failed cells keep their traceback in {out}/cells/<cell>/error.txt; rerun the command to retry them")
    return 1 if result.failed else 0
