"""Loading state is all or nothing, and refuses state made for other weights, classes or features;
the training loop refuses what would silently go wrong (inf lr, a diverged context, a single class)."""
from __future__ import annotations

import copy
import json
import math

import pytest
import torch

from catalyst_nb.features import FeatureSet
from catalyst_nb.llm import FASHION_MNIST_TASK, ScriptedClient
from catalyst_nb.llm.optimizer import LLMPromptOptimizer
from catalyst_nb.optim import GradientConfig, GradientPromptOptimizer, NonFiniteLossError
from catalyst_nb.optim.gradient import NonFiniteContextError, coop_epoch_learning_rate
from catalyst_nb.optimizer_state import StateError
from catalyst_nb.prompt_learner import PromptLearner
from catalyst_nb.state_io import load_state, save_state


@pytest.fixture(scope="module")
def feats(tiny_train_2shot):
    return tiny_train_2shot


def _opt(clip, feats, **kw):
    learner = PromptLearner(clip, feats.classnames, n_ctx=4, seed=0)
    kw.setdefault("total_steps", 20)
    kw.setdefault("batch_size", 8)
    return GradientPromptOptimizer(learner, feats, **kw)


def _snapshot(opt):
    return (opt.learner.ctx.detach().clone(), copy.deepcopy(opt.optimizer.state_dict()), opt._gen.get_state(),
            opt._perm.clone(), opt._pos, opt.step_count, len(opt.trajectory))


def _same(a, b):
    ctx_a, sgd_a, gen_a, perm_a, *rest_a = a
    ctx_b, sgd_b, gen_b, perm_b, *rest_b = b
    mom = lambda s: [v["momentum_buffer"] for v in s["state"].values()]  # noqa: E731
    return (torch.equal(ctx_a, ctx_b) and all(torch.equal(x, y) for x, y in zip(mom(sgd_a), mom(sgd_b)))
            and torch.equal(gen_a, gen_b) and torch.equal(perm_a, perm_b) and rest_a == rest_b)


# ------------------------------------------------------------------------------------------ gradient state


def test_bad_generator_state_changes_nothing(tiny_native, feats):
    source = _opt(tiny_native, feats)
    source.run(5, progress=False)
    state = source.state_dict()
    target = _opt(tiny_native, feats)
    target.run(2, progress=False)
    before = _snapshot(target)
    bad = dict(state, state=dict(state["state"], generator=torch.zeros(3, dtype=torch.uint8)))
    with pytest.raises(ValueError, match="generator state is damaged"):
        target.load_state_dict(bad)
    assert _same(_snapshot(target), before)  # context and momentum were not replaced


@pytest.mark.parametrize("damage, message", [
    (lambda s: s["state"].pop("perm"), r"missing \['perm'\]"),
    (lambda s: s["state"].update(extra=1), r"unknown entries \['extra'\]"),
    (lambda s: s["state"].update(perm=torch.arange(3)), "epoch order"),
    (lambda s: s["state"].update(pos=10_000), "out of range"),
    (lambda s: s["state"].update(ctx=torch.full_like(s["state"]["ctx"], float("nan"))), "NaN"),
    (lambda s: s["state"]["trajectory"].append({"step": 99, "bogus": 1}), "damaged"),
    (lambda s: s["state"]["trajectory"][0].pop("distance"), "missing fields"),
    (lambda s: s["state"]["optimizer"]["state"][0].update(momentum_buffer=torch.zeros(2)), "momentum"),
    (lambda s: s.update(config="lr=1"), "damaged config"),
])
def test_damaged_state_is_refused_before_anything_changes(tiny_native, feats, damage, message):
    source = _opt(tiny_native, feats)
    source.run(3, progress=False)
    state = copy.deepcopy(source.state_dict())
    damage(state)
    target = _opt(tiny_native, feats)
    target.run(1, progress=False)
    before = _snapshot(target)
    with pytest.raises(ValueError, match=message):
        target.load_state_dict(state)
    assert _same(_snapshot(target), before)


def test_states_of_earlier_versions_are_a_clear_error(tiny_native, feats):
    """The flat states written before the common layout are refused, never read with guessed defaults."""
    old = {"version": 1, "config": {}, "step": 0, "ctx": torch.zeros(4, 8), "trajectory": [], "train_key": "k"}
    with pytest.raises(StateError, match=r"not a GradientPromptOptimizer state of version 2.*version 1"):
        _opt(tiny_native, feats).load_state_dict(old)
    with pytest.raises(StateError, match="not a LLMPromptOptimizer state of version 3"):
        LLMPromptOptimizer(ScriptedClient([]), task=FASHION_MNIST_TASK).load_state_dict(
            {"version": 2, "config": {}, "proposals": [], "rounds": [], "human_count": 0})
    state = _opt(tiny_native, feats).state_dict()
    with pytest.raises(StateError, match="version 1; this GradientPromptOptimizer reads version 2"):
        _opt(tiny_native, feats).load_state_dict(dict(state, version=1))


def test_state_from_other_classes_or_weights_is_an_error(tiny_native, tiny_hf, feats):
    state = _opt(tiny_native, feats).state_dict()
    # same model, other classes (the features of a relabelled dataset)
    renamed = FeatureSet(feats.features, feats.labels, feats.views, tuple(f"x{c}" for c in feats.classnames),
                         "other-key", feats.name)
    other_classes = GradientPromptOptimizer(PromptLearner(tiny_native, renamed.classnames, n_ctx=4), renamed,
                                            total_steps=20, batch_size=8)
    with pytest.raises(ValueError, match="other classes"):
        other_classes.load_state_dict(state)
    # same classes and shapes, features from another image tower
    other_feats = FeatureSet(feats.features, feats.labels, feats.views, feats.classnames, "key-of-other-weights",
                             feats.name)
    with pytest.raises(ValueError, match="other training features"):
        GradientPromptOptimizer(PromptLearner(tiny_native, feats.classnames, n_ctx=4), other_feats,
                                total_steps=20, batch_size=8).load_state_dict(state)
    # another model altogether
    hf_feats = FeatureSet(feats.features, feats.labels, feats.views, feats.classnames, feats.key, feats.name)
    hf = GradientPromptOptimizer(PromptLearner(tiny_hf, feats.classnames, n_ctx=4), hf_feats,
                                 total_steps=20, batch_size=8)
    with pytest.raises(ValueError, match="other model: saved 'tiny-native'"):
        hf.load_state_dict(state)


def test_real_states_round_trip_through_checksummed_files(tiny_native, feats, tmp_path):
    opt = _opt(tiny_native, feats)
    opt.run(3, progress=False)
    save_state(tmp_path / "state.pt", opt.state_dict())
    resumed = _opt(tiny_native, feats)
    resumed.load_state_dict(load_state(tmp_path / "state.pt"))  # weights_only=True suffices
    opt.run(2, progress=False)
    resumed.run(2, progress=False)
    assert torch.equal(opt.learner.ctx, resumed.learner.ctx)

    llm = LLMPromptOptimizer(ScriptedClient(["a photo of the {}.\na sketch of a {}"]), task=FASHION_MNIST_TASK)
    llm.ask([])
    save_state(tmp_path / "llm.pt", llm.state_dict())
    assert load_state(tmp_path / "llm.pt") == json.loads(json.dumps(llm.state_dict()))


def test_llm_state_with_a_bad_round_changes_nothing():
    opt = LLMPromptOptimizer(ScriptedClient(["a photo of the {}.\na sketch of a {}", "a {} at night"]),
                             task=FASHION_MNIST_TASK)
    opt.ask([])
    state = copy.deepcopy(opt.state_dict())
    opt.ask([])
    before = opt.state_dict()
    state["state"]["rounds"][-1].pop("replies")
    with pytest.raises(ValueError, match="damaged"):
        opt.load_state_dict(state)
    assert opt.state_dict() == before
    with pytest.raises(ValueError, match="damaged"):
        opt.load_state_dict(dict(state, config="not a mapping"))
    assert opt.state_dict() == before


# ------------------------------------------------------------------------------------------ training checks


@pytest.mark.parametrize("field, value", [("lr", math.inf), ("lr", math.nan), ("warmup_lr", math.inf),
                                          ("weight_decay", math.nan), ("momentum", math.nan)])
def test_non_finite_hyperparameters_are_refused(field, value):
    with pytest.raises(ValueError, match=f"{field}="):
        GradientConfig(**{field: value})


def test_short_run_gets_a_fitting_warmup_default(tiny_native, feats):
    for total in (1, 3, 5):
        assert GradientConfig(total_steps=total).warmup_steps == total - 1
    assert GradientConfig().warmup_steps == 5
    with pytest.raises(ValueError, match="warmup_steps"):
        GradientConfig(total_steps=3, warmup_steps=5)  # a value the user did set is still checked
    opt = _opt(tiny_native, feats, total_steps=3)
    assert len(opt.run(3, progress=False)) == 3


def test_context_is_checked_after_each_update(tiny_native, feats):
    """A finite loss with an enormous step: the update makes the context infinite; caught in the same step."""
    opt = _opt(tiny_native, feats, lr=1e38, warmup_steps=0, momentum=0.0, weight_decay=0.0)
    before = _snapshot(opt)
    with pytest.raises(NonFiniteContextError, match="at step 0") as info:
        opt.step()
    assert isinstance(info.value, NonFiniteLossError)
    assert _same(_snapshot(opt), before)
    assert bool(torch.isfinite(opt.learner.ctx).all())


def test_single_class_training_set_is_refused(tiny_native, feats):
    one = feats.labels == 0
    single = FeatureSet(feats.features[one], feats.labels[one], None, feats.classnames, "k1", "one class")
    with pytest.raises(ValueError, match="at least two"):
        GradientPromptOptimizer(PromptLearner(tiny_native, feats.classnames, n_ctx=4), single, total_steps=5)


def test_coop_epoch_schedule_matches_coop(tiny_native, feats):
    """CoOp: epoch 0 at the warm-up rate, epoch 1 at the full rate, then cosine over epochs; partial batch dropped."""
    rates = [coop_epoch_learning_rate(e, lr=0.002, epochs=4, warmup_epochs=1, warmup_lr=1e-5) for e in range(4)]
    assert rates == pytest.approx([1e-5, 0.002, 0.5 * 0.002 * (1 + math.cos(math.pi / 4)), 0.001])
    assert len(feats) == 20
    opt = _opt(tiny_native, feats, total_steps=8, warmup_steps=2, batch_size=8, schedule="epoch", drop_last=True)
    assert opt.steps_per_epoch == 2
    records = opt.run(8, progress=False)
    assert [r.lr for r in records] == pytest.approx([1e-5, 1e-5, 0.002, 0.002, rates[2], rates[2], 0.001, 0.001])
    seen = torch.cat([opt._perm[:16]])
    assert len(set(seen.tolist())) == 16  # two full batches per epoch, the four left over are skipped


def test_catalyst_state_with_a_bad_gradient_part_changes_neither_side(tiny_native, catalyst_splits):
    from test_catalyst import REPLY, make

    source, _ = make(tiny_native, catalyst_splits, [REPLY, REPLY])
    for _ in range(10):
        source.step()
    bad = copy.deepcopy(source.state_dict())
    bad["state"]["gradient"]["state"]["generator"] = torch.zeros(5, dtype=torch.uint8)
    target, _ = make(tiny_native, catalyst_splits, [REPLY, REPLY])
    for _ in range(3):
        target.step()
    before = copy.deepcopy(target.state_dict())
    with pytest.raises(ValueError, match="generator state is damaged"):
        target.load_state_dict(bad)
    after, before = target.state_dict()["state"], before["state"]
    assert after["llm"] == before["llm"] and after["round"] == before["round"]
    assert torch.equal(after["gradient"]["state"]["ctx"], before["gradient"]["state"]["ctx"])
    assert after["gradient"]["state"]["step"] == before["gradient"]["state"]["step"]


def test_catalyst_state_round_trips_through_a_checksummed_file(tiny_native, catalyst_splits, tmp_path):
    from test_catalyst import REPLY, make

    opt, _ = make(tiny_native, catalyst_splits, [REPLY, REPLY])
    for _ in range(10):
        opt.step()
    save_state(tmp_path / "catalyst.pt", opt.state_dict())
    resumed, _ = make(tiny_native, catalyst_splits, [REPLY, REPLY])
    resumed.load_state_dict(load_state(tmp_path / "catalyst.pt"))
    assert resumed.state_dict()["state"]["llm"] == opt.state_dict()["state"]["llm"]
    assert torch.equal(resumed.learner.ctx, opt.learner.ctx)


@pytest.fixture(scope="module")
def catalyst_splits(tiny_splits):
    return tiny_splits
