"""TrajectoryInspector over a real GradientPromptOptimizer: follows hooks, throttles, shows contexts."""
from __future__ import annotations

import pytest
import torch

from catalyst_nb.optim import GradientPromptOptimizer
from catalyst_nb.prompt_learner import PromptLearner
from catalyst_nb.widgets import TrajectoryInspector, context_table


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


@pytest.fixture(scope="module")
def train_features(tiny_train_2shot):
    return tiny_train_2shot


def _opt(clip, feats, **kw):
    learner = PromptLearner(clip, feats.classnames, n_ctx=4, seed=0)
    return GradientPromptOptimizer(learner, feats, total_steps=50, warmup_steps=1, batch_size=8, lr=0.5, **kw)


def test_follows_steps_with_throttled_batched_redraws(tiny_native, train_features):
    opt = _opt(tiny_native, train_features)
    clock = FakeClock()
    view = TrajectoryInspector(opt, redraw_every=1.0, clock=clock)
    assert view.redraws == 1 and list(view.figure.data[0].x) == []
    opt.run(5, progress=False)  # the clock stands still: queued, not drawn
    assert view.redraws == 1 and list(view.figure.data[0].x) == []
    clock.now = 100.0
    opt.step()  # one redraw draws all six
    assert view.redraws == 2
    assert list(view.figure.data[0].x) == [0, 1, 2, 3, 4, 5]
    assert list(view.figure.data[0].y) == pytest.approx(opt.trajectory.column("loss"))
    assert list(view.figure.data[3].y) == pytest.approx(opt.trajectory.column("lr"))
    assert (view.slider.min, view.slider.max, view.slider.value) == (0, 5, 5)
    assert "step 5" in view.status.value
    opt.step()
    view.detach()  # detaching draws what is queued and stops following
    assert list(view.figure.data[0].x)[-1] == 6 and not view.attached
    opt.step()
    assert list(view.figure.data[0].x)[-1] == 6


def test_slider_shows_exact_top_k_from_snapshots(tiny_native, train_features):
    opt = _opt(tiny_native, train_features)
    view = TrajectoryInspector(opt, redraw_every=0.0, k=3)
    opt.run(4, progress=False)
    view.flush()
    at1 = view.context_at(1)
    # the snapshot is the context right after step 1: its nearest tokens are the record's projection
    assert at1["exact"] and [s["tokens"][0] for s in at1["slots"]] == \
        tiny_native.tokenizer.token_strings(opt.trajectory[1].token_ids)
    assert at1["mean_distance"] == pytest.approx(opt.trajectory[1].distance, rel=1e-5)
    assert all(len(s["tokens"]) == 3 and s["distances"] == sorted(s["distances"]) for s in at1["slots"])
    # the live context now differs from step 1's (lr 0.5), so the snapshot is what made this exact
    now = context_table(opt.learner, opt.learner.ctx.detach(), k=3)
    assert [s["distances"] for s in now] != [s["distances"] for s in at1["slots"]]
    view.slider.value = 1  # moving the slider renders that step
    assert "step 1" in view.context_view.value and "#3" in view.context_view.value
    with pytest.raises(ValueError, match="step=99"):
        view.context_at(99)


def test_steps_before_attaching_show_top1_from_records(tiny_native, train_features):
    opt = _opt(tiny_native, train_features)
    opt.run(3, progress=False)
    view = TrajectoryInspector(opt, redraw_every=0.0)
    assert list(view.figure.data[0].x) == [0, 1, 2]
    old = view.context_at(0)
    assert not old["exact"] and old["mean_distance"] == opt.trajectory[0].distance
    assert [s["tokens"][0] for s in old["slots"]] == tiny_native.tokenizer.token_strings(opt.trajectory[0].token_ids)
    view.slider.value = 0
    assert "no context snapshot" in view.context_view.value


def test_snapshots_can_be_thinned_and_arguments_are_checked(tiny_native, train_features):
    opt = _opt(tiny_native, train_features)
    view = TrajectoryInspector(opt, redraw_every=0.0, snapshot_every=2)
    opt.run(5, progress=False)
    assert sorted(view.snapshots) == [0, 2, 4]
    assert all(t.shape == opt.learner.ctx.shape and t.device == torch.device("cpu") for t in view.snapshots.values())
    for bad in ({"redraw_every": -1}, {"snapshot_every": -1}, {"k": 0}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            TrajectoryInspector(opt, follow=False, **bad)
