"""The cross-entropy of a prompt learner over many classes, with the exact gradient in bounded memory.

A CoOp step needs every class's text feature in the softmax, and back-propagation keeps the text tower's
activations of every class prompt alive until the backward pass: with 1,000 classes that is gigabytes.
The loss, however, depends on the text tower only through the ``[n_classes, embed_dim]`` feature matrix.
So the step runs in two passes when the classes do not fit a memory budget:

1. encode all classes in chunks *without* autograd, compute the loss and its gradient with respect to
   the feature matrix (a small tensor);
2. re-encode each chunk *with* autograd and back-propagate its slice of that gradient into the context.

By the chain rule the accumulated context gradient is the one of the unchunked step (tested), at the
price of one extra forward pass; peak memory is that of one chunk.  On the shared-prefix path the
prefix is encoded once with autograd, its keys and values are cut into leaves that collect the gradient
of every chunk, and the prefix is back-propagated once at the end.

When all classes fit the budget the step is the ordinary single pass (no extra forward).
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable, ContextManager

import torch
import torch.nn.functional as F

from catalyst_nb.prompt_learner import PromptLearner

__all__ = ["TextLoss", "auto_class_chunk", "text_activation_bytes", "text_cross_entropy"]

# Activations kept for backward per position and layer, in units of the tower width: measured 12-15 for
# open_clip's and Hugging Face's text blocks (peak RSS over 300 classes); 18 keeps the estimate above.
_WIDTHS_PER_POSITION = 18


def _tower_shape(learner: PromptLearner) -> tuple[int, int, int]:
    """(layers, width, heads) of the learner's text tower."""
    clip = learner.clip
    if clip.text_kind == "native":
        tower = clip.model.transformer
        return len(tower.resblocks), int(tower.width), int(tower.resblocks[0].attn.num_heads)
    config = clip.model.text.transformer.config
    layers = getattr(config, "num_hidden_layers", None) or getattr(config, "n_layers", 12)
    width = getattr(config, "hidden_size", None) or getattr(config, "dim", 768)
    heads = getattr(config, "num_attention_heads", None) or getattr(config, "n_heads", 12)
    return int(layers), int(width), int(heads)


def text_activation_bytes(learner: PromptLearner, *, element_bytes: int = 4) -> int:
    """Estimated bytes of text-tower activations that one class prompt keeps alive for backward.

    Per layer and encoded position: the block's intermediate tensors (layer norms, q/k/v, attention
    output, the 4x-wide MLP before and after its activation, residuals), about 18 widths, plus the
    attention probabilities over all keys.  Positions are counted up to the longest prompt.  An
    estimate, a little on the high side of what was measured; the speed benchmark measures the peak.
    """
    layers, width, heads = _tower_shape(learner)
    length = int(learner.token_ids.shape[1])
    if learner.text_path == "shared-prefix":
        positions, keys = length - learner.prefix_length, length
    else:
        positions = keys = length
    per_position = _WIDTHS_PER_POSITION * width + 2 * heads * keys
    return layers * positions * per_position * element_bytes


def auto_class_chunk(learner: PromptLearner, *, memory_mb: float, element_bytes: int = 4) -> int:
    """Most classes whose text activations fit ``memory_mb`` (at least 1)."""
    if memory_mb <= 0:
        raise ValueError(f"memory_mb={memory_mb!r} must be > 0")
    per_class = text_activation_bytes(learner, element_bytes=element_bytes)
    return max(1, int(memory_mb * 2**20 // per_class))


@dataclass
class TextLoss:
    """A computed cross-entropy whose gradient is sent into the context by :meth:`backward`.

    Attributes:
        loss: the mean cross-entropy (a detached scalar tensor).
        logits: ``[batch, n_classes]`` detached logits.
        n_chunks: class chunks used (1: the ordinary single pass).
    """

    loss: torch.Tensor
    logits: torch.Tensor
    n_chunks: int
    _backward: Callable[[], None]

    def backward(self) -> None:
        """Accumulate the loss's gradient into the learner's context (``ctx.grad``); call once."""
        self._backward()


def text_cross_entropy(
    learner: PromptLearner,
    features: torch.Tensor,
    labels: torch.Tensor,
    *,
    logit_scale: torch.Tensor | float,
    class_chunk: int,
    autocast: Callable[[], ContextManager[object]] = contextlib.nullcontext,
) -> TextLoss:
    """Cross-entropy of ``logit_scale * features @ text_features.T`` against ``labels``.

    Args:
        features: ``[batch, embed_dim]`` normalized image features.
        labels: ``[batch]`` class indices.
        class_chunk: classes encoded at once; ``>= n_classes`` gives the single ordinary pass.
        autocast: a context-manager factory wrapped around every text-tower pass (mixed precision).
    """
    n_classes = len(learner.classnames)
    if class_chunk < 1:
        raise ValueError(f"class_chunk={class_chunk!r} must be >= 1")
    feats = features.float()

    if class_chunk >= n_classes:
        with autocast():
            text = learner.text_features()
        logits = logit_scale * feats @ text.float().T
        loss = F.cross_entropy(logits, labels)
        return TextLoss(loss.detach(), logits.detach(), 1, loss.backward)

    chunks = [slice(i, min(i + class_chunk, n_classes)) for i in range(0, n_classes, class_chunk)]
    shared = learner.text_path == "shared-prefix"
    with torch.no_grad(), autocast():
        prefix = learner.encode_prefix() if shared else None
        text = torch.cat([learner.text_features(c, prefix=prefix).float() for c in chunks])
    text.requires_grad_(True)
    with torch.enable_grad():
        logits = logit_scale * feats @ text.T
        loss = F.cross_entropy(logits, labels)
    loss_value = loss.detach()

    def backward() -> None:
        (grad_text,) = torch.autograd.grad(loss, text)
        with autocast():
            prefix_graph = learner.encode_prefix() if shared else None
        leaves = prefix_graph.detached() if prefix_graph is not None else None
        for c in chunks:
            with autocast():
                part = learner.text_features(c, prefix=leaves)
            part.backward(grad_text[c].to(part.dtype))
        if prefix_graph is not None and leaves is not None:
            prefix_graph.backward_into(leaves)

    return TextLoss(loss_value, logits.detach(), len(chunks), backward)

