"""plots.py: the information functions on hand-written records and events, and figures drawing them."""
from __future__ import annotations

import math

import pytest

from catalyst_nb import plots
from catalyst_nb.trajectory import StepRecord, Trajectory


def _records(stages=(0, 0, 0, 1, 1, 2)):
    return Trajectory([
        StepRecord(step=i, loss=2.0 - 0.1 * i, accuracy=0.1 * i, grad_norm=1.0 + i, lr=0.002 / (i + 1), stage=s,
                   context_text=f"t{i}")
        for i, s in enumerate(stages)
    ])


def _events():
    """Two rounds: stage 0 ends at step 3, restart; stage 1 ends at step 5, restart; stage 2 ends at 6."""
    return [
        {"kind": "stage_end", "round": 0, "step": 3,
         "data": {"stage": 0, "scoring": {"accuracy": 0.40, "loss": 1.5}, "eval": {"accuracy": 0.38, "loss": 1.6}}},
        {"kind": "candidates", "round": 0, "step": 3, "data": {"candidates": []}},
        {"kind": "restart", "round": 0, "step": 3,
         "data": {"template": "a photo of a {}.", "loaded": "a photo of a", "scoring_before": {"accuracy": 0.40, "loss": 1.5},
                  "scoring_after": {"accuracy": 0.55, "loss": 1.2}}},
        {"kind": "stage_end", "round": 1, "step": 5,
         "data": {"stage": 1, "scoring": {"accuracy": 0.60, "loss": 1.1}, "eval": None}},
        {"kind": "restart", "round": 1, "step": 5,
         "data": {"template": "<b>bold</b> {}", "loaded": "bold", "scoring_before": {"accuracy": 0.60, "loss": 1.1},
                  "scoring_after": {"accuracy": 0.50, "loss": 1.3}}},
        {"kind": "stage_end", "round": 2, "step": 6,
         "data": {"stage": 2, "scoring": {"accuracy": 0.70, "loss": 0.9}, "eval": {"accuracy": 0.66, "loss": 1.0}}},
    ]


class _Event:
    """An event object with to_dict(), as the optimizer keeps them."""

    def __init__(self, d):
        self._d = d

    def to_dict(self):
        return dict(self._d)


def test_step_series_columns():
    s = plots.step_series(_records())
    assert s["step"] == [0, 1, 2, 3, 4, 5]
    assert s["loss"] == pytest.approx([2.0, 1.9, 1.8, 1.7, 1.6, 1.5])
    assert s["stage"] == [0, 0, 0, 1, 1, 2] and s["context_text"][2] == "t2"
    assert set(plots.METRICS) <= set(s)


def test_boundaries_from_stage_changes_and_from_events():
    assert plots.stage_boundaries(_records()) == [{"step": 3, "stage": 0}, {"step": 5, "stage": 1}]
    from_events = plots.stage_boundaries(_records(), _events())
    assert from_events == [{"step": 3, "stage": 0}, {"step": 5, "stage": 1}, {"step": 6, "stage": 2}]


def test_restart_markers_read_objects_and_dicts_alike():
    markers = plots.restart_markers([_Event(e) for e in _events()])
    assert markers == plots.restart_markers(_events())
    assert [m["step"] for m in markers] == [3, 5]
    assert markers[0]["template"] == "a photo of a {}." and markers[0]["accuracy_after"] == 0.55
    assert markers[1]["loss_before"] == 1.1


def test_stage_accuracy_tells_gradient_progress_from_restart_jumps():
    info = plots.stage_accuracy_info(_events())
    assert info["stages"] == [
        {"stage": 0, "step": 3, "scoring": 0.40, "eval": 0.38},
        {"stage": 1, "step": 5, "scoring": 0.60, "eval": None},
        {"stage": 2, "step": 6, "scoring": 0.70, "eval": 0.66},
    ]
    kinds = [(s["kind"], s["stage"]) for s in info["segments"]]
    # stage 0 has no known start; then restart, gradient, restart, gradient
    assert kinds == [("restart", 0), ("gradient", 1), ("restart", 1), ("gradient", 2)]
    changes = [round(s["change"], 6) for s in info["segments"]]
    assert changes == [0.15, 0.05, -0.10, 0.20]
    assert info["segments"][2]["template"] == "<b>bold</b> {}"
    # the gradient segment runs from the restart's accuracy to the stage end
    assert info["segments"][1]["from_accuracy"] == 0.55 and info["segments"][1]["to_step"] == 5


def test_runs_summary_mean_and_sample_std_over_seeds():
    seed_a = _events()
    seed_b = [dict(e, data=dict(e["data"], scoring={"accuracy": e["data"]["scoring"]["accuracy"] + 0.1, "loss": 1.0}))
              if e["kind"] == "stage_end" else e for e in _events()]
    summary = plots.runs_stage_summary({"catalyst": [seed_a, seed_b], "coop": [seed_a]})
    cat = summary[0]
    assert cat["name"] == "catalyst" and cat["stage"] == [0, 1, 2] and cat["n"] == [2, 2, 2]
    assert cat["mean"] == pytest.approx([0.45, 0.65, 0.75])
    assert cat["std"] == pytest.approx([math.sqrt(0.005)] * 3)
    assert summary[1]["std"] == [0.0, 0.0, 0.0]
    evaluation = plots.runs_stage_summary({"catalyst": [seed_a]}, split="eval")[0]
    assert evaluation["stage"] == [0, 2], "a stage without an eval value is left out"
    with pytest.raises(ValueError, match="split='test'"):
        plots.runs_stage_summary({}, split="test")


def test_bad_events_are_named():
    with pytest.raises(ValueError, match="event 1"):
        plots.event_dicts([_events()[0], {"kind": "restart"}])


def test_figures_draw_the_information():
    info = plots.trajectory_info(_records(), _events())
    fig = plots.trajectory_figure(info)
    assert [t.name for t in fig.data] == [*plots.METRICS, "restart"]
    assert list(fig.data[0].y) == pytest.approx(info["series"]["loss"])
    assert list(fig.data[-1].x) == [3, 5]
    assert "&lt;b&gt;bold&lt;/b&gt;" in fig.data[-1].text[1], "templates in hover text are escaped"
    assert len(fig.layout.shapes) == 3 * len(plots.METRICS)
    sa = plots.stage_accuracy_figure(plots.stage_accuracy_info(_events()))
    names = {t.name for t in sa.data}
    assert {"scoring accuracy at stage end", "eval accuracy at stage end", "gradient progress", "restart jump"} <= names
    runs = plots.runs_figure(plots.runs_stage_summary({"a": [_events()], "b": [_events()]}))
    assert len(runs.data) == 2 and list(runs.data[0].error_y.array) == [0.0, 0.0, 0.0]
    assert runs.data[0].x[0] != runs.data[1].x[0], "runs are drawn side by side"
