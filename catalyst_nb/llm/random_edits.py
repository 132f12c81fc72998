"""A proposal source without an LLM: random word edits of the templates the LLM would have been shown.

The control for "does the LLM reason, or only perturb?".  The 270M model's proposals are mostly small
edits of the projections in its prompt; if random edits of the same templates do as well, the LLM adds
nothing beyond perturbation.

Why a client and not a new proposal-source hook in the catalyst: an object with the LLM client's
protocol (``kind``, ``model``, ``complete``) goes through *exactly* the LLM's path (the same meta-prompt
built from the same history, the same number of calls per round, the same parser with its validity and
already-tried checks, the same scoring, restart decision and events), so the control differs from the
catalyst in one thing only: where the text of a proposal comes from.  It needs no cassette either: the
edits are drawn from the request's own sampling seed (hashed per run, round and call), so a rerun or a
resumed run repeats them exactly.

Each call reads the templates the request shows (:func:`~catalyst_nb.llm.meta_prompt.shown_templates`,
tested as the inverse of every meta-prompt style), picks one, and makes one edit: insert a word
(drawn from the shown templates' words and the vocabulary), delete a word, or swap two words; ``{}``
is never deleted or duplicated.  A call answers as many lines as the request asks for (one for the
caption style, ``n_proposals`` for the list styles).
"""
from __future__ import annotations

import random
from typing import Any, Iterable, Sequence

from .client import LLMRequest, LLMResponse, check_kind, check_request_kind, request_key
from .history import PLACEHOLDER
from .meta_prompt import requested_count, shown_templates

__all__ = ["RandomEditClient", "random_edit", "vocabulary_words", "EDITS"]

EDITS = ("insert", "delete", "swap")


def random_edit(template: str, rng: random.Random, *, words: Sequence[str], max_words: int | None = None) -> str:
    """``template`` with one random edit (the kind drawn uniformly among those possible).

    Words are whitespace-separated; the word holding ``{}`` may move (swap) but is never deleted, and no
    inserted word contains ``{}``.  An insert that would pass ``max_words`` is not possible, nor is a swap
    of two equal words; every edit changes the text.
    """
    tokens = template.split()
    movable = [i for i, t in enumerate(tokens) if PLACEHOLDER not in t]
    pool = [w for w in words if w and PLACEHOLDER not in w and not any(c.isspace() for c in w)]
    possible = []
    if pool and (max_words is None or len(tokens) < max_words):
        possible.append("insert")
    if movable:
        possible.append("delete")
    pairs = [(i, j) for i in range(len(tokens)) for j in range(i + 1, len(tokens)) if tokens[i] != tokens[j]]
    if pairs:  # a swap of two equal words would change nothing
        possible.append("swap")
    if not possible:
        raise ValueError(f"no edit is possible on template {template!r} with {len(pool)} words to insert")
    kind = rng.choice(possible)
    if kind == "insert":
        tokens.insert(rng.randrange(len(tokens) + 1), rng.choice(pool))
    elif kind == "delete":
        del tokens[rng.choice(movable)]
    else:
        i, j = rng.choice(pairs)
        tokens[i], tokens[j] = tokens[j], tokens[i]
    return " ".join(tokens)


def vocabulary_words(tokenizer: Any, *, min_length: int = 2) -> list[str]:
    """Whole alphabetic words of a :class:`~catalyst_nb.tokens.TokenizerAdapter`'s vocabulary, sorted.

    Native CLIP BPE marks a word's end with ``</w>``; a word-piece vocabulary marks continuations with
    ``##``.  Pieces, markers and punctuation are left out: an inserted word should read as a word.
    """
    if tokenizer.kind == "native":
        entries: Iterable[str] = (t[:-4] for t in tokenizer.tokenizer.encoder if t.endswith("</w>"))
    else:
        entries = (t for t in tokenizer.tokenizer.tokenizer.get_vocab() if not t.startswith("##"))
    return sorted({w for w in entries if w.isascii() and w.isalpha() and len(w) >= min_length})


class RandomEditClient:
    """Answers a proposal request with random edits of the templates it shows (no model, no server).

    Args:
        vocabulary: words an insert may draw besides the shown templates' own words (e.g.
            :func:`vocabulary_words` of the CLIP tokenizer).
        max_words: longest template an insert may make (the preset's limit, so that inserts are not
            thrown away by the parser more often than the LLM's proposals are).
        kind: the meta-prompt style the optimizer builds for it (``completion``: as for the local base
            model, so the control runs with the same preset settings as the catalyst it is compared with).
    """

    model = "random-edits"

    def __init__(self, vocabulary: Sequence[str] = (), *, max_words: int | None = None, kind: str = "completion") -> None:
        if max_words is not None and (not isinstance(max_words, int) or max_words < 2):
            raise ValueError(f"max_words must be an int >= 2 or None, got {max_words!r}")
        self.kind = check_kind(kind)
        self.vocabulary = tuple(vocabulary)
        self.max_words = max_words

    def __repr__(self) -> str:
        return f"RandomEditClient(vocabulary={len(self.vocabulary)} words, max_words={self.max_words})"

    def complete(self, request: LLMRequest) -> LLMResponse:
        check_request_kind(self.kind, request)
        shown = shown_templates(request)
        seed = request.seed if request.seed is not None else int(request_key(request)[:8], 16)
        rng = random.Random(seed)
        lines = []
        if shown:
            words = sorted({w for t in shown for w in t.split()}) + list(self.vocabulary)
            for _ in range(requested_count(request) * request.n):
                lines.append(random_edit(rng.choice(shown), rng, words=words, max_words=self.max_words))
        texts = tuple("\n".join(lines[i::request.n]) for i in range(request.n))
        return LLMResponse(texts=texts, model=self.model, prompt_tokens=0,
                           completion_tokens=sum(len(t.split()) for t in texts), latency_s=0.0,
                           finish_reasons=tuple("stop" for _ in texts))
