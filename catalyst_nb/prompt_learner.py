"""CoOp's learnable context vectors, readable as text and re-initialisable from text.

A prompt for class ``c`` is the token sequence ``[start] ctx_1 .. ctx_n <class name> . [end]`` (class at
the end; CoOp also puts it in the middle or at the front), where the ``ctx_i`` are free vectors in the
text tower's input-embedding space.  They are shared by all classes (unified context) or separate per
class (class-specific context).

Two operations connect the soft prompt with words, which is what lets an LLM take part in the search:
:meth:`PromptLearner.to_text` reads the context as its nearest vocabulary tokens, and
:meth:`PromptLearner.load_text` writes a text template back as the context (the restart point of the next
gradient stage).  Names follow CoOp (``n_ctx``, ``ctx_init``, ``class_token_position``) but everything is an
explicit argument rather than a global config.
"""
from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from typing import Any, Sequence

import torch
from torch import nn

import torch.nn.functional as F

from catalyst_nb.backbone import ClipBackbone, encode_text_from_embeddings, real_prompt_length
from catalyst_nb.projection import NearestTokens, NearestTracker, nearest_tokens
from catalyst_nb.shared_prefix import PrefixCache, encode_prefix, encode_suffix, pool_positions, shared_prefix_blocker

__all__ = ["PromptLearner", "ContextText", "LoadReport", "CLASS_POSITIONS", "TokenizationWarning", "fit_template"]

log = logging.getLogger(__name__)

CLASS_POSITIONS = ("end", "middle", "front")
_PLACEHOLDER = "X"  # CoOp writes the soft slots as "X X X X" in its text; we use the same token


class TokenizationWarning(UserWarning):
    """Text given to a prompt learner lost something in tokenization: words the vocabulary cannot read,
    or context tokens cut to fit ``n_ctx``."""


@dataclass(frozen=True)
class ContextText:
    """The context read as text: per context row (one row when shared, one per class otherwise).

    Attributes:
        texts: decoded nearest tokens per row (e.g. ``"a photo of a"``).
        templates: the hard prompt per row with ``{}`` where the class name goes.
        token_ids: nearest token id per slot, per row.
        distances: L2 distance (or cosine similarity) of each slot to its token, per row.
        topk: the full top-k neighbours per row, for inspection.
    """

    texts: tuple[str, ...]
    templates: tuple[str, ...]
    token_ids: tuple[tuple[int, ...], ...]
    distances: tuple[tuple[float, ...], ...]
    topk: tuple[NearestTokens, ...]

    @property
    def text(self) -> str:
        """The shared context's text (first row for class-specific context)."""
        return self.texts[0]

    @property
    def template(self) -> str:
        """The shared context's hard template (first row for class-specific context)."""
        return self.templates[0]


@dataclass(frozen=True)
class LoadReport:
    """What :meth:`PromptLearner.load_text` did with a template, so nothing is changed silently.

    Attributes:
        template: the template as given.
        tokens: the vocabulary entries now in the context slots (fillers included), in order.
        n_padded: filler slots added because the template had fewer tokens than ``n_ctx``.
        dropped: tokens cut because the template had more than ``n_ctx`` (those farthest from the class).
        ignored_text: template text that has no slot in this layout (e.g. words after ``{}`` when the
            class name sits at the end, where the learner's own ``"."`` follows the class).
        unknown: words of the template the vocabulary cannot read (they became the unknown token).
    """

    template: str
    tokens: tuple[str, ...]
    n_padded: int
    dropped: tuple[str, ...]
    ignored_text: str
    unknown: tuple[str, ...] = ()


def _split_template(template: str) -> tuple[str, str]:
    if template.count("{}") > 1:
        raise ValueError(f"template {template!r} has more than one '{{}}' class slot")
    before, _, after = template.partition("{}")
    return before.strip(), after.strip()


def _fit_ids(ids: list[int], *, keep_end: bool, slots: int, filler_id: int) -> tuple[list[int], int, list[int]]:
    """Pad or cut ``ids`` to ``slots`` tokens; the side next to the class name is kept."""
    if len(ids) > slots:
        kept, dropped = (ids[-slots:], ids[:-slots]) if keep_end else (ids[:slots], ids[slots:])
        return kept, 0, dropped
    pad = [filler_id] * (slots - len(ids))
    return (pad + ids if keep_end else ids + pad), len(pad), []


def fit_template(tok: Any, template: str, *, n_ctx: int, class_token_position: str = "end",
                 filler_id: int) -> tuple[list[int], LoadReport]:
    """:meth:`PromptLearner.fit_text` from the tokenizer alone (no model, no context tensor).

    A process that only decides a restart (``catalyst-nb approve``, a notebook attached to a run folder)
    checks an edited template with this, loading just the run's tokenizer, and gets exactly the report the
    run's learner would give.
    """
    if not isinstance(template, str) or not template.strip():
        raise ValueError(f"template must be a non-empty string, got {template!r}")
    if len(tok.encode(template.replace("{}", ""))) + 2 > tok.context_length:
        raise ValueError(
            f"template {template[:60]!r}... is longer than the text tower's context length {tok.context_length}"
        )
    before, after = _split_template(template)
    after = after[:-1].rstrip() if after.endswith(".") else after
    before = before[:-1].rstrip() if ("{}" not in template and before.endswith(".")) else before
    fit = lambda ids, keep_end, slots: _fit_ids(ids, keep_end=keep_end, slots=slots, filler_id=filler_id)  # noqa: E731
    if class_token_position == "end":
        slot_ids, n_pad, dropped = fit(tok.encode(before), True, n_ctx)
        ignored = after
    elif class_token_position == "front":
        slot_ids, n_pad, dropped = fit(tok.encode(after), False, n_ctx)
        ignored = before if "{}" in template else ""
        if "{}" not in template:  # no slot marker: the whole text is context
            slot_ids, n_pad, dropped = fit(tok.encode(before), False, n_ctx)
    else:
        half = n_ctx // 2
        left, pad_l, drop_l = fit(tok.encode(before), True, half)
        right, pad_r, drop_r = fit(tok.encode(after), False, n_ctx - half)
        slot_ids, n_pad, dropped, ignored = left + right, pad_l + pad_r, drop_l + drop_r, ""
    return slot_ids, LoadReport(
        template=template,
        tokens=tuple(tok.token_strings(slot_ids)),
        n_padded=n_pad,
        dropped=tuple(tok.token_strings(dropped)),
        ignored_text=ignored,
        unknown=tuple(tok.unknown_words(template.replace("{}", " "))),
    )


class PromptLearner(nn.Module):
    """Learnable context for CLIP's text tower (CoOp).

    Args:
        clip: the frozen backbone.
        classnames: class names as they should read in a prompt (``"ankle boot"``).
        n_ctx: number of context slots; defaults to 16 without ``ctx_init`` and to its token count with it.
        ctx_init: a text to start from (e.g. ``"a photo of a"``) instead of random vectors.
        class_specific: one context per class (CoOp's CSC) instead of one shared context.
        class_token_position: ``"end"`` | ``"middle"`` | ``"front"``.
        init_std: standard deviation of the random init (CoOp: 0.02).
        seed: seed for the random init (independent of the global RNG).
        filler: the token used to pad a template shorter than ``n_ctx`` in :meth:`load_text`.
        shared_prefix: encode the start marker and a shared context once for all classes where that is
            exact (see :mod:`catalyst_nb.shared_prefix`); ``False`` forces the plain pass.

    Attributes:
        text_path: ``"shared-prefix"`` or ``"plain"``, the pass :meth:`text_features` uses.
        text_path_reason: why the plain pass is used (``None`` on the shared-prefix path).
    """

    def __init__(
        self,
        clip: ClipBackbone,
        classnames: Sequence[str],
        *,
        n_ctx: int | None = None,
        ctx_init: str | None = None,
        class_specific: bool = False,
        class_token_position: str = "end",
        init_std: float = 0.02,
        seed: int = 0,
        filler: str = _PLACEHOLDER,
        shared_prefix: bool = True,
    ) -> None:
        super().__init__()
        classnames = [str(c).strip() for c in classnames]
        if not classnames or any(not c for c in classnames):
            raise ValueError(f"classnames must be non-empty strings, got {classnames!r}")
        if len(classnames) < 2:
            raise ValueError(
                f"classnames={classnames!r}: a classifier needs at least two classes (with one, every "
                "prediction is right and nothing is learned)"
            )
        if class_token_position not in CLASS_POSITIONS:
            raise ValueError(f"class_token_position={class_token_position!r}; expected one of {CLASS_POSITIONS}")
        tok = clip.tokenizer
        init_ids = tok.encode(_split_template(ctx_init)[0]) if ctx_init else None
        if n_ctx is None:
            n_ctx = len(init_ids) if init_ids else 16
        if n_ctx < 1:
            raise ValueError(f"n_ctx={n_ctx}: a prompt needs at least one context slot")
        self.clip = clip
        self.classnames = tuple(classnames)
        self.n_ctx = int(n_ctx)
        self.class_specific = bool(class_specific)
        self.class_token_position = class_token_position
        self._trackers: dict[int, NearestTracker] = {}  # per context row, for to_text
        self.ctx_init = ctx_init
        self.filler = filler
        filler_ids = tok.encode(filler)
        if len(filler_ids) != 1:
            raise ValueError(f"filler {filler!r} must be a single token, got {len(filler_ids)}")
        self._filler_id = filler_ids[0]

        unreadable = {name: words for name in self.classnames if (words := tok.unknown_words(name))}
        if unreadable:
            warnings.warn(
                f"class names with words the {clip.name} vocabulary cannot read (they become its unknown "
                f"token): {unreadable}", TokenizationWarning, stacklevel=2,
            )
        token_ids, positions = self._layout()
        self._check_distinct_prompts(token_ids)
        self.register_buffer("token_ids", token_ids, persistent=False)
        self.register_buffer("ctx_positions", positions, persistent=False)
        table = clip.token_embedding.weight.detach()
        self.register_buffer("base_embeddings", table[token_ids.to(table.device)].float(), persistent=False)

        width = table.shape[1]
        shape = (len(classnames), self.n_ctx, width) if class_specific else (self.n_ctx, width)
        gen = torch.Generator().manual_seed(seed)
        self.ctx = nn.Parameter(torch.randn(shape, generator=gen).mul_(init_std).to(table.device))
        if ctx_init:
            report = self.load_text(ctx_init)
            log.info("context initialised from %r: %s", ctx_init, report)
            if report.dropped:
                warnings.warn(
                    f"ctx_init {ctx_init!r} has more tokens than n_ctx={self.n_ctx}; dropped {list(report.dropped)} "
                    "(those farthest from the class name)", TokenizationWarning, stacklevel=2,
                )
        self.text_path_reason = self._shared_prefix_blocker(shared_prefix)
        self.text_path = "plain" if self.text_path_reason else "shared-prefix"
        if self.text_path_reason:
            log.info("text features use the plain pass: %s", self.text_path_reason)

    # ----------------------------------------------------------------------------------- layout

    def _layout(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Token ids of every class prompt (placeholders in the slots) and the slot positions."""
        tok = self.clip.tokenizer
        period = tok.encode(".")
        n, half = self.n_ctx, self.n_ctx // 2
        rows, positions = [], []
        for name in self.classnames:
            name_ids = tok.encode(name)
            if self.class_token_position == "end":
                body, slot_at = [self._filler_id] * n + name_ids + period, list(range(n))
            elif self.class_token_position == "front":
                body = name_ids + [self._filler_id] * n + period
                slot_at = list(range(len(name_ids), len(name_ids) + n))
            else:
                body = [self._filler_id] * half + name_ids + [self._filler_id] * (n - half) + period
                slot_at = list(range(half)) + list(range(half + len(name_ids), len(name_ids) + n))
            if len(body) + 2 > tok.context_length:
                raise ValueError(
                    f"prompt for class {name!r} needs {len(body) + 2} tokens with n_ctx={n}, more than the "
                    f"text tower's context length {tok.context_length}; lower n_ctx or shorten the class name"
                )
            rows.append(body)
            positions.append([p + 1 for p in slot_at])  # +1 for the start marker
        length = max(len(r) for r in rows) + 2  # encode only up to the longest real prompt
        token_ids = torch.stack([tok.wrap(r, length) for r in rows])
        return token_ids, torch.tensor(positions, dtype=torch.long)

    def _check_distinct_prompts(self, token_ids: torch.Tensor) -> None:
        """Two classes with the same token sequence can never be told apart: refuse them."""
        first: dict[tuple[int, ...], str] = {}
        clashes: list[tuple[str, str]] = []
        for name, row in zip(self.classnames, token_ids.tolist()):
            key = tuple(row)
            if key in first:
                clashes.append((first[key], name))
            else:
                first[key] = name
        if clashes:
            shown = ", ".join(f"{a!r} and {b!r} (tokens {self.clip.tokenizer.token_strings(self.clip.tokenizer.encode(b))})"
                              for a, b in clashes[:5])
            raise ValueError(
                f"classes with identical prompts cannot be told apart: {shown}; rename them with words the "
                f"{self.clip.name} vocabulary can read"
            )

    # ----------------------------------------------------------------------------------- forward

    def forward(self) -> torch.Tensor:
        """Input embeddings of every class prompt: ``[n_classes, length, width]``."""
        n_cls = len(self.classnames)
        ctx = self.ctx if self.class_specific else self.ctx.unsqueeze(0).expand(n_cls, -1, -1)
        rows = torch.arange(n_cls, device=ctx.device).unsqueeze(1).expand_as(self.ctx_positions)
        out = self.base_embeddings.to(ctx.dtype).clone()
        out[rows, self.ctx_positions] = ctx
        return out

    def _shared_prefix_blocker(self, wanted: bool) -> str | None:
        if not wanted:
            return "the shared-prefix pass was switched off"
        if self.class_specific:
            return "class-specific context: no two classes share their context"
        if self.class_token_position != "end":
            return f"class name at the {self.class_token_position}: the classes differ before the context ends"
        return shared_prefix_blocker(self.clip)

    @property
    def prefix_length(self) -> int:
        """Positions shared by every prompt on the shared-prefix path: the start marker and the context."""
        return 1 + self.n_ctx

    def encode_prefix(self) -> PrefixCache:
        """The start marker and the shared context through the text tower once (differentiable)."""
        if self.text_path != "shared-prefix":
            raise ValueError(f"no shared prefix for this learner: {self.text_path_reason}")
        start = self.base_embeddings[0, :1].to(self.ctx.dtype)
        return encode_prefix(self.clip, torch.cat([start, self.ctx], dim=0))

    def _rows(self, classes: torch.Tensor | slice | None) -> torch.Tensor:
        all_rows = torch.arange(len(self.classnames), device=self.token_ids.device)
        return all_rows if classes is None else all_rows[classes]

    def text_features(
        self, classes: torch.Tensor | slice | None = None, *, prefix: PrefixCache | None = None
    ) -> torch.Tensor:
        """Normalized text features of the class prompts, ``[n_selected, embed_dim]`` (differentiable).

        Args:
            classes: which classes (an index tensor or a slice); all of them by default.
            prefix: on the shared-prefix path, a cache from :meth:`encode_prefix` to reuse (e.g. its
                :meth:`~catalyst_nb.shared_prefix.PrefixCache.detached` copy when encoding in chunks).
        """
        rows = self._rows(classes)
        ids = self.token_ids[rows]
        if self.text_path == "plain":
            if prefix is not None:
                raise ValueError(f"a prefix cache was given but this learner uses the plain pass: {self.text_path_reason}")
            n_cls = len(rows)
            ctx = self.ctx[rows] if self.class_specific else self.ctx.unsqueeze(0).expand(n_cls, -1, -1)
            emb = self.base_embeddings[rows].to(ctx.dtype).clone()
            slots = self.ctx_positions[rows]
            emb[torch.arange(n_cls, device=emb.device).unsqueeze(1).expand_as(slots), slots] = ctx
            return F.normalize(encode_text_from_embeddings(self.clip, emb, ids).float(), dim=-1)
        p = self.prefix_length
        n = real_prompt_length(self.clip, ids)
        cache = self.encode_prefix() if prefix is None else prefix
        suffix = self.base_embeddings[rows, p:n].to(self.ctx.dtype)
        pool = pool_positions(self.clip, ids[:, :n]) - p
        return F.normalize(encode_suffix(self.clip, cache, suffix, pool).float(), dim=-1)

    @torch.no_grad()
    def text_features_for(self, contexts: torch.Tensor, *, chunk: int = 8) -> torch.Tensor:
        """Text features for several candidate contexts at once, ``[n_contexts, n_classes, embed_dim]``.

        ``contexts`` is ``[n_contexts, *ctx.shape]``.  The prompts of ``chunk`` contexts x all classes are
        encoded in one pass, so scoring K templates as they would be loaded costs about K/chunk text-tower
        calls instead of K.  Nothing here touches ``ctx``.
        """
        self._check_contexts(contexts)
        out = []
        for start in range(0, len(contexts), max(int(chunk), 1)):
            part = contexts[start : start + chunk].to(self.ctx.device, self.base_embeddings.dtype)
            out.append(self._plain_features_for(part))
        return torch.cat(out)

    def _check_contexts(self, contexts: torch.Tensor) -> None:
        if contexts.shape[1:] != self.ctx.shape:
            raise ValueError(f"contexts of shape {tuple(contexts.shape)} do not match ctx {tuple(self.ctx.shape)}")

    def _plain_features_for(self, contexts: torch.Tensor) -> torch.Tensor:
        """Every class prompt of every context through the whole tower: ``[n_contexts, n_classes, dim]``."""
        n_cls = len(self.classnames)
        rows = torch.arange(n_cls, device=self.ctx.device).unsqueeze(1).expand_as(self.ctx_positions)
        emb = self.base_embeddings.to(contexts.dtype).unsqueeze(0).repeat(len(contexts), 1, 1, 1)
        per_class = contexts if self.class_specific else contexts.unsqueeze(1).expand(-1, n_cls, -1, -1)
        emb[:, rows, self.ctx_positions] = per_class
        ids = self.token_ids.repeat(len(contexts), 1)
        feats = encode_text_from_embeddings(self.clip, emb.flatten(0, 1), ids).float()
        return F.normalize(feats, dim=-1).view(len(contexts), n_cls, -1)

    def text_features_batch(self, contexts: torch.Tensor) -> torch.Tensor:
        """Normalized text features of several contexts in one pass, ``[n_contexts, n_classes, embed_dim]``.

        Differentiable (each context gets its own gradient) and on this learner's text path: on the
        shared-prefix path the contexts' prefixes are encoded together and each class suffix attends to
        its own context's prefix, so one pass costs what :meth:`text_features` costs per context, with
        one set of kernel calls.  The probe trains its forks through this (:mod:`catalyst_nb.optim.probing`).
        """
        self._check_contexts(contexts)
        contexts = contexts.to(self.ctx.device)
        if self.text_path == "plain":
            return self._plain_features_for(contexts)
        n_cls, groups = len(self.classnames), len(contexts)
        p = self.prefix_length
        n = real_prompt_length(self.clip, self.token_ids)
        start = self.base_embeddings[0, :1].to(contexts.dtype).expand(groups, 1, -1)
        cache = encode_prefix(self.clip, torch.cat([start, contexts], dim=1))
        suffix = self.base_embeddings[:, p:n].to(contexts.dtype).repeat(groups, 1, 1)
        pool = (pool_positions(self.clip, self.token_ids[:, :n]) - p).repeat(groups)
        feats = encode_suffix(self.clip, cache, suffix, pool).float()
        return F.normalize(feats, dim=-1).view(groups, n_cls, -1)

    # ----------------------------------------------------------------------------------- text <-> context

    def _context_rows(self) -> torch.Tensor:
        return self.ctx.detach() if self.class_specific else self.ctx.detach().unsqueeze(0)

    def _template_for(self, ids: Sequence[int]) -> str:
        tok = self.clip.tokenizer
        half = self.n_ctx // 2

        def text(part: Sequence[int]) -> str:
            return tok.decode(part).replace("{}", "").strip() if part else ""

        if self.class_token_position == "end":
            return f"{text(ids)} {{}}.".strip()
        if self.class_token_position == "front":
            return f"{{}} {text(ids)}.".replace(" .", ".")
        return " ".join(p for p in (text(ids[:half]), "{}", text(ids[half:])) if p) + "."

    def to_text(self, *, metric: str = "l2", k: int = 1) -> ContextText:
        """Project the context onto its nearest vocabulary tokens (L2 by default, cosine optional).

        The search skips the tokenizer's special and unused entries (``excluded_ids``: start/end/padding
        on CLIP's BPE table, and ``[CLS]``/``[SEP]``/``[PAD]``/``[UNK]``/``[MASK]`` and the 994
        ``[unusedN]`` slots, 999 rows, on MiniLM's WordPiece table), since they decode to no text.  CoOp
        searches the whole table, so on the same context it may name a special token where we name the
        nearest word.
        """
        tok = self.clip.tokenizer
        table = self.clip.token_embedding.weight
        texts, templates, ids, dists, topk = [], [], [], [], []
        # the L2 nearest token, read after every step, comes from a tracker per context row that searches
        # the vocabulary only when a slot may have changed its nearest token (NearestTracker)
        trackers = self._trackers
        for i, row in enumerate(self._context_rows()):
            if metric == "l2" and k == 1:
                near = trackers.setdefault(i, NearestTracker()).nearest(row.float(), table, exclude_ids=tok.excluded_ids)
            else:
                near = nearest_tokens(row.float(), table, metric=metric, k=k, exclude_ids=tok.excluded_ids)
            row_ids = near.nearest
            texts.append(tok.decode(row_ids))
            templates.append(self._template_for(row_ids))
            ids.append(tuple(row_ids))
            dists.append(tuple(float(d) for d in near.scores[:, 0]))
            topk.append(near)
        return ContextText(tuple(texts), tuple(templates), tuple(ids), tuple(dists), tuple(topk))

    @torch.no_grad()
    def load_text(self, template: str) -> LoadReport:
        """Write a text template into the context slots (for every class when class-specific).

        See :meth:`fit_text` for how the template is fitted to ``n_ctx`` slots; this method applies it.
        """
        slot_ids, report = self.fit_text(template)
        if report.unknown:
            warnings.warn(
                f"template {template!r} has words the {self.clip.name} vocabulary cannot read (they become its "
                f"unknown token): {list(report.unknown)}", TokenizationWarning, stacklevel=2,
            )
        self.ctx.copy_(self.context_from_ids(slot_ids))
        return report

    def context_from_ids(self, slot_ids: Sequence[int]) -> torch.Tensor:
        """The context tensor (shaped like ``ctx``) holding the embeddings of ``slot_ids``."""
        table = self.clip.token_embedding.weight.detach()
        vectors = table[torch.tensor(list(slot_ids), device=table.device)].to(self.ctx.dtype).to(self.ctx.device)
        return vectors.unsqueeze(0).expand_as(self.ctx).clone() if self.class_specific else vectors

    def strip_fillers(self, template: str) -> str:
        """``template`` without the filler words on the padded side, when that loads the same context.

        A projection of a context that was padded (``"x x x x a photo of a {}."``) reads better, to a
        person and to an LLM, without the fillers; since :meth:`load_text` pads that side with the same
        filler, both spellings load identical contexts.  Only the class-at-end and class-in-front layouts
        pad a single side; the middle layout is returned unchanged.
        """
        word = self.clip.tokenizer.decode([self._filler_id]).strip()
        if not word or self.class_token_position == "middle" or "{}" not in template:
            return template
        before, _, after = template.partition("{}")
        if self.class_token_position == "end":
            words = before.split()
            while words and words[0] == word:
                words.pop(0)
            return (" ".join(words) + " {}" + after).strip() if words else "{}" + after
        words = after.rstrip(".").split()
        while words and words[-1] == word:
            words.pop()
        return (before + "{} " + " ".join(words)).rstrip() + ("." if after.endswith(".") else "")

    def loaded_template(self, slot_ids: Sequence[int]) -> str:
        """The template a context of exactly these tokens reads as (fillers shown as the filler token)."""
        return self._template_for(list(slot_ids))

    def fit_text(self, template: str) -> tuple[list[int], LoadReport]:
        """The slot token ids a template would give, and what fitting it did; changes nothing.

        ``template`` holds ``{}`` where the class name goes (without it, the class follows the text).
        Rule for fitting ``n_ctx`` slots: the words on the context side of ``{}`` are tokenized; a shorter
        template is padded with the filler token (CoOp's ``X``) on the side *away* from the class name, a
        longer one loses the tokens farthest from the class name.  Words on the other side of ``{}`` have
        no slot when the class sits at the end or front and are reported in ``ignored_text``; a final
        period is dropped since the learner adds its own.
        """
        return fit_template(self.clip.tokenizer, template, n_ctx=self.n_ctx,
                            class_token_position=self.class_token_position, filler_id=self._filler_id)

    def extra_repr(self) -> str:
        return (
            f"n_classes={len(self.classnames)}, n_ctx={self.n_ctx}, class_specific={self.class_specific}, "
            f"class_token_position={self.class_token_position!r}, length={self.token_ids.shape[1]}"
        )
