"""GradientPromptOptimizer: learning, records, schedule, exact continuation, hooks, NaN handling."""
from __future__ import annotations

import math

import pytest
import torch

from catalyst_nb.data import few_shot, load_embedded_fashion_mnist
from catalyst_nb.features import extract_features
from catalyst_nb.optim import GradientPromptOptimizer, NonFiniteLossError, coop_learning_rate
from catalyst_nb.prompt_learner import PromptLearner


@pytest.fixture(scope="module")
def train_features(tiny_native):
    ds = few_shot(load_embedded_fashion_mnist("train"), shots=4, seed=1)
    return extract_features(tiny_native, ds, views=2, cache_dir=False, progress=False)


def _optimizer(clip, feats, **kwargs):
    learner = PromptLearner(clip, feats.classnames, n_ctx=4, seed=0)
    kwargs.setdefault("total_steps", 40)
    kwargs.setdefault("warmup_steps", 1)
    kwargs.setdefault("batch_size", 8)
    return GradientPromptOptimizer(learner, feats, **kwargs)


def test_training_lowers_the_loss(tiny_native, train_features):
    opt = _optimizer(tiny_native, train_features, lr=1.0, total_steps=100, batch_size=40)
    before = opt.evaluate(train_features).loss
    opt.run(100, progress=False)
    after = opt.evaluate(train_features).loss
    assert after < before - 0.05


def test_step_returns_and_appends_a_complete_record(tiny_native, train_features):
    opt = _optimizer(tiny_native, train_features)
    ctx_before = opt.learner.ctx.detach().clone()
    record = opt.step()
    assert opt.trajectory[-1] is record and record.step == 0 and opt.step_count == 1
    assert math.isfinite(record.loss) and 0 <= record.accuracy <= 1 and record.grad_norm > 0
    assert record.lr == pytest.approx(1e-5)
    assert not torch.equal(opt.learner.ctx, ctx_before)
    projected = opt.learner.to_text()
    assert record.context_text == projected.text and record.template == projected.template
    assert record.token_ids == projected.token_ids[0]
    assert record.distance == pytest.approx(sum(projected.distances[0]) / 4)


def test_projection_can_be_thinned(tiny_native, train_features):
    opt = _optimizer(tiny_native, train_features, project_every=3)
    records = opt.run(4, progress=False)
    assert [r.context_text is not None for r in records] == [True, False, False, True]


def test_learning_rate_schedule():
    kw = dict(lr=0.002, total_steps=100, warmup_steps=5, warmup_lr=1e-5)
    rates = [coop_learning_rate(s, **kw) for s in range(120)]
    assert rates[:5] == [1e-5] * 5
    assert rates[5] == pytest.approx(0.5 * 0.002 * (1 + math.cos(math.pi * 0.05)))
    assert all(a >= b for a, b in zip(rates[5:], rates[6:]))
    assert rates[100] == pytest.approx(0.0) and rates[119] == pytest.approx(0.0)


def test_epochs_set_total_and_warmup(tiny_native, train_features):
    learner = PromptLearner(tiny_native, train_features.classnames, n_ctx=4)
    opt = GradientPromptOptimizer(learner, train_features, epochs=3, batch_size=32)
    per_epoch = math.ceil(len(train_features) / 32)
    assert opt.config.total_steps == 3 * per_epoch and opt.config.warmup_steps == per_epoch


def test_state_dict_continuation_is_bit_identical(tiny_native, train_features):
    straight = _optimizer(tiny_native, train_features)
    straight_records = straight.run(9, progress=False)

    first = _optimizer(tiny_native, train_features)
    first.run(4, progress=False)
    state = first.state_dict()
    resumed = _optimizer(tiny_native, train_features)
    resumed.load_state_dict(state)
    resumed.run(5, progress=False)

    assert torch.equal(straight.learner.ctx, resumed.learner.ctx)
    assert [r.loss for r in straight_records] == [r.loss for r in resumed.trajectory]
    assert [r.step for r in resumed.trajectory] == list(range(9))


def test_load_state_dict_refuses_other_config(tiny_native, train_features):
    state = _optimizer(tiny_native, train_features).state_dict()
    other = _optimizer(tiny_native, train_features, lr=0.1)
    with pytest.raises(ValueError, match="lr"):
        other.load_state_dict(state)
    with pytest.raises(ValueError, match="not a GradientPromptOptimizer state"):
        other.load_state_dict({"version": 99})


def test_nan_loss_names_the_step_and_changes_nothing(tiny_native, train_features):
    opt = _optimizer(tiny_native, train_features)
    opt.run(2, progress=False)
    with torch.no_grad():
        opt.learner.ctx[0, 0] = float("nan")
    gen_state = opt._gen.get_state()
    with pytest.raises(NonFiniteLossError, match="at step 2"):
        opt.step()
    assert opt.step_count == 2 and len(opt.trajectory) == 2
    assert torch.equal(opt._gen.get_state(), gen_state)


def test_hooks_see_every_step_and_can_be_removed(tiny_native, train_features):
    opt = _optimizer(tiny_native, train_features)
    seen = []
    handle = opt.register_step_hook(lambda o, r: seen.append(r.step))
    opt.run(3, progress=False)
    handle.remove()
    opt.step()
    assert seen == [0, 1, 2]


def test_restart_from_text_keeps_or_resets_momentum(tiny_native, train_features):
    opt = _optimizer(tiny_native, train_features)
    opt.run(2, progress=False)
    report = opt.load_text("a photo of a {}.")
    assert opt.learner.to_text().template == "a photo of a {}." and report.n_padded == 0
    assert opt.optimizer.state  # momentum carried over (the paper's behaviour)
    opt.load_text("a photo of a {}.", reset_momentum=True)
    assert not opt.optimizer.state


def test_bad_configuration_is_rejected(tiny_native, train_features):
    for bad in ({"lr": 0}, {"batch_size": 0}, {"warmup_steps": 50, "total_steps": 40}, {"precision": "fp8"}):
        with pytest.raises(ValueError):
            _optimizer(tiny_native, train_features, **bad)
    learner = PromptLearner(tiny_native, ["a", "b"], n_ctx=2)
    with pytest.raises(ValueError, match="differ"):
        GradientPromptOptimizer(learner, train_features)


def test_schedule_position_is_kept_apart_from_the_step_and_can_be_rewarmed(tiny_native, train_features):
    opt = _optimizer(tiny_native, train_features, total_steps=20, warmup_steps=2, lr=0.1)
    opt.run(10, progress=False)
    assert (opt.step_count, opt.schedule_step) == (10, 10)
    decayed = opt.lr
    opt.rewarm()
    assert (opt.step_count, opt.schedule_step) == (10, 0)
    assert opt.lr == pytest.approx(opt.config.warmup_lr)  # warm-up again
    opt.run(2, progress=False)
    fresh = coop_learning_rate(2, lr=0.1, total_steps=10, warmup_steps=2, warmup_lr=opt.config.warmup_lr)
    assert opt.lr == pytest.approx(fresh) and opt.lr > decayed  # cosine restarts over the 10 steps left
    records = opt.run(8, progress=False)
    assert [r.step for r in records] == list(range(12, 20))  # the global step keeps rising
    assert records[-1].lr < 0.01
    state = opt.state_dict()
    assert (state["state"]["schedule_step"], state["state"]["schedule_total"]) == (10, 10)


def test_evaluate_refuses_a_split_whose_classes_are_in_another_order(tiny_native, train_features):
    import dataclasses

    opt = _optimizer(tiny_native, train_features)
    shuffled = dataclasses.replace(train_features, classnames=tuple(sorted(train_features.classnames)))
    with pytest.raises(ValueError, match="same order"):
        opt.evaluate(shuffled)
    assert 0 <= opt.evaluate(train_features).accuracy <= 1
