"""What each restart did: scoring accuracy just before, just after, at the next stage end, and against
continuation (the baseline run of the same seed at the same step), summarised per method.

A restart replaces the learned context by a proposal (or moves toward it, under ``trust``).  Whether that
paid is three questions, answered from the run folders' own events:

- *at once*: the context's scoring accuracy just after the restart against just before (the restart
  event records both);
- *recovered*: the scoring accuracy at the next stage end against the context's just before the restart;
- *overtook continuation*: the scoring accuracy at the next stage end against the baseline run (CoOp: the
  same seed, shots and split, no restart ever) at the same step.

The baseline of a method labelled ``"<rule> n<K>"`` is ``"coop n<K>"``; of any other label, ``--baseline``.

    python benchmarks/restart_outcomes.py runs/sweeps/methods [runs/sweeps/restart_rules_16shot ...]
"""
from __future__ import annotations

import argparse
import csv
import functools
import re
from collections import defaultdict
from pathlib import Path
from typing import Any, Sequence

from catalyst_nb.optim.events import Restart, stage_end_rows
from catalyst_nb.runs.folder import RunFolder

_SIZE = re.compile(r"^(?P<rule>.+) n(?P<n>\d+)$")


def _stage_scoring(events: Sequence[dict[str, Any]]) -> dict[int, float]:
    """Scoring accuracy at each stage end, by step."""
    return {row["step"]: row["scoring_accuracy"] for row in stage_end_rows(events)
            if row["scoring_accuracy"] is not None}


@functools.lru_cache(maxsize=None)
def _events(cell_dir: Path) -> tuple[dict[str, Any], ...]:
    """A cell's events, read once (a baseline cell is the continuation of several methods' cells)."""
    return tuple(RunFolder(cell_dir).read_events())


def restarts(events: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every restart the run took: step, before, as loaded, and the scoring accuracy at the next stage end."""
    ends = _stage_scoring(events)
    out = []
    for e in events:
        if e.get("kind") != Restart.kind:
            continue
        data, step = e["data"], e["step"]
        later = sorted(s for s in ends if s > step)
        out.append({"step": step, "template": data["template"], "move": data.get("move", 1.0),
                    "before": (data.get("scoring_before") or {}).get("accuracy"),
                    "after": (data.get("scoring_after") or {}).get("accuracy"),
                    "next_step": later[0] if later else None,
                    "next": ends[later[0]] if later else None})
    return out


def _baseline_label(label: str, default: str) -> str:
    m = _SIZE.match(label)
    return f"coop n{m['n']}" if m else default


def read_sweep(folder: Path) -> list[dict[str, str]]:
    with (folder / "results.csv").open() as f:
        return [dict(row, folder=str(folder)) for row in csv.DictReader(f)]


def summarise(rows: list[dict[str, str]], baseline: str) -> list[dict[str, Any]]:
    key = lambda r, label: (r["folder"], label, r["shots"], r["seed"], r["base_to_new"])  # noqa: E731
    by_key = {key(r, r["label"]): r for r in rows if r["status"] == "done"}
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    runs: dict[str, int] = defaultdict(int)
    for r in rows:
        if r["status"] != "done" or r["label"].startswith("coop") or r["label"] == "zero-shot":
            continue
        runs[r["label"]] += 1
        base = by_key.get(key(r, _baseline_label(r["label"], baseline)))
        base_ends = _stage_scoring(_events(Path(r["folder"]) / "cells" / base["cell_id"])) if base else {}
        for x in restarts(_events(Path(r["folder"]) / "cells" / r["cell_id"])):
            x["continuation"] = base_ends.get(x["next_step"]) if x["next_step"] is not None else None
            groups[r["label"]].append(x)
    out = []
    for label in sorted(runs):
        xs = groups.get(label, [])
        known = [x for x in xs if x["before"] is not None and x["after"] is not None]
        nxt = [x for x in xs if x["next"] is not None and x["before"] is not None]
        cont = [x for x in nxt if x["continuation"] is not None]
        out.append({
            "method": label, "runs": runs[label], "restarts": len(xs),
            "lowered_at_once": sum(x["after"] < x["before"] for x in known),
            "mean_at_once": _mean([100 * (x["after"] - x["before"]) for x in known]),
            "recovered": sum(x["next"] >= x["before"] for x in nxt),
            "mean_next_vs_before": _mean([100 * (x["next"] - x["before"]) for x in nxt]),
            "overtook": sum(x["next"] > x["continuation"] for x in cont),
            "compared": len(cont),
            "mean_next_vs_continuation": _mean([100 * (x["next"] - x["continuation"]) for x in cont]),
        })
    return out


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:+.2f}"


def table(summary: list[dict[str, Any]]) -> str:
    lines = ["| method | runs | restarts | lowered scoring acc. at once | mean change at once (pts) | recovered by "
             "the next stage end | mean next − before (pts) | ahead of continuation at the next stage end | "
             "mean next − continuation (pts) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for s in summary:
        lines.append(f"| {s['method']} | {s['runs']} | {s['restarts']} | {s['lowered_at_once']} | {_fmt(s['mean_at_once'])} "
                     f"| {s['recovered']} | {_fmt(s['mean_next_vs_before'])} | {s['overtook']} of {s['compared']} "
                     f"| {_fmt(s['mean_next_vs_continuation'])} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path, help="sweep folders (each with results.csv and cells/)")
    parser.add_argument("--baseline", default="coop", help="the continuation's method label (default: coop)")
    args = parser.parse_args()
    rows = [r for folder in args.folders for r in read_sweep(folder)]
    print(table(summarise(rows, args.baseline)))


if __name__ == "__main__":
    main()
