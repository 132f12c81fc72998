"""Chunked cross-entropy: the exact gradient of the unchunked step, in memory bounded by the chunk."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from catalyst_nb.features import FeatureSet
from catalyst_nb.optim import GradientConfig, GradientPromptOptimizer
from catalyst_nb.optim.chunked_loss import auto_class_chunk, text_activation_bytes, text_cross_entropy
from catalyst_nb.prompt_learner import PromptLearner

CLASSES = ["dog", "ankle boot", "ankle sock", "t-shirt", "bag", "a long class name", "cat"]


def _batch(dim: int, n: int = 10):
    gen = torch.Generator().manual_seed(5)
    feats = F.normalize(torch.randn(n, dim, generator=gen), dim=-1)
    return feats, torch.randint(len(CLASSES), (n,), generator=gen)


def _grad(learner: PromptLearner, feats, labels, chunk: int):
    learner.ctx.grad = None
    computed = text_cross_entropy(learner, feats, labels, logit_scale=40.0, class_chunk=chunk)
    computed.backward()
    return computed, learner.ctx.grad.detach().clone()


@pytest.mark.parametrize(
    "model, kwargs",
    [
        ("tiny_native", {}),  # shared-prefix path
        ("tiny_native", {"class_specific": True}),  # plain path, per-class context
        ("tiny_native", {"class_token_position": "middle"}),
        ("tiny_hf", {}),  # bidirectional tower, plain path
    ],
)
@pytest.mark.parametrize("chunk", [1, 3])
def test_chunked_gradient_equals_unchunked(request, model, kwargs, chunk):
    clip = request.getfixturevalue(model)
    learner = PromptLearner(clip, CLASSES, n_ctx=4, seed=7, init_std=0.3, **kwargs)
    feats, labels = _batch(clip.embed_dim)
    whole, g_whole = _grad(learner, feats, labels, chunk=len(CLASSES))
    parts, g_parts = _grad(learner, feats, labels, chunk=chunk)
    assert whole.n_chunks == 1 and parts.n_chunks == -(-len(CLASSES) // chunk)
    assert abs(float(whole.loss) - float(parts.loss)) < 1e-5
    assert (whole.logits - parts.logits).abs().max().item() < 1e-4
    assert g_whole.abs().max().item() > 1e-4
    assert (g_whole - g_parts).abs().max().item() < 1e-5


def test_auto_chunk_follows_the_budget(tiny_native):
    learner = PromptLearner(tiny_native, CLASSES, n_ctx=4)
    per_class = text_activation_bytes(learner)
    assert per_class > 0
    assert auto_class_chunk(learner, memory_mb=per_class * 3.5 / 2**20) == 3
    assert auto_class_chunk(learner, memory_mb=1e-9) == 1
    assert auto_class_chunk(learner, memory_mb=1024) >= len(CLASSES)
    plain = PromptLearner(tiny_native, CLASSES, n_ctx=4, shared_prefix=False)
    assert text_activation_bytes(plain) > per_class  # the shared prefix is not kept per class
    with pytest.raises(ValueError, match="memory_mb"):
        auto_class_chunk(learner, memory_mb=0)


def test_optimizer_steps_are_the_same_chunked_or_not(tiny_native):
    feats, labels = _batch(tiny_native.embed_dim, n=14)
    train = FeatureSet(feats, labels, None, tuple(CLASSES), key="chunk-test")
    runs = []
    for chunk in (0, 2):
        learner = PromptLearner(tiny_native, CLASSES, n_ctx=4, seed=1)
        opt = GradientPromptOptimizer(learner, train, total_steps=10, warmup_steps=0, lr=0.5, batch_size=7,
                                      class_chunk=chunk)
        assert opt.class_chunk == 2 if chunk else opt.class_chunk >= len(CLASSES)  # auto: all in one pass
        records = opt.run(3, progress=False)
        runs.append(([r.loss for r in records], learner.ctx.detach().clone()))
    (loss_a, ctx_a), (loss_b, ctx_b) = runs
    assert loss_a == pytest.approx(loss_b, abs=1e-5)
    assert (ctx_a - ctx_b).abs().max().item() < 1e-5


@pytest.mark.parametrize("field, value", [("class_chunk", -1), ("text_memory_mb", 0.0)])
def test_bad_chunk_settings_are_rejected(field, value):
    with pytest.raises(ValueError, match=field):
        GradientConfig(**{field: value})
