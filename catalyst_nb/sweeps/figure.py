"""Accuracy against shots, one line per method, error bars of one std over seeds (plotly).

With a baseline, more panels draw each method's paired difference to it against shots, with its 95 %
paired t interval as the error bar and a line at 0: an interval that crosses the line is seed noise.

Drawing only: the lines come from :func:`catalyst_nb.sweeps.aggregate.figure_series` and
:func:`~catalyst_nb.sweeps.aggregate.difference_series`, which are tested on their own.  The HTML loads the
sweep folder's one copy of plotly.js by a relative path, so it opens offline (see
:mod:`catalyst_nb.plotly_script`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

from catalyst_nb.plotly_script import page_head, script_for
from catalyst_nb.state_io import atomic_write_text

__all__ = ["draw_figure", "write_figure_html"]


def draw_figure(panels: Sequence[tuple[str, Sequence[Mapping[str, Any]]]], *, title: str = "") -> Any:
    """One panel per (title, series); a panel with no series is left out."""
    from plotly.subplots import make_subplots
    import plotly.graph_objects as go

    panels = [(name, series) for name, series in panels if series]
    fig = make_subplots(rows=1, cols=max(1, len(panels)), subplot_titles=[name for name, _ in panels])
    palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]
    colours: dict[str, str] = {}
    shown: set[str] = set()
    for col, (_, series) in enumerate(panels, start=1):
        for line in series:
            colour = colours.setdefault(line["name"], palette[len(colours) % len(palette)])
            interval = "low" in line
            if interval:  # a paired difference: asymmetric-capable bars from the interval's ends
                error = {"type": "data", "symmetric": False, "visible": True,
                         "array": [100 * (h - m) for h, m in zip(line["high"], line["mean"])],
                         "arrayminus": [100 * (m - lo) for m, lo in zip(line["mean"], line["low"])]}
                hover = "%{x} shots: %{y:+.2f} points (n=%{customdata})"
            else:
                error = {"type": "data", "array": [100 * s for s in line["std"]], "visible": True}
                hover = "%{x} shots: %{y:.2f}% (n=%{customdata})"
            fig.add_trace(go.Scatter(
                x=line["shots"], y=[100 * m for m in line["mean"]], name=line["name"], legendgroup=line["name"],
                showlegend=line["name"] not in shown, mode="lines+markers", line={"color": colour},
                error_y=error, customdata=line["n"], hovertemplate=hover,
            ), row=1, col=col)
            shown.add(line["name"])
        fig.update_xaxes(title_text="shots per class", type="log", tickvals=sorted({s for l in series for s in l["shots"]}),
                         row=1, col=col)
        if any("low" in line for line in series):
            fig.add_hline(y=0, line={"color": "#444", "dash": "dot"}, row=1, col=col)
            fig.update_yaxes(title_text="difference (points)", row=1, col=col)
        else:
            fig.update_yaxes(title_text="accuracy (%)", row=1, col=col)
    fig.update_layout(title=title, template="plotly_white")
    return fig


def write_figure_html(fig: Any, path: str | Path) -> Path:
    path = Path(path)
    head = page_head(path, script_for(path.parent))
    body = fig.to_html(include_plotlyjs=False, full_html=False)
    return atomic_write_text(path, f"<!doctype html><html><head><meta charset='utf-8'>{head}</head><body>{body}</body></html>")
