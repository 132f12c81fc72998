"""Encode many prompts that start alike by computing their common beginning once.

Under the causal mask of CLIP's native text tower, position ``i`` sees only positions ``<= i``.  When a
batch of prompts shares its first ``p`` input embeddings (the start marker and a shared soft context, or
the words of a hard template before the class name), the hidden states of those ``p`` positions are the
same in every prompt, at every layer.  So they are computed once, for a batch of one, and each prompt's
remaining *suffix* (class name, period, end marker) runs alone, its queries attending to the cached
prefix keys and values plus its own.  The result equals the plain pass up to float rounding (tested to
1e-5, features and context gradients), at the cost of the suffix tokens only: about 4 of ~21 positions
for CoOp's 16-token context and a one-word class name.

It applies only where this reasoning holds: open_clip's own causal text transformer, pooled at a token
inside the suffix (the end marker).  :func:`shared_prefix_blocker` names the reason when it does not —
Hugging Face towers are bidirectional (every position sees the class name), other attention blocks are
not ours to re-implement — and callers fall back to the plain pass.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from catalyst_nb.backbone import ClipBackbone

__all__ = ["PrefixCache", "encode_prefix", "encode_suffix", "pool_positions", "shared_prefix_blocker"]


@dataclass(frozen=True)
class PrefixCache:
    """Keys and values of the shared prefix at every layer of the text tower.

    Attributes:
        keys / values: one ``[heads, prefix_length, head_dim]`` tensor per layer (``[groups, heads,
            prefix_length, head_dim]`` for several prefixes encoded at once).
        length: number of prefix positions (the suffix starts at this position).
    """

    keys: tuple[torch.Tensor, ...]
    values: tuple[torch.Tensor, ...]
    length: int

    def tensors(self) -> list[torch.Tensor]:
        """All cached tensors, keys first (for ``torch.autograd.backward``)."""
        return [*self.keys, *self.values]

    def detached(self) -> "PrefixCache":
        """A copy whose tensors are new autograd leaves (``requires_grad``) cut from the prefix graph.

        Encoding several suffix chunks against the detached copy accumulates the gradient with respect
        to the cache in its ``.grad`` fields; :meth:`backward_into` then sends it through the prefix once.
        """
        def leaf(t: torch.Tensor) -> torch.Tensor:
            return t.detach().requires_grad_(t.requires_grad)

        return PrefixCache(tuple(leaf(k) for k in self.keys), tuple(leaf(v) for v in self.values), self.length)

    def backward_into(self, leaves: "PrefixCache") -> None:
        """Back-propagate the gradients gathered on ``leaves`` (see :meth:`detached`) through this cache."""
        pairs = [(t, leaf.grad) for t, leaf in zip(self.tensors(), leaves.tensors())
                 if t.requires_grad and leaf.grad is not None]
        if pairs:
            torch.autograd.backward([t for t, _ in pairs], [g for _, g in pairs])


def shared_prefix_blocker(clip: ClipBackbone) -> str | None:
    """Why the shared-prefix pass cannot be used with this backbone, or ``None`` when it can."""
    if clip.text_kind != "native":
        return "the Hugging Face text tower is bidirectional: every position sees the class name"
    model = clip.model
    if getattr(model, "attn_mask", None) is None:
        return "the text tower has no causal mask"
    if model.text_pool_type not in ("argmax", "eos"):
        return f"the text tower pools with {model.text_pool_type!r}, not at the end marker"
    for block in model.transformer.resblocks:
        if type(block).__name__ != "ResidualAttentionBlock" or hasattr(block, "ln_1_kv"):
            return f"text block {type(block).__name__} is not CLIP's standard residual attention block"
        attn = getattr(block, "attn", None)
        if not isinstance(attn, nn.MultiheadAttention) or not attn._qkv_same_embed_dim or attn.in_proj_weight is None:
            return "text attention is not a packed nn.MultiheadAttention"
        if attn.bias_k is not None or attn.add_zero_attn:
            return "text attention adds extra key/value biases"
    return None


def pool_positions(clip: ClipBackbone, token_ids: torch.Tensor) -> torch.Tensor:
    """Index of the pooled position of each row, as open_clip's ``text_global_pool`` chooses it."""
    model = clip.model
    if model.text_pool_type == "argmax":
        return token_ids.argmax(dim=-1)
    return (token_ids == model.text_eos_id).int().argmax(dim=-1)


def _attention(qkv: torch.Tensor, cache: tuple[torch.Tensor, torch.Tensor] | None) -> torch.Tensor:
    """Causal multi-head attention over the cached keys/values and the rows' own positions.

    ``qkv`` is ``[batch, s, 3, heads, head_dim]`` (padding rows may hold anything: under the causal mask
    they are never attended to by a real position).  The prefix keys are shared by the batch: the
    queries of all rows are folded into one matrix product per head instead of expanding the prefix to
    every row.  Returns ``[batch, s, width]`` before the output projection.
    """
    batch, s, _, heads, dim = qkv.shape
    q, k, v = (qkv[:, :, i].transpose(1, 2) for i in range(3))  # [batch, heads, s, dim]
    q = q * dim**-0.5
    own = q @ k.transpose(-1, -2)  # [batch, heads, s, s]
    causal = torch.ones(s, s, dtype=torch.bool, device=qkv.device).triu(1)
    own = own.masked_fill(causal, float("-inf"))
    if cache is None:
        out = own.softmax(dim=-1) @ v
    else:
        k_p, v_p = cache  # [heads, p, dim], or [groups, heads, p, dim]: one prefix per group of rows
        if k_p.dim() == 3:
            k_p, v_p = k_p.unsqueeze(0), v_p.unsqueeze(0)
        groups, p = k_p.shape[0], k_p.shape[2]
        n = batch // groups

        def fold(t: torch.Tensor) -> torch.Tensor:  # [batch, heads, s, x] -> [groups, heads, n * s, x]
            return t.reshape(groups, n, heads, s, -1).transpose(1, 2).reshape(groups, heads, n * s, -1)

        def unfold(t: torch.Tensor) -> torch.Tensor:  # the inverse of fold
            return t.reshape(groups, heads, n, s, -1).transpose(1, 2).reshape(batch, heads, s, -1)

        past = unfold(fold(q) @ k_p.transpose(-1, -2))
        probs = torch.cat([past, own], dim=-1).softmax(dim=-1)
        probs_past, probs_own = probs.split([p, s], dim=-1)
        out = probs_own @ v + unfold(fold(probs_past) @ v_p)
    return out.transpose(1, 2).reshape(batch, s, heads * dim)


def _run_blocks(
    model: nn.Module,
    x: torch.Tensor,
    rows: torch.Tensor,
    shape: tuple[int, int],
    cache: PrefixCache | None,
    keep: torch.Tensor | None = None,
) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
    """The text blocks on a *packed* residual stream.

    ``x`` is ``[n_real, width]``: only the real positions of a ``[batch, s]`` layout, whose flat indices
    are ``rows``.  Everything but attention works per position, so padding after each prompt's pooled
    token (which under the causal mask cannot change it) costs nothing there; attention alone scatters
    its queries, keys and values into the padded layout.  With ``keep`` (packed indices of the pooled
    tokens) the last block finishes only those positions: nothing reads the others' last outputs.
    Returns the packed output (only ``keep``'s rows with it) and each layer's keys and values
    (``[batch, heads, s, head_dim]``, for caching a prefix).
    """
    batch, s = shape
    keys, values = [], []
    blocks = model.transformer.resblocks
    for i, block in enumerate(blocks):
        attn = block.attn
        heads = attn.num_heads
        qkv = F.linear(block.ln_1(x), attn.in_proj_weight, attn.in_proj_bias)
        if rows.numel() != batch * s:
            qkv = qkv.new_zeros(batch * s, qkv.shape[-1]).index_copy(0, rows, qkv)
        qkv = qkv.view(batch, s, 3, heads, -1)
        layer_cache = None if cache is None else (cache.keys[i], cache.values[i])
        a = _attention(qkv, layer_cache).reshape(batch * s, -1)
        if rows.numel() != batch * s:
            a = a.index_select(0, rows)
        if keep is not None and i == len(blocks) - 1:
            x, a = x.index_select(0, keep), a.index_select(0, keep)
        x = x + block.ls_1(F.linear(a, attn.out_proj.weight, attn.out_proj.bias))
        x = x + block.ls_2(block.mlp(block.ln_2(x)))
        keys.append(qkv[:, :, 1].transpose(1, 2))
        values.append(qkv[:, :, 2].transpose(1, 2))
    return x, keys, values


def _check(clip: ClipBackbone) -> None:
    reason = shared_prefix_blocker(clip)
    if reason is not None:
        raise ValueError(f"the shared-prefix pass does not apply to model {clip.name!r}: {reason}")


def encode_prefix(clip: ClipBackbone, embeddings: torch.Tensor) -> PrefixCache:
    """Run the shared prefix (``[p, width]`` input embeddings, start marker first) through the tower once.

    ``[groups, p, width]`` encodes several prefixes in one pass (the probe's forks, one soft context
    each); :func:`encode_suffix` then gives each consecutive ``batch / groups`` rows their group's prefix.
    Differentiable: gradients reach ``embeddings`` (the soft context) through the cached keys and values.
    """
    _check(clip)
    if embeddings.dim() not in (2, 3) or embeddings.shape[-2] < 1:
        raise ValueError(f"prefix embeddings must be [length >= 1, width] or [groups, length, width], "
                         f"got {tuple(embeddings.shape)}")
    model = clip.model
    grouped = embeddings.dim() == 3
    prefixes = embeddings if grouped else embeddings.unsqueeze(0)
    groups, p = prefixes.shape[:2]
    cast = model.transformer.get_cast_dtype()
    x = (prefixes.to(cast) + model.positional_embedding[:p].to(cast)).reshape(groups * p, -1)
    _, keys, values = _run_blocks(model, x, torch.arange(groups * p, device=x.device), (groups, p), None)
    if grouped:
        return PrefixCache(tuple(keys), tuple(values), p)
    return PrefixCache(tuple(k[0] for k in keys), tuple(v[0] for v in values), p)


def encode_suffix(
    clip: ClipBackbone, cache: PrefixCache, embeddings: torch.Tensor, pool_index: torch.Tensor
) -> torch.Tensor:
    """Text features of prompts ``prefix + suffix`` from the suffixes' input embeddings.

    Args:
        cache: the shared prefix, from :func:`encode_prefix`.
        embeddings: ``[batch, s, width]`` suffix input embeddings (positions ``p .. p + s - 1``).
        pool_index: ``[batch]`` pooled position of each row *within the suffix* (the end marker).
    Returns:
        ``[batch, embed_dim]`` unnormalized features, equal to the plain pass over the whole prompts.
    """
    _check(clip)
    model = clip.model
    batch, s, _ = embeddings.shape
    p = cache.length
    if p + s > model.positional_embedding.shape[0]:
        raise ValueError(f"prefix {p} + suffix {s} positions exceed the context length {model.positional_embedding.shape[0]}")
    groups = cache.keys[0].shape[0] if cache.keys[0].dim() == 4 else 1
    if batch % groups:
        raise ValueError(f"{batch} suffixes cannot be split evenly over {groups} prefixes")
    if pool_index.shape != (batch,) or bool((pool_index < 0).any()) or bool((pool_index >= s).any()):
        raise ValueError(f"pool_index must hold {batch} positions in [0, {s}), got {pool_index.tolist()[:8]}")
    cast = model.transformer.get_cast_dtype()
    x = embeddings.to(cast) + model.positional_embedding[p : p + s].to(cast)
    pool_index = pool_index.to(x.device)
    # Positions after a row's pooled token cannot change it (causal mask): they are not computed.
    real = torch.arange(s, device=x.device).unsqueeze(0) <= pool_index.unsqueeze(1)
    rows = real.flatten().nonzero().squeeze(1)
    pooled_at = (pool_index + 1).cumsum(0) - 1  # each row's pooled token in the packed order
    x = x.reshape(batch * s, -1).index_select(0, rows)
    x, _, _ = _run_blocks(model, x, rows, (batch, s), cache, keep=pooled_at)
    x = model.ln_final(x)
    if model.text_projection is not None:
        x = model.text_projection(x) if isinstance(model.text_projection, nn.Linear) else x @ model.text_projection
    return x
