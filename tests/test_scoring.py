"""TemplateScorer: templates scored as loaded into the context, batched, beside their raw scores."""
from __future__ import annotations

import pytest
import torch

from catalyst_nb.data import few_shot, load_embedded_fashion_mnist
from catalyst_nb.evaluation import evaluate_templates
from catalyst_nb.features import extract_features
from catalyst_nb.prompt_learner import PromptLearner
from catalyst_nb.scoring import TemplateScorer


@pytest.fixture(scope="module")
def split(tiny_native):
    ds = few_shot(load_embedded_fashion_mnist("val"), shots=4, seed=2)
    return extract_features(tiny_native, ds, cache_dir=False, progress=False)


TEMPLATES = ["a photo of a {}.", "a close-up studio photograph of a {} on white.", "{}", "a {} and a {}"]


def test_as_loaded_scores_equal_loading_each_template_one_by_one(tiny_clip, split):
    ds = few_shot(load_embedded_fashion_mnist("val"), shots=2, seed=2)
    feats = extract_features(tiny_clip, ds, cache_dir=False, progress=False)
    learner = PromptLearner(tiny_clip, feats.classnames, n_ctx=4, seed=0)
    scorer = TemplateScorer(learner, feats, chunk=2)
    scores = scorer.score(TEMPLATES)
    assert [s.ok for s in scores] == [True, True, True, False] and "more than one" in scores[3].error
    for s in scores[:3]:
        learner.load_text(s.template)
        one = scorer.current()
        assert s.loss == pytest.approx(one.loss, abs=1e-5) and s.accuracy == pytest.approx(one.accuracy)
        raw = evaluate_templates(tiny_clip, s.template, feats)
        assert s.raw_loss == pytest.approx(raw.loss, abs=1e-5)


def test_a_template_that_is_cut_scores_differently_from_its_raw_prompt(tiny_native, split):
    learner = PromptLearner(tiny_native, split.classnames, n_ctx=2, seed=0)
    long, short = TemplateScorer(learner, split).score(["a close-up studio photograph of a {} on white.", "of a {}."])
    assert long.loaded == short.loaded == "of a {}."  # words cut and text after {} ignored
    assert long.loss == pytest.approx(short.loss, abs=1e-6)
    assert long.raw_loss != pytest.approx(long.loss, abs=1e-4)
    assert long.report.dropped and long.report.ignored_text == "on white"


def test_scoring_leaves_the_context_alone(tiny_native, split):
    learner = PromptLearner(tiny_native, split.classnames, n_ctx=4, seed=0)
    ctx = learner.ctx.detach().clone()
    TemplateScorer(learner, split).score(TEMPLATES)
    assert torch.equal(learner.ctx.detach(), ctx)


def test_a_template_scores_the_same_whatever_came_with_it_and_is_scored_once(tiny_native, split):
    """Scores are per template (a batched pass would round with the batch's size), remembered, and a new
    scorer (a resumed run) gets the same bits."""
    learner = PromptLearner(tiny_native, split.classnames, n_ctx=4, seed=0)
    templates = ["a photo of a {}.", "a blurry photo of the {}", "itap of a {}", "art of the {}"]
    together = TemplateScorer(learner, split).score(templates)
    for template, score in zip(templates, together):
        alone = TemplateScorer(learner, split).score([template])[0]
        assert (alone.loss, alone.raw_loss, alone.accuracy) == (score.loss, score.raw_loss, score.accuracy)
    scorer = TemplateScorer(learner, split)
    first = scorer.score(templates[:2])
    calls = []
    original = learner.text_features_for
    learner.text_features_for = lambda *a, **k: calls.append(a) or original(*a, **k)  # type: ignore[method-assign]
    try:
        again = scorer.score(templates[:2] + templates[2:3])
    finally:
        del learner.text_features_for
    assert again[:2] == first and len(calls) == 1  # only the new template was encoded
