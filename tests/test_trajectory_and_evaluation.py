"""Trajectory persistence and the evaluation helpers."""
from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F

from catalyst_nb.evaluation import evaluate_classifier, harmonic_mean, summarize_seeds
from catalyst_nb.features import FeatureSet
from catalyst_nb.trajectory import StepRecord, Trajectory


def _record(step, **kw):
    base = dict(step=step, loss=1.0 / (step + 1), accuracy=0.5, grad_norm=0.1, lr=0.002)
    base.update(kw)
    return StepRecord(**base)


def test_save_and_load_round_trip(tmp_path):
    traj = Trajectory([
        _record(0, context_text="a photo of", template="a photo of {}.", token_ids=(1, 2, 3), distance=0.5),
        _record(1, loss=float("nan")),
        _record(2, stage=1, template="a photo of {}."),
    ])
    path = traj.save(tmp_path / "run" / "traj.jsonl")
    back = Trajectory.load(path)
    assert len(back) == 3
    assert back[0] == traj[0]
    assert math.isnan(back[1].loss)
    assert sorted(p.name for p in path.parent.iterdir()) == ["traj.jsonl"]  # no temporary or side files
    assert back.distinct_templates() == ["a photo of {}."]
    assert back.column("stage") == [0, 0, 1]


def test_trajectory_has_no_snapshot_store():
    """Snapshots were announced but never filled; the attribute and the constructor argument are gone."""
    assert not hasattr(Trajectory(), "snapshots")
    with pytest.raises(TypeError):
        Trajectory([], snapshots={0: torch.ones(1)})


def test_trajectory_is_append_only_in_step_order():
    traj = Trajectory([_record(3)])
    with pytest.raises(ValueError, match="does not follow"):
        traj.append(_record(2))
    with pytest.raises(TypeError):
        traj.append({"step": 4})


def test_corrupt_jsonl_names_the_line(tmp_path):
    path = tmp_path / "t.jsonl"
    whole = StepRecord(step=0, loss=1.0, accuracy=0.0, grad_norm=0.0, lr=0.0).to_dict()
    path.write_text(json.dumps(whole) + '\n{oops\n')
    with pytest.raises(ValueError, match=":2 is not valid JSON"):
        Trajectory.load(path)
    # a record of an earlier layout (fields missing) is refused by line, not filled with defaults
    path.write_text(json.dumps(whole) + "\n" + '{"step": 1, "loss": 1, "accuracy": 0, "grad_norm": 0, "lr": 0}\n')
    with pytest.raises(ValueError, match=r":2: not a StepRecord: .*missing fields \['context_text'"):
        Trajectory.load(path)


def _features(n_per_class=5, dim=8):
    gen = torch.Generator().manual_seed(0)
    centers = F.normalize(torch.randn(3, dim, generator=gen), dim=-1)
    labels = torch.arange(3).repeat_interleave(n_per_class)
    feats = F.normalize(centers[labels] + 0.05 * torch.randn(len(labels), dim, generator=gen), dim=-1)
    return centers, FeatureSet(feats, labels, None, ("a", "b", "c"), key="k")


def test_evaluate_classifier_perfect_and_permuted():
    centers, fs = _features()
    good = evaluate_classifier(centers, fs, logit_scale=100.0)
    assert good.accuracy == 1.0 and good.per_class == (1.0, 1.0, 1.0) and good.n == 15
    bad = evaluate_classifier(centers[[1, 2, 0]], fs, logit_scale=100.0)
    assert bad.accuracy == 0.0 and bad.loss > good.loss
    with pytest.raises(ValueError, match="class weights"):
        evaluate_classifier(centers[:2], fs, logit_scale=1.0)


def test_harmonic_mean_and_seed_summary():
    assert harmonic_mean(0.8, 0.6) == pytest.approx(2 * 0.8 * 0.6 / 1.4)
    assert harmonic_mean(0.0, 0.0) == 0.0
    with pytest.raises(ValueError):
        harmonic_mean(-0.1, 0.5)
    s = summarize_seeds([0.7, 0.8, 0.9])
    assert s.mean == pytest.approx(0.8) and s.std == pytest.approx(0.1)
    assert summarize_seeds([0.5]).std == 0.0


def test_evaluate_templates_refuses_prompts_longer_than_the_context(tiny_clip):
    from catalyst_nb.evaluation import evaluate_templates

    labels = torch.tensor([0, 1])
    feats = FeatureSet(F.normalize(torch.randn(2, 64, generator=torch.Generator().manual_seed(0)), dim=-1), labels,
                       None, ("dog", "cat"), "k", "two")
    assert 0 <= evaluate_templates(tiny_clip, "a photo of a {}.", feats).accuracy <= 1
    long_template = " ".join(["word"] * 500) + " {}."
    with pytest.raises(ValueError, match=r"with class 'dog' needs \d+ tokens, more than .* context length"):
        evaluate_templates(tiny_clip, long_template, feats)
    long_names = FeatureSet(feats.features, labels, None, ("dog " * 80, "cat"), "k", "two")
    with pytest.raises(ValueError, match="context length"):
        evaluate_templates(tiny_clip, "a photo of a {}.", long_names)
