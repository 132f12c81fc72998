"""PromptLearner: layouts, projection to text, re-embedding text, and bad arguments."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from catalyst_nb.prompt_learner import PromptLearner

CLASSES = ["dog", "ankle boot", "t-shirt"]


def _hard_features(clip, template, classnames):
    texts = [template.replace("{}", c) for c in classnames]
    return F.normalize(clip.model.encode_text(clip.tokenizer(texts)), dim=-1)


@pytest.mark.parametrize(
    "position, template",
    [("end", "a photo of a {}."), ("middle", "a photo {} of a."), ("front", "{} a photo of a.")],
)
def test_loaded_text_reproduces_the_hard_prompt(tiny_clip, position, template):
    learner = PromptLearner(tiny_clip, CLASSES, n_ctx=4, class_token_position=position)
    report = learner.load_text(template)
    assert report.n_padded == 0 and report.dropped == ()
    soft = learner.text_features()
    assert (soft - _hard_features(tiny_clip, template, CLASSES)).abs().max().item() < 1e-5
    assert learner.to_text().template == template


def test_ctx_init_sets_n_ctx_from_its_tokens(tiny_clip):
    learner = PromptLearner(tiny_clip, CLASSES, ctx_init="a photo of a")
    assert learner.n_ctx == 4
    assert learner.to_text().text == "a photo of a"


def test_random_init_is_seeded(tiny_clip):
    a = PromptLearner(tiny_clip, CLASSES, n_ctx=8, seed=3)
    b = PromptLearner(tiny_clip, CLASSES, n_ctx=8, seed=3)
    c = PromptLearner(tiny_clip, CLASSES, n_ctx=8, seed=4)
    assert torch.equal(a.ctx, b.ctx) and not torch.equal(a.ctx, c.ctx)
    assert a.ctx.shape == (8, a.base_embeddings.shape[-1])


def test_short_template_is_padded_away_from_the_class(tiny_clip):
    learner = PromptLearner(tiny_clip, CLASSES, n_ctx=6)
    report = learner.load_text("a photo of a {}, a type of clothing.")
    assert report.n_padded == 2
    assert report.ignored_text == ", a type of clothing"
    text = learner.to_text().text
    assert text.endswith("a photo of a") and text.split()[0] == "x"


def test_long_template_is_cut_far_from_the_class(tiny_clip):
    learner = PromptLearner(tiny_clip, CLASSES, n_ctx=2)
    report = learner.load_text("a big photo of a {}")
    assert learner.to_text().text == "of a"
    assert [t.replace("</w>", "") for t in report.dropped] == ["a", "big", "photo"]


def test_class_specific_context(tiny_clip):
    learner = PromptLearner(tiny_clip, CLASSES, n_ctx=3, class_specific=True)
    assert learner.ctx.shape[:2] == (3, 3)
    texts = learner.to_text().texts
    assert len(texts) == 3
    learner.load_text("a photo of {}")
    assert set(learner.to_text().texts) == {"a photo of"}
    emb = learner()
    # the context slots of class 0 and class 1 hold the same words but the class tokens differ
    assert not torch.equal(emb[0], emb[1])


def test_gradients_reach_the_context(tiny_clip):
    learner = PromptLearner(tiny_clip, CLASSES, n_ctx=4)
    learner.text_features().sum().backward()
    assert learner.ctx.grad is not None and learner.ctx.grad.abs().sum() > 0
    assert not any(p.requires_grad for p in tiny_clip.model.parameters())


def test_encodes_only_up_to_the_longest_prompt(tiny_clip):
    learner = PromptLearner(tiny_clip, CLASSES, n_ctx=4)
    longest = max(len(tiny_clip.tokenizer.encode(c)) for c in CLASSES) + 4 + 1 + 2
    assert learner.token_ids.shape == (3, longest)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n_ctx": 0}, "n_ctx"),
        ({"class_token_position": "side"}, "class_token_position"),
        ({"n_ctx": 200}, "context length"),
    ],
)
def test_bad_arguments(tiny_clip, kwargs, match):
    with pytest.raises(ValueError, match=match):
        PromptLearner(tiny_clip, CLASSES, **kwargs)


def test_bad_classnames_and_templates(tiny_clip):
    with pytest.raises(ValueError, match="classnames"):
        PromptLearner(tiny_clip, [])
    learner = PromptLearner(tiny_clip, CLASSES, n_ctx=4)
    with pytest.raises(ValueError, match="context length"):
        learner.load_text("word " * 300 + "{}")
    with pytest.raises(ValueError, match="more than one"):
        learner.load_text("{} and {}")
    with pytest.raises(ValueError, match="non-empty"):
        learner.load_text("   ")


def test_strip_fillers_loads_the_same_context(tiny_clip):
    from catalyst_nb.data import FASHION_MNIST_CLASSNAMES

    for position in ("end", "front"):
        learner = PromptLearner(tiny_clip, FASHION_MNIST_CLASSNAMES[:3], n_ctx=6, class_token_position=position,
                                ctx_init="a photo of a")
        template = learner.to_text().template
        stripped = learner.strip_fillers(template)
        assert len(stripped.split()) < len(template.split())  # the fillers are gone
        assert learner.fit_text(stripped)[0] == learner.fit_text(template)[0]
