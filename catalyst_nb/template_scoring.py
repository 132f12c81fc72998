"""Text features of many hard templates for many classes, in one batched pass without autograd.

The LLM catalyst scores several candidate templates per round (the projected prompts of a gradient
stage and the LLM's proposals), each against every class.  Encoding them one template at a time, at the
tokenizer's full context length, costs more than the gradient steps it is meant to steer.  Here all
``templates x classes`` prompts are encoded together:

* on CLIP's native causal text tower the prompts of one template share their beginning (the start
  marker and the words before ``{}``; more when class names begin alike).  That common prefix runs once,
  and only each class's remaining tokens run, attending to the cached prefix
  (:mod:`catalyst_nb.shared_prefix`; exact);
* elsewhere (bidirectional Hugging Face towers) the prompts are sorted by length and encoded in chunks,
  each cut to its longest real prompt (exact as well: padding is invisible to the pooled feature).

:func:`encode_template_batch` is the stable entry point; :func:`encode_templates` averages its result
over templates (CLIP's prompt ensembling).
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from catalyst_nb.backbone import ClipBackbone, _autocast, encode_text_from_embeddings, real_prompt_length
from catalyst_nb.shared_prefix import encode_prefix, encode_suffix, pool_positions, shared_prefix_blocker
from catalyst_nb.templates import fill_template

__all__ = ["DEFAULT_CHUNK", "encode_template_batch", "encode_templates", "template_too_long"]

#: Prompts per text-tower call: bounds the transient activation memory of a scoring pass.
DEFAULT_CHUNK = 256


def _check_inputs(templates: Sequence[str], classnames: Sequence[str], chunk: int) -> None:
    if isinstance(templates, str):
        raise ValueError(f"templates must be a sequence of strings, got the string {templates!r}")
    if not templates:
        raise ValueError("encode_template_batch needs at least one template")
    bad = [t for t in templates if not isinstance(t, str) or not t.strip()]
    if bad:
        raise ValueError(f"templates must be non-empty strings, got {bad[:3]!r}")
    if isinstance(classnames, str) or not classnames:
        raise ValueError(f"classnames must be a non-empty sequence of strings, got {classnames!r}")
    if chunk < 1:
        raise ValueError(f"chunk={chunk!r} must be >= 1")


def _common_prefix_length(ids: torch.Tensor) -> int:
    """Leading columns on which every row of ``ids`` agrees."""
    differs = (ids != ids[:1]).any(dim=0).nonzero()
    return int(differs[0].item()) if differs.numel() else ids.shape[1]


def _shared_prefix_pass(clip: ClipBackbone, ids: torch.Tensor, chunk: int) -> torch.Tensor:
    """Features of one template's prompts (``ids``: ``[n_classes, length]``) with its prefix run once."""
    ids = ids[:, : real_prompt_length(clip, ids)].to(clip.device)
    pools = pool_positions(clip, ids)
    p = max(1, min(_common_prefix_length(ids), int(pools.min().item())))  # the pooled token stays a suffix
    embeddings = clip.token_embedding(ids)
    cache = encode_prefix(clip, embeddings[0, :p])
    out = []
    for start in range(0, ids.shape[0], chunk):
        rows = slice(start, start + chunk)
        end = int(pools[rows].max().item()) + 1  # this chunk's longest real prompt
        out.append(encode_suffix(clip, cache, embeddings[rows, p:end], pools[rows] - p).float())
    return torch.cat(out)


def _chunked_pass(clip: ClipBackbone, ids: torch.Tensor, chunk: int) -> torch.Tensor:
    """Features of arbitrary prompts, sorted by length and encoded in chunks cut to their real length."""
    ids = ids.to(clip.device)
    if clip.text_kind == "native":
        lengths = ids.argmax(dim=-1)
    else:
        lengths = (ids != clip.tokenizer.pad_id).sum(dim=-1)
    order = lengths.argsort()
    parts = []
    for start in range(0, ids.shape[0], chunk):
        rows = order[start : start + chunk]
        sub = ids[rows]
        parts.append(encode_text_from_embeddings(clip, clip.token_embedding(sub), sub).float())
    out = torch.cat(parts)
    result = torch.empty_like(out)
    result[order] = out
    return result


@torch.no_grad()
def encode_template_batch(
    clip: ClipBackbone,
    templates: Sequence[str],
    classnames: Sequence[str],
    *,
    chunk: int = DEFAULT_CHUNK,
) -> torch.Tensor:
    """L2-normalized text features of every template filled with every class name (not averaged).

    Args:
        clip: the backbone.
        templates: hard templates, ``{}`` where the class name goes (without ``{}`` the name is appended).
        classnames: the class names, in label order.
        chunk: prompts per text-tower call (memory bound; results do not depend on it).
    Returns:
        ``[len(templates), len(classnames), embed_dim]`` float32 features; row ``[t, c]`` equals
        ``normalize(clip.encode_text_tokens(tokenizer([fill_template(templates[t], classnames[c])])))``.
    """
    _check_inputs(templates, classnames, chunk)
    n_t, n_c = len(templates), len(classnames)
    ids = clip.tokenizer([fill_template(t, c) for t in templates for c in classnames])
    with _autocast(clip.device):
        if shared_prefix_blocker(clip) is None:
            feats = torch.stack([_shared_prefix_pass(clip, ids[i * n_c : (i + 1) * n_c], chunk) for i in range(n_t)])
        else:
            feats = _chunked_pass(clip, ids, chunk).view(n_t, n_c, -1)
    return F.normalize(feats.float(), dim=-1)


def template_too_long(clip: ClipBackbone, template: str, classnames: Sequence[str]) -> str | None:
    """Why ``template`` cannot be encoded whole with some class name (longer than the text tower's
    context: the tokenizers would cut it silently, losing the end marker), or ``None`` when it can."""
    limit = clip.tokenizer.context_length
    for name in classnames:
        needed = len(clip.tokenizer.encode(fill_template(template, name))) + 2  # start and end markers
        if needed > limit:
            return (f"template {template[:60]!r} with class {name[:40]!r} needs {needed} tokens, more than the "
                    f"text tower's context length {limit}; shorten the template or the class name")
    return None


@torch.no_grad()
def encode_templates(clip: ClipBackbone, templates: Sequence[str], classnames: Sequence[str]) -> torch.Tensor:
    """Normalized class weights for hard text prompts, averaged over ``templates`` (CLIP's ensembling).

    A template holds ``{}`` where the class name goes; without ``{}`` the name is appended.
    Returns a ``[len(classnames), embed_dim]`` tensor; all prompts are encoded in one batched pass.

    Raises:
        ValueError: a filled prompt is longer than the text tower's context length.  The tokenizers
            would cut it silently (losing the end marker the tower pools at), which scores near chance.
    """
    if not templates:
        raise ValueError("encode_templates needs at least one template")
    for template in templates:
        problem = template_too_long(clip, template, classnames)
        if problem:
            raise ValueError(problem)
    return F.normalize(encode_template_batch(clip, templates, classnames).mean(0), dim=-1)
