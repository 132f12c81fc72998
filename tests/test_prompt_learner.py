"""PromptLearner: layouts, projection to text, re-embedding text, and bad arguments."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from catalyst_nb.prompt_learner import PromptLearner, TokenizationWarning

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


def test_single_class_is_refused(tiny_clip):
    with pytest.raises(ValueError, match="at least two classes"):
        PromptLearner(tiny_clip, ["dog"])


def test_classes_the_wordpiece_vocabulary_cannot_read_are_refused(tiny_hf):
    """On a WordPiece vocabulary these names all become [UNK]: identical prompts, indistinguishable classes."""
    names = ["猫", "狗", "🐱", "🐶"]
    with pytest.warns(TokenizationWarning, match="cannot read"):
        with pytest.raises(ValueError, match="identical prompts") as info:
            PromptLearner(tiny_hf, names, n_ctx=4)
    assert "'猫' and '狗'" in str(info.value) and "[UNK]" in str(info.value)


def test_unknown_word_in_a_class_name_warns_but_distinct_prompts_pass(tiny_hf):
    with pytest.warns(TokenizationWarning, match=r"\{'猫 shoe': \['猫'\]\}"):
        learner = PromptLearner(tiny_hf, ["猫 shoe", "dog"], n_ctx=4)
    assert len(learner.classnames) == 2


def test_byte_level_bpe_reads_any_class_name(tiny_native):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", TokenizationWarning)
        learner = PromptLearner(tiny_native, ["猫", "狗", "🐱"], n_ctx=4)
    assert len(set(map(tuple, learner.token_ids.tolist()))) == 3


def test_duplicate_class_names_are_refused(tiny_clip):
    with pytest.raises(ValueError, match="identical prompts"):
        PromptLearner(tiny_clip, ["dog", "cat", "dog"], n_ctx=2)


def test_unknown_words_in_ctx_init_and_load_text_warn(tiny_hf):
    with pytest.warns(TokenizationWarning, match=r"template 'a 写真 of a' .*\['写真'\]"):
        learner = PromptLearner(tiny_hf, CLASSES, ctx_init="a 写真 of a")
    with pytest.warns(TokenizationWarning, match=r"\['🙂'\]"):
        report = learner.load_text("a 🙂 photo of a {}.")
    assert report.unknown == ("🙂",)
    assert learner.fit_text("a photo of a {}.")[1].unknown == ()


def test_over_long_ctx_init_warns(tiny_clip):
    with pytest.warns(TokenizationWarning, match=r"more tokens than n_ctx=2; dropped"):
        learner = PromptLearner(tiny_clip, CLASSES, n_ctx=2, ctx_init="a blurry photo of a")
    assert learner.to_text().template == "of a {}."


def test_to_text_skips_special_tokens_and_says_so(tiny_clip):
    """A context sitting exactly on a special token's embedding still projects to a word."""
    learner = PromptLearner(tiny_clip, CLASSES, n_ctx=2)
    tok = tiny_clip.tokenizer
    special = tok.start_id
    with torch.no_grad():
        learner.ctx.copy_(tiny_clip.token_embedding.weight[[special, tok.end_id]])
    ids = learner.to_text().token_ids[0]
    assert not set(ids) & set(tok.excluded_ids)
    doc = " ".join(PromptLearner.to_text.__doc__.split())
    assert "skips the tokenizer's special and unused entries" in doc and "CoOp searches the whole table" in doc
