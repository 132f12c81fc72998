"""Any method against any other of the same sweep, paired seed by seed (the sweep's tables pair every
method with its one baseline; this answers the other questions: does the catalyst beat the random-edit
control, or the projection control?).

Reads the sweep's ``results.csv``; for each (split, shots) prints method minus other in points: the mean
paired difference, its 95 % paired t interval (``catalyst_nb.sweeps.paired.paired_difference``, the
tables' own) and wins/ties/losses.  All-classes cells compare test accuracy, base-to-new cells the
harmonic mean.

    python benchmarks/paired_methods.py runs/sweeps/methods "catalyst (paper, qwen)" random-edits
"""
from __future__ import annotations

import argparse
import csv
from collections import defaultdict
from pathlib import Path

from catalyst_nb.sweeps.paired import paired_difference


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folder", type=Path, help="a sweep folder with results.csv")
    p.add_argument("method", help="method label (as in the table)")
    p.add_argument("other", help="the method label it is paired with")
    args = p.parse_args(argv)
    values: dict[tuple[str, str, str], dict[str, float]] = defaultdict(dict)
    with open(args.folder / "results.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            if row["status"] != "done":
                continue
            b2n = row.get("base_to_new") == "True"
            metric = row["harmonic_mean" if b2n else "test_accuracy"]
            if metric:
                values[(row["label"], "base-to-new H" if b2n else "all classes", row["shots"])][row["seed"]] = 100 * float(metric)
    keys = sorted({(split, shots) for (label, split, shots) in values if label == args.method},
                  key=lambda k: (k[0], int(k[1])))
    if not keys:
        print(f"no finished cell of {args.method!r} in {args.folder}")
        return 1
    print(f"| {args.method} − {args.other} | shots | Δ pp: mean [95% CI, paired t] | W/T/L |")
    print("|---|---|---|---|")
    for split, shots in keys:
        d = paired_difference(values[(args.method, split, shots)], values.get((args.other, split, shots), {}))
        interval = "—" if d.low is None else f"{d.mean:+.2f} [{d.low:+.2f}, {d.high:+.2f}]" + ("" if d.distinguishable else " n.s.")
        print(f"| {split} | {shots} | {interval} | {d.wins}/{d.ties}/{d.losses} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
