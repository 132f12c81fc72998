"""The methods table as Markdown: mean ± std over seeds in percent, the seed count, and flags.

With a baseline (``baseline = "coop"`` in ``[sweep]``), every other row also gets its paired difference to
the baseline in percentage points: the mean over seeds, the 95 % paired t interval, and wins/ties/losses
over seeds.  A difference whose interval contains 0 is marked ``n.s.``: not distinguishable from seed
noise (the table says so under itself).

Flags say what an average would hide: seeds whose runs collapsed (NaN, or far below zero-shot), cells
that failed, cells not run yet.  The base-to-new columns appear only when the sweep has such cells,
and the LLM column only when some method called an LLM (how many of its proposals became restarts).
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

__all__ = ["format_stat", "format_paired", "markdown_table"]


def format_stat(stat: Mapping[str, Any]) -> str:
    """``84.58 ± 0.41`` (percent); ``—`` when no seed finished."""
    if stat["mean"] is None:
        return "—"
    return f"{100 * stat['mean']:.2f} ± {100 * stat['std']:.2f}"


def format_paired(stat: Any) -> tuple[str, str]:
    """(``+0.68 [-0.12, +1.48] n.s.``, ``3/0/2``) in percentage points; ``—`` without a pair or interval."""
    if stat is None or stat.mean is None:
        return "—", "—"
    record = f"{stat.wins}/{stat.ties}/{stat.losses}"
    if stat.low is None:
        return f"{100 * stat.mean:+.2f} (1 seed, no interval)", record
    mark = "" if stat.distinguishable else " n.s."
    return f"{100 * stat.mean:+.2f} [{100 * stat.low:+.2f}, {100 * stat.high:+.2f}]{mark}", record


def _flags(group: Mapping[str, Any]) -> str:
    parts = []
    if group["collapsed"]:
        parts.append("collapsed: " + ", ".join(group["collapsed"]))
    if group["failed"]:
        parts.append("failed: " + ", ".join(group["failed"]))
    if group["pending"]:
        parts.append(f"not run: {group['pending']}")
    return "; ".join(parts)


def markdown_table(groups: Sequence[Mapping[str, Any]], *, base_to_new: bool = False, all_classes: bool = True,
                   title: str | None = None) -> str:
    """One row per group, in the groups' order (methods as in the sweep file, then the axes).

    ``all_classes`` / ``base_to_new``: whether the sweep has cells trained on all classes (the test
    accuracy columns) and base-to-new cells (base, new and harmonic mean columns).
    """
    keys: list[str] = []
    for group in groups:
        keys += [k for k in group["axes"] if k not in keys]
    # an axis with one value across the table says nothing per row (it belongs in the title); shots always shows
    axes = [k for k in keys if k == "shots" or len({repr(g["axes"].get(k)) for g in groups}) > 1]
    show_llm = any(g["llm"]["calls"] for g in groups)
    baseline = next((g.get("baseline") for g in groups if g.get("baseline")), None)
    vs = f"vs {baseline}, pp: mean [95% CI, paired t over seeds]"
    header = ["Method"] + [a.replace("_", " ").capitalize() for a in axes]
    if all_classes:
        header += ["Test acc. (%)", "Seeds"]
        if baseline:
            header += [f"Δ test {vs}", "W/T/L"]
    if base_to_new:
        header += ["Base (%)", "New (%)", "HM (%)", "Seeds (b2n)"]
        if baseline:
            header += [f"Δ HM {vs}", "W/T/L (b2n)"]
    if show_llm:
        header += ["LLM proposals chosen / valid / calls"]
    header += ["Flags"]
    lines = [] if title is None else [f"**{title}**", ""]
    lines += ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for group in groups:
        cells = [group["label"].replace("|", "/")] + [str(group["axes"].get(a)) for a in axes]
        paired = group.get("paired") or {}
        if all_classes:
            cells += [format_stat(group["test"]), str(group["test"]["n"])]
            if baseline:
                cells += list(format_paired(paired.get("test")))
        if base_to_new:
            cells += [format_stat(group["base"]), format_stat(group["new"]), format_stat(group["harmonic_mean"]),
                      str(group["harmonic_mean"]["n"])]
            if baseline:
                cells += list(format_paired(paired.get("harmonic_mean")))
        if show_llm:
            llm = group["llm"]
            cells += [f"{llm['chosen']:g} / {llm['valid']:g} / {llm['calls']:g}" if llm["calls"] else "—"]
        cells += [_flags(group)]
        lines.append("| " + " | ".join(cells) + " |")
    if baseline:
        lines += ["", f"Δ: method minus {baseline} on the same seed, in percentage points; the interval is the paired t "
                      "interval (95 %) over the seeds both finished; W/T/L: seeds won, tied, lost. "
                      "n.s.: the interval contains 0, so the difference is not distinguishable from seed noise."]
    return "\n".join(lines) + "\n"
