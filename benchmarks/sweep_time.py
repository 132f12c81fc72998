"""Where a sweep's time goes: per method, the mean time of a finished cell and its parts.

Reads each finished cell of a sweep folder (its ``cell.json`` label, the run's own ``seconds`` in its
summary, and the ``seconds`` its events carry) and prints, per method label: cells, the mean seconds of a
cell and how they split into gradient steps, LLM calls, template scoring, stage-end evaluation, probe
forks and the rest (setup, restarts, state and event writes, the final test, the report), then the
sum over all cells that ran (cells that took another cell's run cost nothing and are left out).  The sum divided by the number of workers is what the sweep costs at best with that
many workers; the part spent in gradient steps alone is its floor for any LLM and any cache.

    python benchmarks/sweep_time.py runs/sweeps/methods [--jobs 2]
"""
from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

from catalyst_nb.runs.folder import RunFolder

PARTS = ("steps", "llm", "scoring", "eval", "probe", "other")
_KIND = {"llm": "llm", "skipped": "llm", "candidates": "scoring", "proposals": "scoring", "stage_end": "eval",
         "decision": "probe"}


def cell_parts(cell_dir: Path) -> tuple[str, dict[str, float]] | None:
    """(label, seconds per part) of a finished cell, or ``None`` for one that did not finish or that took
    another cell's run (``same_run_as``: it ran nothing)."""
    summary_file = cell_dir / "summary.json"
    if not summary_file.is_file():
        return None
    label = json.loads((cell_dir / "cell.json").read_text())["label"]
    summary = json.loads(summary_file.read_text())
    if summary.get("same_run_as"):  # took another cell's run: it cost nothing
        return None
    total = float(summary.get("seconds") or 0.0)
    parts = dict.fromkeys(PARTS, 0.0)
    for event in RunFolder(cell_dir).read_events():
        part = "steps" if event.get("type") == "step" else _KIND.get(event.get("kind", ""), "other")
        parts[part] += float(event.get("seconds") or 0.0)
    parts["other"] = max(total - sum(parts[p] for p in PARTS if p != "other"), 0.0)
    return label, parts


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folder", type=Path, help="a sweep folder (runs/sweeps/<name>)")
    p.add_argument("--jobs", type=int, default=2, help="workers, for the sum's share per worker (default 2)")
    args = p.parse_args(argv)
    by_label: dict[str, list[dict[str, float]]] = defaultdict(list)
    for cell_dir in sorted((args.folder / "cells").iterdir()):
        found = cell_parts(cell_dir)
        if found is not None:
            by_label[found[0]].append(found[1])
    if not by_label:
        print(f"no finished cell in {args.folder}")
        return 1
    print("| method | cells | mean s per cell | " + " | ".join(f"{part} s" for part in PARTS) + " |")
    print("|---|---|---|" + "---|" * len(PARTS))
    totals = dict.fromkeys(PARTS, 0.0)
    for label, cells in by_label.items():
        mean = {part: sum(c[part] for c in cells) / len(cells) for part in PARTS}
        for part in PARTS:
            totals[part] += sum(c[part] for c in cells)
        print(f"| {label} | {len(cells)} | {sum(mean.values()):.1f} | " + " | ".join(f"{mean[p]:.1f}" for p in PARTS) + " |")
    cells = sum(len(c) for c in by_label.values())
    total = sum(totals.values())
    print()
    print(f"{cells} cells: {total / 60:.1f} min of cell time (" + ", ".join(f"{p} {totals[p] / 60:.1f}" for p in PARTS)
          + f"); divided over {args.jobs} workers: {total / 60 / args.jobs:.1f} min, of which gradient steps "
          f"{totals['steps'] / 60 / args.jobs:.1f} min")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
