"""Paired differences against CoOp, per seed, from a restart-rules sweep folder (finished cells only).

Each cell folder is named ``<rule>-n<K>__<shots>shot__seed<S>`` (see ``benchmarks/restart_rules.toml``);
a rule's cell is paired with ``coop-n<K>`` at the same shots and seed.  For each (rule, n_ctx, shots)
it prints the mean paired difference in test accuracy (points), its 95 % paired-t interval, wins / ties
/ losses, and the restarts the rule took, as a markdown table.

    python benchmarks/paired_vs_coop.py runs/sweeps/restart_rules [--rules margin,best]
"""
from __future__ import annotations

import argparse
import json
import re
from collections import defaultdict
from pathlib import Path

from catalyst_nb.sweeps.paired import paired_difference

_CELL = re.compile(r"^(?P<rule>.+)-n(?P<n>\d+)__(?:.+__)?(?P<shots>\d+)shot__seed(?P<seed>\d+)$")


def read_cells(folder: Path) -> dict[tuple[str, int, int, int], dict]:
    out = {}
    for summary in sorted((folder / "cells").glob("*/summary.json")):
        m = _CELL.match(summary.parent.name)
        if m is None:
            continue
        s = json.loads(summary.read_text())
        if s.get("status", "done") != "done" or s.get("test_accuracy") is None:
            continue
        out[(m["rule"], int(m["n"]), int(m["shots"]), int(m["seed"]))] = s
    return out


def table(cells: dict[tuple[str, int, int, int], dict], rules: list[str] | None = None) -> str:
    groups: dict[tuple[str, int, int], dict[int, tuple[float, float, int]]] = defaultdict(dict)
    for (rule, n, shots, seed), s in cells.items():
        coop = cells.get(("coop", n, shots, seed))
        if rule == "coop" or coop is None or (rules and rule not in rules):
            continue
        groups[(rule, n, shots)][seed] = (100 * s["test_accuracy"], 100 * coop["test_accuracy"],
                                          len(s.get("restarts") or []))
    lines = ["| rule | n_ctx | shots | seeds | mean paired diff (points) | 95 % CI | wins / ties / losses | restarts taken |",
             "|---|---|---|---|---|---|---|---|"]
    for (rule, n, shots) in sorted(groups, key=lambda g: (g[0], g[1], g[2])):
        seeds = groups[(rule, n, shots)]
        d = paired_difference({k: v[0] for k, v in seeds.items()}, {k: v[1] for k, v in seeds.items()})
        ci = "–" if d.low is None else f"[{d.low:+.2f}, {d.high:+.2f}]"
        lines.append(f"| {rule} | {n} | {shots} | {d.n} | {d.mean:+.2f} | {ci} | {d.wins} / {d.ties} / {d.losses} "
                     f"| {sum(v[2] for v in seeds.values())} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--rules", default="", help="comma-separated rule labels (default: all)")
    args = parser.parse_args()
    print(table(read_cells(args.folder), [r for r in args.rules.split(",") if r] or None))


if __name__ == "__main__":
    main()
