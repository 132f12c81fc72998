"""The probe's forks: one batch of contexts through the text tower equals the forks run one by one."""
from __future__ import annotations

import copy

import pytest
import torch

from catalyst_nb.optim.gradient import GradientPromptOptimizer, NonFiniteLossError
from catalyst_nb.optim.probing import CURRENT, adopt_fork, forks_fit_at_once, run_forks
from catalyst_nb.prompt_learner import PromptLearner
from catalyst_nb.scoring import TemplateScorer

TEMPLATES = {"p1": "a blurry photo of a {}.", "p2": "a {} on black"}


def _optimizer(clip, splits, *, shared_prefix=True, class_specific=False, **config):
    train, scoring, _ = splits
    learner = PromptLearner(clip, train.classnames, n_ctx=4, ctx_init=None if class_specific else "a photo of a",
                            seed=0, shared_prefix=shared_prefix, class_specific=class_specific)
    config = {"total_steps": 20, "warmup_steps": 1, "batch_size": 8, "lr": 0.1, "seed": 1, **config}
    opt = GradientPromptOptimizer(learner, train, **config)
    for _ in range(3):  # momentum and a data position to carry into the forks
        opt.step()
    return opt, TemplateScorer(learner, scoring)


def _loader(opt, *, reset_momentum, rewarm):
    def load(template):
        opt.load_text(template, reset_momentum=reset_momentum)
        if rewarm:
            opt.rewarm()
    return load


def _both(opt, scorer, load, steps=4):
    branches = {CURRENT: None, **TEMPLATES}
    before = copy.deepcopy(opt.state_dict()["state"])  # torch's optimizer state_dict hands out its live tensors
    separate = run_forks(opt, scorer, branches, steps=steps, load_template=load, batched=False)
    _assert_unchanged(opt, before)
    batched = run_forks(opt, scorer, branches, steps=steps, load_template=load, batched=True)
    _assert_unchanged(opt, before)
    assert (separate.batched, batched.batched) == (False, True)
    return separate, batched


def _assert_unchanged(opt, before):
    """The live optimizer ends where it started: context, step, and momentum (which fork steps taken on a
    loaded state would change in place if the state's tensors were shared)."""
    after = opt.state_dict()["state"]
    assert torch.equal(after["ctx"], before["ctx"]) and after["step"] == before["step"]
    assert torch.equal(after["optimizer"]["state"][0]["momentum_buffer"], before["optimizer"]["state"][0]["momentum_buffer"])


def _assert_same(separate, batched, steps):
    assert separate.losses.keys() == batched.losses.keys() == {CURRENT, *TEMPLATES}
    for name in separate.losses:
        a, b = separate.states[name]["state"], batched.states[name]["state"]
        assert batched.losses[name] == pytest.approx(separate.losses[name], abs=1e-5), name
        torch.testing.assert_close(b["ctx"], a["ctx"], atol=1e-5, rtol=0)
        buf_a = a["optimizer"]["state"][0]["momentum_buffer"]
        buf_b = b["optimizer"]["state"][0]["momentum_buffer"]
        torch.testing.assert_close(buf_b, buf_a, atol=1e-5, rtol=0)
        assert b["optimizer"]["param_groups"][0]["lr"] == pytest.approx(a["optimizer"]["param_groups"][0]["lr"])
        for key in ("step", "schedule_step", "schedule_total", "pos"):
            assert b[key] == a[key], key
        assert torch.equal(b["perm"], a["perm"]) and torch.equal(b["generator"], a["generator"])
        new_a, new_b = a["trajectory"][-steps:], b["trajectory"][-steps:]
        assert [r["step"] for r in new_b] == [r["step"] for r in new_a]
        assert [r["lr"] for r in new_b] == pytest.approx([r["lr"] for r in new_a])
        assert [r["loss"] for r in new_b] == pytest.approx([r["loss"] for r in new_a], abs=1e-5)
        assert [r["accuracy"] for r in new_b] == [r["accuracy"] for r in new_a]
        assert [r["template"] for r in new_b] == [r["template"] for r in new_a]
    # the forks really differ (else equality would prove little)
    assert len({round(v, 6) for v in separate.losses.values()}) == len(separate.losses)


@pytest.mark.parametrize("reset_momentum, rewarm", [(False, False), (True, True)])
def test_batched_forks_equal_separate_forks_on_the_shared_prefix_path(tiny_native, tiny_splits, reset_momentum, rewarm):
    opt, scorer = _optimizer(tiny_native, tiny_splits)
    assert opt.learner.text_path == "shared-prefix"
    separate, batched = _both(opt, scorer, _loader(opt, reset_momentum=reset_momentum, rewarm=rewarm))
    _assert_same(separate, batched, 4)


@pytest.mark.parametrize("kind", ["plain", "class-specific"])
def test_batched_forks_equal_separate_forks_on_the_plain_path(tiny_native, tiny_splits, kind):
    opt, scorer = _optimizer(tiny_native, tiny_splits, shared_prefix=False, class_specific=kind == "class-specific")
    assert opt.learner.text_path == "plain"
    separate, batched = _both(opt, scorer, _loader(opt, reset_momentum=False, rewarm=False), steps=3)
    _assert_same(separate, batched, 3)


def test_batched_text_features_equal_one_context_at_a_time(tiny_native, tiny_splits):
    opt, _ = _optimizer(tiny_native, tiny_splits)
    learner = opt.learner
    contexts = torch.stack([learner.ctx.detach() + 0.01 * i for i in range(3)]).requires_grad_(True)
    batch = learner.text_features_batch(contexts)
    batch[:, :, 0].sum().backward()
    for i in range(3):
        one = contexts[i].detach().clone().requires_grad_(True)
        with torch.no_grad():
            learner.ctx.copy_(one)
        ctx_feats = learner.text_features()
        torch.testing.assert_close(batch[i].detach(), ctx_feats.detach(), atol=1e-5, rtol=0)
        learner.ctx.grad = None
        ctx_feats[:, 0].sum().backward()
        torch.testing.assert_close(contexts.grad[i], learner.ctx.grad, atol=1e-5, rtol=0)


def test_adopting_a_fork_replays_its_steps_to_the_hooks_once(tiny_native, tiny_splits):
    opt, scorer = _optimizer(tiny_native, tiny_splits)
    seen = []
    opt.register_step_hook(lambda _o, record: seen.append(record.step))
    forks = run_forks(opt, scorer, {CURRENT: None, **TEMPLATES}, steps=2,
                      load_template=_loader(opt, reset_momentum=False, rewarm=False))
    assert forks.batched and seen == []  # forks are not live steps
    adopted = adopt_fork(opt, forks.states["p1"])
    assert [r.step for r in adopted] == seen == [3, 4] and opt.step_count == 5
    assert scorer.current().loss == pytest.approx(forks.losses["p1"], abs=1e-6)


def test_forks_that_do_not_fit_the_memory_budget_run_one_by_one(tiny_native, tiny_splits):
    n_cls = len(tiny_splits[0].classnames)
    opt, scorer = _optimizer(tiny_native, tiny_splits, class_chunk=2 * n_cls)
    assert forks_fit_at_once(opt, 2) and not forks_fit_at_once(opt, 3)
    forks = run_forks(opt, scorer, {CURRENT: None, **TEMPLATES}, steps=1,
                      load_template=_loader(opt, reset_momentum=False, rewarm=False))
    assert not forks.batched


def test_a_diverging_fork_raises_and_leaves_the_live_state(tiny_native, tiny_splits):
    opt, scorer = _optimizer(tiny_native, tiny_splits)
    before = opt.state_dict()["state"]

    def poison(template):
        with torch.no_grad():
            opt.learner.ctx.fill_(float("nan"))

    with pytest.raises(NonFiniteLossError):
        run_forks(opt, scorer, {CURRENT: None, **TEMPLATES}, steps=2, load_template=poison, batched=True)
    assert torch.equal(opt.learner.ctx.detach().cpu(), before["ctx"]) and opt.step_count == before["step"]


def test_bad_arguments_are_named(tiny_native, tiny_splits):
    opt, scorer = _optimizer(tiny_native, tiny_splits)
    with pytest.raises(ValueError, match="steps=0"):
        run_forks(opt, scorer, {CURRENT: None}, steps=0, load_template=print)
    with pytest.raises(ValueError, match="branches is empty"):
        run_forks(opt, scorer, {}, steps=1, load_template=print)
