"""Accuracy against shots, one line per method, error bars of one std over seeds (plotly).

Drawing only: the lines come from :func:`catalyst_nb.sweeps.aggregate.figure_series`, which is tested
on its own.  The HTML loads the sweep folder's one copy of plotly.js by a relative path, so it opens
offline (see :mod:`catalyst_nb.plotly_script`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

from catalyst_nb.plotly_script import page_head, script_for

from .atomic import write_text_atomic

__all__ = ["draw_figure", "write_figure_html"]


def draw_figure(panels: Sequence[tuple[str, Sequence[Mapping[str, Any]]]], *, title: str = "") -> Any:
    """One panel per (title, series); a panel with no series is left out."""
    from plotly.subplots import make_subplots
    import plotly.graph_objects as go

    panels = [(name, series) for name, series in panels if series]
    fig = make_subplots(rows=1, cols=max(1, len(panels)), subplot_titles=[name for name, _ in panels])
    palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]
    colours: dict[str, str] = {}
    for col, (_, series) in enumerate(panels, start=1):
        for line in series:
            colour = colours.setdefault(line["name"], palette[len(colours) % len(palette)])
            fig.add_trace(go.Scatter(
                x=line["shots"], y=[100 * m for m in line["mean"]], name=line["name"], legendgroup=line["name"],
                showlegend=col == 1, mode="lines+markers", line={"color": colour},
                error_y={"type": "data", "array": [100 * s for s in line["std"]], "visible": True},
                customdata=line["n"], hovertemplate="%{x} shots: %{y:.2f}% (n=%{customdata})",
            ), row=1, col=col)
        fig.update_xaxes(title_text="shots per class", type="log", tickvals=sorted({s for l in series for s in l["shots"]}),
                         row=1, col=col)
        fig.update_yaxes(title_text="accuracy (%)", row=1, col=col)
    fig.update_layout(title=title, template="plotly_white")
    return fig


def write_figure_html(fig: Any, path: str | Path) -> Path:
    path = Path(path)
    head = page_head(path, script_for(path.parent))
    body = fig.to_html(include_plotlyjs=False, full_html=False)
    return write_text_atomic(path, f"<!doctype html><html><head><meta charset='utf-8'>{head}</head><body>{body}</body></html>")
