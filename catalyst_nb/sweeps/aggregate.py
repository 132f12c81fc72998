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

__all__ = ["METRICS", "result_rows", "flag_collapsed", "group_rows", "figure_series", "SeedStat"]

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
        finite = [v for v in values if v is not None and not math.isnan(v)]
        if not finite:
            return cls(mean=None, std=None, n=0)
        std = statistics.stdev(finite) if len(finite) > 1 else 0.0
        return cls(mean=statistics.fmean(finite), std=std, n=len(finite))


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
    lines: dict[tuple, dict[str, Any]] = {}
    for group in groups:
        stat = group[metric]
        if stat["mean"] is None:
            continue
        others = {k: v for k, v in group["axes"].items() if k != "shots"}
        name = group["label"] + "".join(f", {k}={v}" for k, v in others.items() if k != "data")
        if "data" in others:
            name = f"{name} ({others['data']})"
        line = lines.setdefault((group["label"],) + tuple(map(repr, others.values())),
                                {"name": name, "shots": [], "mean": [], "std": [], "n": []})
        line["shots"].append(group["axes"].get("shots"))
        line["mean"].append(stat["mean"])
        line["std"].append(stat["std"])
        line["n"].append(stat["n"])
    for line in lines.values():
        order = sorted(range(len(line["shots"])), key=lambda i: line["shots"][i])
        for key in ("shots", "mean", "std", "n"):
            line[key] = [line[key][i] for i in order]
    return list(lines.values())
