"""Plots of a run, in two steps: plain information first, figures second.

The ``*_info`` functions turn step records and round events into lists and dicts (tested on their own,
usable without plotly, easy to export); the ``*_figure`` functions only draw what those return.  Inputs
are what an optimizer keeps and a saved run holds: a :class:`~catalyst_nb.trajectory.Trajectory` (or any
sequence of :class:`~catalyst_nb.trajectory.StepRecord`) and round events, either the optimizer's
event objects or their ``to_dict()`` form read back from disk.

Event payloads used here (see ``catalyst_nb.optim.events``):

* ``stage_end``: ``{"stage", "scoring": {"accuracy", "loss"}, "eval": {...} or None}``
* ``restart``: ``{"template", "loaded", "scoring_before": {...}, "scoring_after": {...}}``

plotly is imported only inside the figure builders, so the information functions cost nothing to import.
In a notebook, ``show_figure(fig)`` displays a figure interactive AND as a static PNG in one output (see
:mod:`catalyst_nb.figure_image`), so it also shows where no JavaScript runs.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

from catalyst_nb.figure_image import show_figure
from catalyst_nb.optim.events import stage_end_rows
from catalyst_nb.trajectory import StepRecord

if TYPE_CHECKING:  # pragma: no cover
    import plotly.graph_objects as go

__all__ = [
    "METRICS",
    "event_dicts",
    "step_series",
    "stage_boundaries",
    "restart_markers",
    "trajectory_info",
    "stage_accuracy_info",
    "runs_stage_summary",
    "boundary_shapes",
    "restart_points",
    "trajectory_figure",
    "stage_accuracy_figure",
    "runs_figure",
    "show_figure",
]

METRICS = ("loss", "accuracy", "grad_norm", "lr")
_SPLITS = ("scoring", "eval")


# ------------------------------------------------------------------------------------------ information

def event_dicts(events: Iterable[Any]) -> list[dict[str, Any]]:
    """Events as plain dicts ``{"kind", "round", "step", "data"}``, from event objects or saved dicts."""
    out = []
    for i, event in enumerate(events):
        d = event.to_dict() if hasattr(event, "to_dict") else event
        if not isinstance(d, Mapping) or not {"kind", "round", "step", "data"} <= set(d):
            raise ValueError(f"event {i} is not a round event: {event!r}")
        out.append(dict(d))
    return out


def step_series(records: Sequence[StepRecord]) -> dict[str, list[Any]]:
    """Columns of the step records: ``step``, the four :data:`METRICS`, ``distance``, ``stage``, ``context_text``."""
    columns = ("step", *METRICS, "distance", "stage", "context_text")
    return {c: [getattr(r, c) for r in records] for c in columns}


def stage_boundaries(records: Sequence[StepRecord], events: Iterable[Any] = ()) -> list[dict[str, int]]:
    """Where a gradient stage ends: ``[{"step", "stage"}]``, ``step`` being the first step after it.

    Taken from ``stage_end`` events when there are any (they also cover a stage that ended with no step
    after it yet), otherwise from changes of ``StepRecord.stage``.
    """
    ends = stage_end_rows(event_dicts(events))
    if ends:
        return [{"step": row["step"], "stage": row["stage"]} for row in ends]
    out = []
    for prev, cur in zip(records, records[1:]):
        if cur.stage != prev.stage:
            out.append({"step": int(cur.step), "stage": int(prev.stage)})
    return out


def restart_markers(events: Iterable[Any]) -> list[dict[str, Any]]:
    """Every restart: step, round, the template chosen and as loaded, and scoring before/after."""
    out = []
    for e in event_dicts(events):
        if e["kind"] != "restart":
            continue
        data = e["data"]
        before, after = data.get("scoring_before") or {}, data.get("scoring_after") or {}
        out.append({
            "step": int(e["step"]),
            "round": int(e["round"]),
            "template": data.get("template"),
            "loaded": data.get("loaded"),
            "accuracy_before": before.get("accuracy"),
            "accuracy_after": after.get("accuracy"),
            "loss_before": before.get("loss"),
            "loss_after": after.get("loss"),
        })
    return out


def trajectory_info(records: Sequence[StepRecord], events: Iterable[Any] = ()) -> dict[str, Any]:
    """Everything :func:`trajectory_figure` draws: series, stage boundaries and restarts."""
    events = event_dicts(events)
    return {
        "series": step_series(records),
        "boundaries": stage_boundaries(records, events),
        "restarts": restart_markers(events),
    }


def stage_accuracy_info(events: Iterable[Any]) -> dict[str, Any]:
    """Accuracy at each stage boundary, with gradient progress and restart jumps told apart.

    Returns ``{"stages": [...], "segments": [...]}``:

    * ``stages``: per ``stage_end`` event, ``{"stage", "step", "scoring", "eval"}`` (accuracies; ``eval``
      is ``None`` without an evaluation split);
    * ``segments``: consecutive scoring-split changes in order, each ``{"kind", "stage", "from_step",
      "to_step", "from_accuracy", "to_accuracy", "change"}``. ``kind="gradient"`` runs from the start of
      a stage (the first stage's end has no known start and is skipped unless a restart preceded it) to
      its end; ``kind="restart"`` is the jump at a restart, from the soft prompt's accuracy before it to
      the restarted context's accuracy after it, labelled with the template.
    """
    stages: list[dict[str, Any]] = []
    segments: list[dict[str, Any]] = []
    start: tuple[int, float] | None = None  # (step, scoring accuracy) where the current stage started
    for e in event_dicts(events):
        data = e["data"]
        if e["kind"] == "stage_end":
            (row,) = stage_end_rows([e])
            scoring, stage = row["scoring_accuracy"], row["stage"]
            stages.append({"stage": stage, "step": row["step"], "scoring": scoring, "eval": row["eval_accuracy"]})
            if start is not None and scoring is not None:
                segments.append(_segment("gradient", stage, start, (row["step"], scoring)))
            start = None
        elif e["kind"] == "restart":
            before = (data.get("scoring_before") or {}).get("accuracy")
            after = (data.get("scoring_after") or {}).get("accuracy")
            if before is not None and after is not None:
                seg = _segment("restart", int(e["round"]), (int(e["step"]), before), (int(e["step"]), after))
                seg["template"] = data.get("template")
                segments.append(seg)
            start = (int(e["step"]), after) if after is not None else None
    return {"stages": stages, "segments": segments}


def _segment(kind: str, stage: int, a: tuple[int, float], b: tuple[int, float]) -> dict[str, Any]:
    return {"kind": kind, "stage": stage, "from_step": a[0], "to_step": b[0], "from_accuracy": a[1],
            "to_accuracy": b[1], "change": b[1] - a[1]}


def runs_stage_summary(runs: Mapping[str, Sequence[Iterable[Any]]], *, split: str = "scoring") -> list[dict[str, Any]]:
    """Mean ± standard deviation of stage-end accuracy over the seeds of each named run.

    Args:
        runs: ``{name: [events of seed 1, events of seed 2, ...]}`` (a method, a preset, a shot count...).
        split: ``"scoring"`` or ``"eval"``.

    Returns one dict per run: ``{"name", "stage": [...], "mean": [...], "std": [...], "n": [...]}``; the
    standard deviation is the sample one (``n - 1``), 0 for a single seed.  Stages that a seed did not
    reach, or reached without a value on this split, are left out of that stage's statistics.
    """
    if split not in _SPLITS:
        raise ValueError(f"split={split!r}; expected one of {_SPLITS}")
    out = []
    for name, seeds in runs.items():
        by_stage: dict[int, list[float]] = {}
        for events in seeds:
            for row in stage_accuracy_info(events)["stages"]:
                if row[split] is not None:
                    by_stage.setdefault(row["stage"], []).append(float(row[split]))
        stages = sorted(by_stage)
        means = [sum(by_stage[s]) / len(by_stage[s]) for s in stages]
        stds = [_sample_std(by_stage[s]) for s in stages]
        out.append({"name": str(name), "stage": stages, "mean": means, "std": stds,
                    "n": [len(by_stage[s]) for s in stages]})
    return out


def _sample_std(values: Sequence[float]) -> float:
    if len(values) < 2:
        return 0.0
    mean = sum(values) / len(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


# ------------------------------------------------------------------------------------------ figures

_TITLES = {"loss": "loss", "accuracy": "accuracy (minibatch)", "grad_norm": "gradient norm", "lr": "learning rate"}


def trajectory_figure(info: Mapping[str, Any], *, widget: bool = False) -> "go.Figure":
    """Four stacked panels (loss, accuracy, gradient norm, learning rate) against step.

    Stage boundaries are dotted vertical lines; restarts are diamond markers on the loss panel whose
    hover text is the restart template.  ``widget=True`` returns a ``FigureWidget`` (for live updates).
    Trace order is fixed (one line per metric, then the restart markers) so live views can update by index.
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    series = info["series"]
    fig = make_subplots(rows=len(METRICS), cols=1, shared_xaxes=True, vertical_spacing=0.04,
                        subplot_titles=[_TITLES[m] for m in METRICS])
    for row, metric in enumerate(METRICS, start=1):
        fig.add_trace(go.Scattergl(x=series["step"], y=series[metric], mode="lines", name=metric,
                                   showlegend=False), row=row, col=1)
    points = restart_points(info["restarts"])
    fig.add_trace(go.Scatter(
        x=points["x"], y=points["y"], mode="markers", marker={"symbol": "diamond", "size": 10, "color": "crimson"},
        name="restart", text=points["text"], hovertemplate="%{text}<extra>restart</extra>",
    ), row=1, col=1)
    fig.update_layout(shapes=boundary_shapes(info["boundaries"]))
    fig.update_yaxes(type="log", row=METRICS.index("lr") + 1, col=1)
    fig.update_xaxes(title_text="step", row=len(METRICS), col=1)
    fig.update_layout(height=640, margin={"l": 50, "r": 20, "t": 40, "b": 40}, hovermode="x unified")
    return go.FigureWidget(fig) if widget else fig


def _restart_label(r: Mapping[str, Any]) -> str:
    import html

    acc = "" if r.get("accuracy_after") is None else f" (scoring acc {r['accuracy_after']:.3f})"
    return f"round {r['round']}: {html.escape(str(r.get('template')))}{acc}"


def boundary_shapes(boundaries: Sequence[Mapping[str, int]], *, rows: int = len(METRICS)) -> list[dict[str, Any]]:
    """Layout shapes for stage boundaries: a dotted vertical line per boundary on each of ``rows`` panels."""
    shapes = []
    for b in boundaries:
        for row in range(1, rows + 1):
            axis = "" if row == 1 else str(row)
            shapes.append({"type": "line", "xref": f"x{axis}", "yref": f"y{axis} domain", "x0": b["step"] - 0.5,
                           "x1": b["step"] - 0.5, "y0": 0, "y1": 1,
                           "line": {"dash": "dot", "color": "gray", "width": 1}})
    return shapes


def restart_points(restarts: Sequence[Mapping[str, Any]]) -> dict[str, list[Any]]:
    """The restart markers' coordinates and (escaped) hover labels: ``{"x", "y", "text"}``."""
    return {"x": [r["step"] for r in restarts], "y": [r["loss_after"] for r in restarts],
            "text": [_restart_label(r) for r in restarts]}


def stage_accuracy_figure(info: Mapping[str, Any]) -> "go.Figure":
    """Accuracy at each stage end on the scoring and evaluation splits; gradient progress as solid
    segments, restart jumps as dashed ones (green up, red down), so the two contributions read apart."""
    import plotly.graph_objects as go

    fig = go.Figure()
    stages = info["stages"]
    for split, symbol in (("scoring", "circle"), ("eval", "square")):
        pts = [s for s in stages if s[split] is not None]
        if pts:
            fig.add_trace(go.Scatter(x=[s["step"] for s in pts], y=[s[split] for s in pts], mode="markers",
                                     marker={"symbol": symbol, "size": 9}, name=f"{split} accuracy at stage end",
                                     text=[f"stage {s['stage']}" for s in pts]))
    for kind, dash in (("gradient", "solid"), ("restart", "dash")):
        segs = [s for s in info["segments"] if s["kind"] == kind]
        for i, s in enumerate(segs):
            color = "steelblue" if kind == "gradient" else ("seagreen" if s["change"] >= 0 else "crimson")
            fig.add_trace(go.Scatter(
                x=[s["from_step"], s["to_step"]], y=[s["from_accuracy"], s["to_accuracy"]], mode="lines",
                line={"dash": dash, "color": color, "width": 3 if kind == "restart" else 2},
                name="gradient progress" if kind == "gradient" else "restart jump", legendgroup=kind,
                showlegend=i == 0, hovertemplate=f"{kind}: %{{y:.3f}}<extra>stage {s['stage']}</extra>"))
    fig.update_layout(xaxis_title="step", yaxis_title="accuracy (scoring split unless marked)", height=380,
                      margin={"l": 50, "r": 20, "t": 30, "b": 40})
    return fig


def runs_figure(summary: Sequence[Mapping[str, Any]], *, split: str = "scoring") -> "go.Figure":
    """Several runs side by side: mean accuracy per stage with ± one standard deviation error bars."""
    import plotly.graph_objects as go

    fig = go.Figure()
    n_runs = max(len(summary), 1)
    for i, run in enumerate(summary):
        offset = (i - (n_runs - 1) / 2) * 0.08  # side by side, not on top of each other
        fig.add_trace(go.Scatter(
            x=[s + offset for s in run["stage"]], y=run["mean"], mode="lines+markers", name=run["name"],
            error_y={"type": "data", "array": run["std"], "visible": True},
            customdata=[[n, sd] for n, sd in zip(run["n"], run["std"])],
            hovertemplate="%{y:.3f} ± %{customdata[1]:.3f} (n=%{customdata[0]})"))
    fig.update_layout(xaxis_title="stage", yaxis_title=f"{split} accuracy (mean ± std over seeds)", height=380,
                      xaxis={"dtick": 1}, margin={"l": 50, "r": 20, "t": 30, "b": 40})
    return fig
