"""The shared-prefix text pass: equal to the plain pass (features and context gradients), fallbacks named."""
from __future__ import annotations

import logging

import pytest
import torch
import torch.nn.functional as F

from catalyst_nb.backbone import encode_text_from_embeddings
from catalyst_nb.prompt_learner import PromptLearner
from catalyst_nb.shared_prefix import encode_prefix, encode_suffix, shared_prefix_blocker

# Names of different token lengths, two sharing their first word: suffixes of several lengths.
CLASSES = ["dog", "ankle boot", "ankle sock", "t-shirt", "a very long class name here", "cat"]


def _plain_features(learner: PromptLearner) -> torch.Tensor:
    return F.normalize(encode_text_from_embeddings(learner.clip, learner(), learner.token_ids).float(), dim=-1)


def _loss(features: torch.Tensor) -> torch.Tensor:
    gen = torch.Generator().manual_seed(1)
    images = F.normalize(torch.randn(12, features.shape[1], generator=gen), dim=-1)
    labels = torch.randint(len(CLASSES), (12,), generator=gen)
    return F.cross_entropy(50.0 * images @ features.T, labels)


@pytest.mark.parametrize("n_ctx", [1, 4, 16])
def test_features_equal_the_plain_pass(tiny_native, n_ctx):
    learner = PromptLearner(tiny_native, CLASSES, n_ctx=n_ctx, seed=n_ctx, init_std=0.5)
    assert learner.text_path == "shared-prefix" and learner.text_path_reason is None
    ours, plain = learner.text_features(), _plain_features(learner)
    assert ours.shape == plain.shape == (len(CLASSES), tiny_native.embed_dim)
    assert (ours - plain).abs().max().item() < 1e-5
    assert (plain[1] - plain[2]).abs().max().item() > 1e-3  # the classes are told apart


def test_context_gradient_equals_the_plain_pass(tiny_native):
    learner = PromptLearner(tiny_native, CLASSES, n_ctx=4, seed=2, init_std=0.5)
    (ours,) = torch.autograd.grad(_loss(learner.text_features()), learner.ctx)
    (plain,) = torch.autograd.grad(_loss(_plain_features(learner)), learner.ctx)
    assert plain.abs().max().item() > 1e-3
    assert (ours - plain).abs().max().item() < 1e-5


def test_a_subset_of_classes_and_a_reused_prefix(tiny_native):
    learner = PromptLearner(tiny_native, CLASSES, n_ctx=4, seed=3)
    full = learner.text_features()
    prefix = learner.encode_prefix()
    idx = torch.tensor([4, 0, 2])
    assert (learner.text_features(idx, prefix=prefix) - full[idx]).abs().max().item() < 1e-6
    assert (learner.text_features(slice(1, 3)) - full[1:3]).abs().max().item() < 1e-6


def test_hard_prompt_through_prefix_and_suffix_matches_encode_text(tiny_native):
    ids = tiny_native.tokenizer(["a photo of a dog.", "a photo of a big ankle boot."])
    n = int(ids.argmax(-1).max()) + 1
    emb = tiny_native.token_embedding(ids[:, :n])
    p = 5  # start marker + "a photo of a"
    cache = encode_prefix(tiny_native, emb[0, :p])
    ours = encode_suffix(tiny_native, cache, emb[:, p:], ids[:, :n].argmax(-1) - p)
    reference = tiny_native.model.encode_text(ids)
    assert (ours - reference).abs().max().item() < 1e-5


@pytest.mark.parametrize(
    "kwargs, reason",
    [
        ({"class_specific": True}, "class-specific"),
        ({"class_token_position": "front"}, "front"),
        ({"class_token_position": "middle"}, "middle"),
        ({"shared_prefix": False}, "switched off"),
    ],
)
def test_falls_back_and_says_why(tiny_native, caplog, kwargs, reason):
    with caplog.at_level(logging.INFO, logger="catalyst_nb.prompt_learner"):
        learner = PromptLearner(tiny_native, CLASSES, n_ctx=4, **kwargs)
    assert learner.text_path == "plain" and reason in learner.text_path_reason
    assert any(reason in r.getMessage() for r in caplog.records)
    assert (learner.text_features() - _plain_features(learner)).abs().max().item() < 1e-6
    with pytest.raises(ValueError, match="no shared prefix"):
        learner.encode_prefix()


def test_bidirectional_towers_fall_back(tiny_hf):
    assert "bidirectional" in shared_prefix_blocker(tiny_hf)
    learner = PromptLearner(tiny_hf, CLASSES, n_ctx=4)
    assert learner.text_path == "plain" and "bidirectional" in learner.text_path_reason
    with pytest.raises(ValueError, match="does not apply"):
        encode_prefix(tiny_hf, torch.zeros(3, tiny_hf.token_embedding.weight.shape[1]))


def test_bad_suffix_positions_are_rejected(tiny_native):
    learner = PromptLearner(tiny_native, CLASSES, n_ctx=4)
    cache = learner.encode_prefix()
    width = learner.base_embeddings.shape[-1]
    with pytest.raises(ValueError, match="pool_index"):
        encode_suffix(tiny_native, cache, torch.zeros(2, 3, width), torch.tensor([0, 3]))
