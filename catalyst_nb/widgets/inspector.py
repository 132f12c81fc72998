"""TrajectoryInspector: a live view of a prompt-tuning run (loss, accuracy, gradient norm, learning rate,
stage boundaries, restarts) with a step slider that reads the context at any step as its nearest words.

It is a view: it follows the optimizer through ``register_step_hook`` (and ``register_event_hook`` when
the optimizer has round events) and reads only public attributes.  Step hooks are cheap on purpose:
a record is queued and the context is copied (a few kilobytes); the figure is redrawn at most every
``redraw_every`` seconds, in one batched update, so a live view costs little during ``run()``.

Why snapshots: a step record keeps only the nearest token per slot and the mean distance, enough for a
plot but not for "what were the runners-up at step 412?".  Keeping a copy of the context per step lets
the slider compute the top-k neighbours and per-slot distances exactly, and only when someone looks.
Steps without a snapshot (attached late, ``snapshot_every > 1``, a reloaded run without tensors) show the
record's top-1 tokens and say so.

Redraws hand plotly numpy arrays (validated in bulk, not element by element) and are spaced so that
drawing takes at most about ``1 / (1 + DRAW_GAP_FACTOR)`` of the wall time: after a redraw that took
``t`` seconds the next waits at least ``DRAW_GAP_FACTOR * t`` (and ``redraw_every``).  A long run, whose
redraws grow with its length, is thus never slowed by much more than that share.
"""
from __future__ import annotations

import html
import time
from typing import Any, Callable

import numpy as np
import torch

from catalyst_nb import plots
from catalyst_nb.projection import nearest_tokens
from catalyst_nb.trajectory import StepRecord

__all__ = ["DRAW_GAP_FACTOR", "TrajectoryInspector", "context_table"]

DRAW_GAP_FACTOR = 25.0  # wait 25x the last redraw's duration: drawing stays under ~4 % of the wall time


def _learner_of(optimizer: Any) -> Any:
    learner = getattr(optimizer, "learner", None)
    if learner is None:
        learner = getattr(getattr(optimizer, "gradient", None), "learner", None)
    if learner is None:
        raise ValueError(f"{type(optimizer).__name__} has no prompt learner (expected .learner or .gradient.learner)")
    return learner


def context_table(learner: Any, ctx: torch.Tensor, *, k: int = 3, metric: str = "l2") -> list[dict[str, Any]]:
    """Top-``k`` nearest tokens of each context slot: ``[{"slot", "tokens", "distances"}]``.

    ``ctx`` is ``[n_ctx, width]`` (the first class's row is used for class-specific context).
    """
    rows = ctx[0] if ctx.ndim == 3 else ctx
    tok = learner.clip.tokenizer
    near = nearest_tokens(rows.float(), learner.clip.token_embedding.weight, metric=metric, k=k,
                          exclude_ids=tok.excluded_ids)
    return [
        {"slot": i, "tokens": tok.token_strings(near.ids[i].tolist()),
         "distances": [float(d) for d in near.scores[i]]}
        for i in range(near.ids.shape[0])
    ]


class TrajectoryInspector:
    """Live plots of a run plus a step slider showing the projected context at that step.

    Args:
        optimizer: a ``GradientPromptOptimizer`` or ``CatalystOptimizer``.
        redraw_every: least number of seconds between two redraws while steps arrive.
        snapshot_every: copy the context every this many steps (0: never; the slider then shows the
            step records' top-1 tokens only).
        k: neighbours per slot shown by the slider.
        follow: attach the hooks now (``attach()`` / ``detach()`` later otherwise).
        clock: the time source (tests pass a fake one to control throttling).
    """

    def __init__(self, optimizer: Any, *, redraw_every: float = 0.5, snapshot_every: int = 1, k: int = 3,
                 follow: bool = True, clock: Callable[[], float] = time.monotonic) -> None:
        if redraw_every < 0:
            raise ValueError(f"redraw_every={redraw_every!r} must be >= 0")
        if snapshot_every < 0:
            raise ValueError(f"snapshot_every={snapshot_every!r} must be >= 0")
        if k < 1:
            raise ValueError(f"k={k!r} must be >= 1")
        self.optimizer = optimizer
        self.learner = _learner_of(optimizer)
        self.redraw_every = float(redraw_every)
        self.snapshot_every = int(snapshot_every)
        self.k = int(k)
        self._clock = clock
        self._records: list[StepRecord] = list(optimizer.trajectory)
        self.snapshots: dict[int, torch.Tensor] = {}
        self._pending = 0
        self._last_draw = float("-inf")
        self._gap = self.redraw_every
        self._handles: list[Any] = []
        self.redraws = 0
        self._build()
        self.flush()
        if follow:
            self.attach()

    # ------------------------------------------------------------------------------------------ widgets

    def _build(self) -> None:
        import ipywidgets as w

        self.figure = plots.trajectory_figure(plots.trajectory_info([], []), widget=True)
        self.slider = w.IntSlider(value=0, min=0, max=0, description="step", continuous_update=False,
                                  layout=w.Layout(width="95%"))
        self.context_view = w.HTML()
        self.status = w.HTML()
        self.slider.observe(lambda change: self._show(change["new"]), names="value")
        self.widget = w.VBox([self.status, self.figure, self.slider, self.context_view])

    def _ipython_display_(self) -> None:  # pragma: no cover - exercised in notebooks
        from IPython.display import display

        display(self.widget)

    # ------------------------------------------------------------------------------------------ following

    def attach(self) -> "TrajectoryInspector":
        """Follow the optimizer through its hooks (idempotent)."""
        if not self._handles:
            self._handles.append(self.optimizer.register_step_hook(self._on_step))
            if hasattr(self.optimizer, "register_event_hook"):
                self._handles.append(self.optimizer.register_event_hook(self._on_event))
        return self

    def detach(self) -> None:
        """Stop following; draws what is still queued."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self.flush()

    @property
    def attached(self) -> bool:
        return bool(self._handles)

    def _on_step(self, optimizer: Any, record: StepRecord) -> None:
        self._records.append(record)
        # only the live step's context is the context "at" this record (adopted probe steps are replayed
        # to observers after the fact, when the context already sits at the branch's end)
        live = record.step == getattr(optimizer, "step_count", record.step + 1) - 1
        # a run followed from its folder (runs.attach) has no context tensor here: records only
        has_ctx = getattr(self.learner, "ctx", None) is not None
        if live and has_ctx and self.snapshot_every and record.step % self.snapshot_every == 0:
            self.snapshots[record.step] = self.learner.ctx.detach().to("cpu", copy=True)
        self._pending += 1
        if self._clock() - self._last_draw >= self._gap:
            self.flush()

    def _on_event(self, optimizer: Any, event: Any) -> None:
        self.flush()  # boundaries and restarts are rare and worth showing at once

    def _events(self) -> list[Any]:
        return list(getattr(self.optimizer, "events", ()) or ())

    def flush(self) -> None:
        """Redraw now with everything queued (one batched figure update)."""
        started = time.perf_counter()
        info = plots.trajectory_info(self._records, self._events())
        series = info["series"]
        points = plots.restart_points(info["restarts"])
        shapes = plots.boundary_shapes(info["boundaries"])
        with self.figure.batch_update():
            steps = np.asarray(series["step"], dtype=np.int64)
            for i, metric in enumerate(plots.METRICS):
                self.figure.data[i].x = steps
                self.figure.data[i].y = np.asarray(series[metric], dtype=np.float64)
            markers = self.figure.data[len(plots.METRICS)]
            markers.x, markers.y, markers.text = points["x"], points["y"], points["text"]
            if len(shapes) != len(self.figure.layout.shapes):
                self.figure.layout.shapes = shapes
        self._pending = 0
        self.redraws += 1
        steps = series["step"]
        if steps:
            follow = self.slider.value == self.slider.max
            self.slider.min, self.slider.max = steps[0], steps[-1]
            if follow:
                self.slider.value = steps[-1]
        last = self._records[-1] if self._records else None
        n_restarts = len(info["restarts"])
        self.status.value = (
            "<b>no steps yet</b>" if last is None else
            f"<b>step {last.step}</b> · loss {last.loss:.4f} · accuracy {last.accuracy:.3f} · "
            f"stage {last.stage} · {n_restarts} restart(s)"
        )
        self._show(self.slider.value)
        self._gap = max(self.redraw_every, DRAW_GAP_FACTOR * (time.perf_counter() - started))
        self._last_draw = self._clock()

    # ------------------------------------------------------------------------------------------ the slider

    def context_at(self, step: int) -> dict[str, Any]:
        """What the slider shows for ``step`` (the Python twin of moving it).

        Returns ``{"step", "template", "mean_distance", "exact", "slots": [{"slot", "tokens",
        "distances"}]}``; ``exact`` is False when no snapshot exists and the slots hold the record's
        top-1 token ids only (distances unknown per slot).
        """
        record = next((r for r in self._records if r.step == step), None)
        if record is None:
            raise ValueError(f"step={step!r} is not in the trajectory")
        snap = self.snapshots.get(step)
        if snap is not None:
            slots = context_table(self.learner, snap, k=self.k)
            mean = sum(s["distances"][0] for s in slots) / len(slots)
            return {"step": step, "template": record.template, "mean_distance": mean, "exact": True, "slots": slots}
        ids = record.token_ids or ()
        strings = self.learner.clip.tokenizer.token_strings(ids) if ids else []
        slots = [{"slot": i, "tokens": [t], "distances": [None]} for i, t in enumerate(strings)]
        return {"step": step, "template": record.template, "mean_distance": record.distance, "exact": False,
                "slots": slots}

    def _show(self, step: int) -> None:
        if not self._records:
            self.context_view.value = ""
            return
        try:
            info = self.context_at(step)
        except ValueError:
            self.context_view.value = f"<i>no record at step {int(step)}</i>"
            return
        self.context_view.value = _context_html(info)


def _context_html(info: dict[str, Any]) -> str:
    esc = html.escape
    head = (f"<div><b>step {info['step']}</b> · template <code>{esc(str(info['template']))}</code> · "
            f"mean distance to nearest words "
            f"{'n/a' if info['mean_distance'] is None else format(info['mean_distance'], '.3f')}</div>")
    if not info["exact"]:
        head += "<div><i>no context snapshot at this step: nearest token per slot from the step record</i></div>"
    rows = []
    for slot in info["slots"]:
        cells = "".join(
            f"<td><code>{esc(t)}</code>{'' if d is None else f' <small>{d:.3f}</small>'}</td>"
            for t, d in zip(slot["tokens"], slot["distances"])
        )
        rows.append(f"<tr><td>{slot['slot']}</td>{cells}</tr>")
    k = max((len(s["tokens"]) for s in info["slots"]), default=1)
    header = "<tr><th>slot</th>" + "".join(f"<th>#{i + 1}</th>" for i in range(k)) + "</tr>"
    return head + f"<table class='catalyst-context'>{header}{''.join(rows)}</table>"
