"""A run's self-contained HTML report: accuracy per stage, loss per step, and the proposals table.

Built from the run folder's events alone (what a notebook, the CLI and a sweep all read).  plotly's
JavaScript is not inlined (5 MB a copy): the page loads the one copy of its folder tree by a relative path
(:mod:`catalyst_nb.plotly_script`: the sweep folder's for a sweep cell, else the run folder's own), so it
stays small and still opens without a network.  Every text that came from an LLM or a person is
HTML-escaped.
"""
from __future__ import annotations

import html
from typing import Any, Mapping

from catalyst_nb.optim.events import stage_end_rows
from catalyst_nb.plotly_script import page_head, script_for
from catalyst_nb.runs.folder import RunFolder
from catalyst_nb.state_io import atomic_write_text

__all__ = ["report_data", "write_report"]


def report_data(events: list[Mapping[str, Any]]) -> dict[str, Any]:
    """Plain data for the report: steps and losses, stage accuracies, restarts, proposals."""
    steps = [e for e in events if e.get("type") == "step"]
    rounds = [e for e in events if e.get("type") == "round"]
    stage_ends = stage_end_rows(rounds)
    proposals = [p for e in rounds if e["kind"] in ("proposals",) for p in e["data"]["proposals"]]
    chosen = {e["data"]["chosen"] for e in rounds if e["kind"] == "decision" and e["data"].get("chosen")}
    return {
        "step": [e["step"] for e in steps],
        "loss": [e["loss"] for e in steps],
        "stage_step": [row["step"] for row in stage_ends],
        "stage_scoring": [row["scoring_accuracy"] for row in stage_ends],
        "stage_test": [row["eval_accuracy"] for row in stage_ends],
        "restarts": [{"step": e["step"], "template": e["data"]["template"]} for e in rounds if e["kind"] == "restart"],
        "skipped": [{"round": e["round"], "reason": e["data"]["reason"]} for e in rounds if e["kind"] == "skipped"],
        "proposals": [{**p, "chosen": p["id"] in chosen} for p in proposals],
    }


def _table(rows: list[Mapping[str, Any]]) -> str:
    head = "<tr><th>id</th><th>template</th><th>source</th><th>scoring loss</th><th>accuracy</th><th>chosen</th></tr>"

    def fmt(x: Any, pct: bool = False) -> str:
        if x is None:
            return "–"
        return f"{100 * x:.2f} %" if pct else f"{x:.4f}"

    body = "".join(
        f"<tr><td>{html.escape(str(r['id']))}</td><td>{html.escape(str(r['template']))}</td>"
        f"<td>{html.escape(str(r['source']))}</td><td>{fmt(r.get('loss'))}</td>"
        f"<td>{fmt(r.get('accuracy'), True)}</td><td>{'yes' if r['chosen'] else ''}</td></tr>"
        for r in rows
    )
    return f"<table>{head}{body}</table>"


def write_report(folder: RunFolder, summary: Mapping[str, Any]) -> None:
    """``report.html`` in the run folder (plus the tree's shared plotly.js, if the tree has none yet)."""
    import plotly.graph_objects as go

    data = report_data(folder.read_events())
    acc = go.Figure()
    acc.add_scatter(x=data["stage_step"], y=[100 * a for a in data["stage_scoring"]], name="scoring split",
                    mode="lines+markers")
    if any(a is not None for a in data["stage_test"]):
        acc.add_scatter(x=data["stage_step"], y=[None if a is None else 100 * a for a in data["stage_test"]],
                        name="test split", mode="lines+markers")
    for r in data["restarts"]:
        acc.add_vline(x=r["step"], line_dash="dot", annotation_text=html.escape(r["template"])[:40])
    # legends above the plots: both plots keep the page's full width, so their step axes line up
    legend = {"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0}
    last = max([*data["step"], *data["stage_step"]], default=0)
    steps_axis = {"range": [-0.02 * last - 0.5, 1.02 * last + 0.5]}  # one step axis for both plots
    acc.update_layout(title="Accuracy at each stage end (dotted: restarts)", xaxis_title="step",
                      yaxis_title="accuracy (%)", height=380, legend=legend, xaxis=steps_axis)
    loss = go.Figure(go.Scatter(x=data["step"], y=data["loss"], mode="lines", name="minibatch loss"))
    loss.update_layout(title="Training loss", xaxis_title="step", yaxis_title="loss", height=320, legend=legend,
                       showlegend=False, xaxis=steps_axis)
    title = html.escape(f"{summary.get('method')} · seed {summary.get('seed')} · {summary.get('shots')} shots")
    test = summary.get("test_accuracy")
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title>",
        page_head(folder.report_file, script_for(folder.path)),
        "<style>body{font-family:sans-serif;max-width:1000px;margin:auto}td,th{padding:2px 8px;text-align:left}"
        "table{border-collapse:collapse}tr:nth-child(even){background:#f4f4f4}</style></head><body>",
        f"<h1>{title}</h1>",
        f"<p>test accuracy <b>{'–' if test is None else f'{100 * test:.2f} %'}</b>; "
        f"zero-shot 'a photo of a {{}}.' {100 * summary.get('zero_shot_accuracy', float('nan')):.2f} %; "
        f"{summary.get('seconds', '?')} s</p>",
        acc.to_html(full_html=False, include_plotlyjs=False),
        loss.to_html(full_html=False, include_plotlyjs=False),
    ]
    if data["proposals"]:
        parts += ["<h2>Proposals</h2>", _table(data["proposals"])]
    if data["skipped"]:
        parts += ["<h2>Skipped rounds</h2><ul>"] + [
            f"<li>round {s['round']}: {html.escape(s['reason'])}</li>" for s in data["skipped"]] + ["</ul>"]
    parts.append("</body></html>")
    atomic_write_text(folder.report_file, "\n".join(parts))
