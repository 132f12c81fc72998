"""From cell outcomes to the numbers a table and a figure show: plain lists and dicts, no drawing.

Rows (one per cell, the ``results.csv`` content) keep every cell, finished or not, so that a failure is
visible next to the results instead of vanishing from an average.  Groups average over seeds.

A run is flagged *collapsed* when its metric is NaN or more than ``margin`` below zero-shot on the
same data, shots and seed: such a run says the method broke, and a mean over seeds would hide it.
Collapsed runs still count in the mean (leaving them out would flatter the method); NaN cannot, so the
number of seeds behind each mean is shown.  The zero-shot reference is the zero-shot method's cell of
the same grid point when the sweep has one, else the run's own ``zero_shot_accuracy``.
"""
from __future__ import annotations

import math
import statistics
from typing import Any, Iterable, Mapping, Sequence

from .cell import CellOutcome
from .grid import Cell
from .paired import PairedDifference, finite, paired_difference

__all__ = ["METRICS", "result_rows", "flag_collapsed", "group_rows", "figure_series", "SeedStat",
           "compare_to_baseline", "paired_columns", "difference_series"]

METRICS = ("test_accuracy", "base_accuracy", "new_accuracy", "harmonic_mean", "zero_shot_accuracy")
_HIDDEN_AXES = ("seed", "base_to_new")


def _number(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def result_rows(cells: Sequence[Cell], outcomes: Mapping[str, CellOutcome]) -> list[dict[str, Any]]:
    """One flat row per cell in grid order; cells without an outcome are ``pending``."""
    rows = []
    for cell in cells:
        outcome = outcomes.get(cell.cell_id)
        summary = (outcome.summary if outcome is not None else None) or {}
        llm = summary.get("llm") if isinstance(summary.get("llm"), Mapping) else {}
        row: dict[str, Any] = {"cell_id": cell.cell_id, "label": cell.label, "method": cell.settings.get("method")}
        row.update({k: v for k, v in cell.axes.items()})
        row["base_to_new"] = bool(cell.settings.get("base_to_new", False))
        row["status"] = outcome.status if outcome is not None else "pending"
        for metric in METRICS:
            row[metric] = _number(summary.get(metric))
        row["seconds"] = _number(summary.get("seconds"))
        row["llm_calls"] = _number(llm.get("calls"))
        row["llm_valid"] = _number(llm.get("valid"))
        row["llm_chosen"] = _number(llm.get("chosen"))
        row["error"] = outcome.error if outcome is not None else None
        rows.append(row)
    return rows


def _primary(row: Mapping[str, Any]) -> str:
    return "harmonic_mean" if row.get("base_to_new") else "test_accuracy"


def _point(row: Mapping[str, Any], axes: Iterable[str]) -> tuple:
    return tuple((k, repr(row.get(k))) for k in axes) + (("base_to_new", bool(row.get("base_to_new"))),)


def flag_collapsed(rows: Sequence[dict[str, Any]], *, margin: float, axes: Sequence[str]) -> list[dict[str, Any]]:
    """Copies of ``rows`` with ``collapsed`` (True/False, None for unfinished cells) and ``zero_shot_reference``."""
    if not 0 <= margin <= 1:
        raise ValueError(f"margin must be in [0, 1], got {margin!r}")
    point_axes = [a for a in axes if a != "base_to_new"]
    zero_shot = {
        _point(r, point_axes): r[_primary(r)]
        for r in rows if r["method"] == "zero-shot" and r["status"] == "done" and r[_primary(r)] is not None
    }
    flagged = []
    for row in rows:
        row = dict(row)
        metric = _primary(row)
        reference = zero_shot.get(_point(row, point_axes))
        if reference is None and metric == "test_accuracy":
            reference = row.get("zero_shot_accuracy")
        row["zero_shot_reference"] = reference
        if row["status"] != "done":
            row["collapsed"] = None
        else:
            value = row[metric]
            row["collapsed"] = (value is None or math.isnan(value)
                                or (reference is not None and not math.isnan(reference) and value < reference - margin))
        flagged.append(row)
    return flagged


class SeedStat(dict):
    """``{"mean", "std", "n"}`` over the finite values (std 0 for one value, mean None for none)."""

    @classmethod
    def of(cls, values: Iterable[float | None]) -> SeedStat:
        kept = [v for v in values if v is not None and not math.isnan(v)]
        if not kept:
            return cls(mean=None, std=None, n=0)
        std = statistics.stdev(kept) if len(kept) > 1 else 0.0
        return cls(mean=statistics.fmean(kept), std=std, n=len(kept))


def group_rows(rows: Sequence[Mapping[str, Any]], *, axes: Sequence[str]) -> list[dict[str, Any]]:
    """Average over seeds: one group per (label, axes but seed and base_to_new), in first-seen order.

    Each group has ``test`` (cells trained on all classes), ``base``, ``new`` and ``harmonic_mean``
    (base-to-new cells) as :class:`SeedStat`, the seeds whose runs collapsed or failed, the number of
    cells not run yet, and the LLM's proposals summed over the group's cells.
    """
    keep = [a for a in axes if a not in _HIDDEN_AXES]
    groups: dict[tuple, dict[str, Any]] = {}
    for row in rows:
        key = (row["label"],) + tuple(repr(row.get(a)) for a in keep)
        group = groups.get(key)
        if group is None:
            group = groups[key] = {"label": row["label"], "method": row["method"],
                                   "axes": {a: row.get(a) for a in keep}, "_rows": []}
        group["_rows"].append(row)
    out = []
    for group in groups.values():
        members = group.pop("_rows")
        done = [r for r in members if r["status"] == "done"]
        whole = [r for r in done if not r.get("base_to_new")]
        split = [r for r in done if r.get("base_to_new")]
        group["test"] = SeedStat.of(r["test_accuracy"] for r in whole)
        group["base"] = SeedStat.of(r["base_accuracy"] for r in split)
        group["new"] = SeedStat.of(r["new_accuracy"] for r in split)
        group["harmonic_mean"] = SeedStat.of(r["harmonic_mean"] for r in split)
        group["per_seed"] = {"test": {r.get("seed"): r["test_accuracy"] for r in whole},
                             "harmonic_mean": {r.get("seed"): r["harmonic_mean"] for r in split}}
        group["collapsed"] = [_seed_tag(r) for r in done if r.get("collapsed")]
        group["failed"] = [_seed_tag(r) for r in members if r["status"] == "failed"]
        group["pending"] = sum(1 for r in members if r["status"] == "pending")
        group["llm"] = {k: sum(r[f"llm_{k}"] or 0 for r in done) for k in ("calls", "valid", "chosen")}
        out.append(group)
    return out


def _seed_tag(row: Mapping[str, Any]) -> str:
    return f"seed {row.get('seed')}" + (" b2n" if row.get("base_to_new") else "")


def figure_series(groups: Sequence[Mapping[str, Any]], *, metric: str = "test") -> list[dict[str, Any]]:
    """Lines for an accuracy-against-shots plot: one per (label, axes but shots), points sorted by shots."""
    if metric not in ("test", "base", "new", "harmonic_mean"):
        raise ValueError(f"metric must be test, base, new or harmonic_mean, got {metric!r}")
    points = [(group, dict(group[metric])) for group in groups if group[metric]["mean"] is not None]
    return _lines(points, ("mean", "std", "n"))


def _lines(points: Sequence[tuple[Mapping[str, Any], Mapping[str, Any]]], keys: Sequence[str]) -> list[dict[str, Any]]:
    """One line per (label, axes but shots) from (group, values) points, sorted by shots."""
    lines: dict[tuple, dict[str, Any]] = {}
    for group, values in points:
        others = {k: v for k, v in group["axes"].items() if k != "shots"}
        name = group["label"] + "".join(f", {k}={v}" for k, v in others.items() if k != "data")
        if "data" in others:
            name = f"{name} ({others['data']})"
        line = lines.setdefault((group["label"],) + tuple(map(repr, others.values())),
                                {"name": name, "shots": [], **{k: [] for k in keys}})
        line["shots"].append(group["axes"].get("shots"))
        for key in keys:
            line[key].append(values[key])
    for line in lines.values():
        order = sorted(range(len(line["shots"])), key=lambda i: line["shots"][i])
        for key in ("shots", *keys):
            line[key] = [line[key][i] for i in order]
    return list(lines.values())


def _axes_key(group: Mapping[str, Any]) -> tuple:
    return tuple(sorted((k, repr(v)) for k, v in group["axes"].items()))


def compare_to_baseline(groups: Sequence[dict[str, Any]], baseline: str) -> list[dict[str, Any]]:
    """Copies of ``groups`` with ``paired``: ``{"test": PairedDifference | None, "harmonic_mean": ...}``.

    Each group is paired, seed by seed, with the baseline label's group at the same axes (shots, data,
    any other axis): all-classes test accuracy and, for base-to-new cells, the harmonic mean.  The
    baseline's own groups, and groups with no baseline group at their axes, get ``None``.
    """
    if not any(g["label"] == baseline for g in groups):
        labels = sorted({g["label"] for g in groups})
        raise ValueError(f"baseline {baseline!r} is not a method label of this sweep (labels: {labels})")
    reference = {_axes_key(g): g for g in groups if g["label"] == baseline}
    out = []
    for group in groups:
        group = dict(group)
        ref = reference.get(_axes_key(group))
        paired: dict[str, PairedDifference | None] = {"test": None, "harmonic_mean": None}
        if ref is not None and group["label"] != baseline:
            for metric in paired:
                mine, theirs = group["per_seed"][metric], ref["per_seed"][metric]
                if mine and theirs:
                    paired[metric] = paired_difference(mine, theirs)
        group["paired"] = paired
        group["baseline"] = baseline
        out.append(group)
    return out


def paired_columns(rows: Sequence[Mapping[str, Any]], groups: Sequence[Mapping[str, Any]], *,
                   axes: Sequence[str]) -> list[dict[str, Any]]:
    """Copies of the result rows with the paired numbers of their group (for ``results.csv``).

    ``paired_difference`` is this cell's own difference to the baseline's cell of the same seed and
    axes; ``paired_mean``, ``paired_ci_low``/``high`` (paired t, 95 %), ``paired_n``, ``wins``/``ties``/
    ``losses`` and ``distinguishable`` (the interval excludes 0) are the group's, repeated on each of its
    rows.  Empty for the baseline's own rows.
    """
    keep = [a for a in axes if a not in _HIDDEN_AXES]
    by_key = {(g["label"],) + tuple(repr(g["axes"].get(a)) for a in keep): g for g in groups}
    out = []
    for row in rows:
        row = dict(row)
        group = by_key.get((row["label"],) + tuple(repr(row.get(a)) for a in keep))
        metric = "harmonic_mean" if row.get("base_to_new") else "test"
        stat = group["paired"][metric] if group is not None and "paired" in group else None
        row["baseline"] = group.get("baseline") if group is not None else None
        row["paired_difference"] = None
        if stat is not None and group is not None:
            base_group = next((g for g in groups if g["label"] == group["baseline"]
                               and _axes_key(g) == _axes_key(group)), None)
            theirs = base_group["per_seed"][metric].get(row.get("seed")) if base_group is not None else None
            mine = row[_primary(row)]
            if finite(mine) and finite(theirs):
                row["paired_difference"] = mine - theirs
        for key, value in (("paired_mean", "mean"), ("paired_ci_low", "low"), ("paired_ci_high", "high"),
                           ("paired_n", "n"), ("wins", "wins"), ("ties", "ties"), ("losses", "losses")):
            row[key] = getattr(stat, value) if stat is not None else None
        row["distinguishable"] = stat.distinguishable if stat is not None else None
        out.append(row)
    return out


def difference_series(groups: Sequence[Mapping[str, Any]], *, metric: str = "test") -> list[dict[str, Any]]:
    """Lines of paired differences against shots: ``mean``, ``low``, ``high`` (the interval) per point.

    Points without an interval (fewer than 2 paired seeds) are left out, so that a line never shows a
    difference without its uncertainty.
    """
    if metric not in ("test", "harmonic_mean"):
        raise ValueError(f"metric must be test or harmonic_mean, got {metric!r}")
    points = []
    for group in groups:
        stat = (group.get("paired") or {}).get(metric)
        if stat is not None and stat.low is not None:
            points.append((group, {"mean": stat.mean, "low": stat.low, "high": stat.high, "n": stat.n}))
    return _lines(points, ("mean", "low", "high", "n"))
