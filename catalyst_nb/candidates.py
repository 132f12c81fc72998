"""One record type for every template the catalyst scores, whatever produced it.

A template reaches the scoring split from five places: a projection of the soft context during a
gradient stage, a variant of that projection (one slot swapped for a near token), the pool of templates
that scored well in earlier rounds, the LLM, or a person.  Keeping them in one frozen record with a
``source`` and a ``status`` (after optuna's ``FrozenTrial``/``TrialState``) means the pool, ``best()``,
the history shown to the LLM, the approval panel and the saved events all read the same facts.

Two scores are kept because they can differ: ``loss``/``accuracy`` score the template *as it would be
loaded into the context* (padded or cut to ``n_ctx``, words after ``{}`` dropped when the class name is
at the end), which is what a restart actually starts from; ``raw_loss``/``raw_accuracy`` score the full
hard prompt as written.  Decisions use the first pair.

This module imports no torch, so the LLM layer can use it on its own.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from enum import Enum
from typing import Any, Iterable, Mapping

__all__ = ["Candidate", "Source", "Status", "best_candidate", "rank_candidates"]


class Source(str, Enum):
    """Where a candidate template came from."""

    PROJECTION = "projection"
    VARIANT = "variant"
    POOL = "pool"
    LLM = "llm"
    HUMAN = "human"


class Status(str, Enum):
    """Life cycle: ``pending`` → (``approved`` | ``rejected``) → ``scored`` → ``chosen``; ``invalid``
    when it cannot be loaded into the context (e.g. no token survives)."""

    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    SCORED = "scored"
    CHOSEN = "chosen"
    INVALID = "invalid"


@dataclass(frozen=True)
class Candidate:
    """A template and what happened to it.

    Attributes:
        id: unique within a run (``p0-1`` projection, ``v0-2`` variant, ``k0-0`` pool, ``r0-1`` LLM,
            ``h1`` human); the digit after the letter is the 0-based round.
        template: the text with ``{}`` where the class name goes.
        source: where it came from.
        status: where it is in its life cycle.
        round: 0-based catalyst round (``None`` outside a round, e.g. a person's early suggestion).
        loss, accuracy: scoring-split loss and accuracy of the template as loaded into the context.
        raw_loss, raw_accuracy: the same for the full hard prompt as written.
        loaded: the template the context would hold (``None`` until checked).
        raw_reply: the LLM reply it was parsed from ("" otherwise).
        original: the text as first proposed; ``edits`` holds earlier texts replaced by a revision.
        note: free text (why rejected, what was edited, ...).
    """

    id: str
    template: str
    source: Source
    status: Status = Status.PENDING
    round: int | None = None
    loss: float | None = None
    accuracy: float | None = None
    raw_loss: float | None = None
    raw_accuracy: float | None = None
    loaded: str | None = None
    raw_reply: str = ""
    original: str = ""
    edits: tuple[str, ...] = ()
    note: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "source", Source(self.source))
        object.__setattr__(self, "status", Status(self.status))
        object.__setattr__(self, "edits", tuple(self.edits))
        if not self.original:
            object.__setattr__(self, "original", self.template)

    @property
    def scored(self) -> bool:
        return self.loss is not None and self.accuracy is not None

    @property
    def revised(self) -> bool:
        return bool(self.edits)

    def with_score(self, loss: float, accuracy: float, *, raw_loss: float | None = None,
                   raw_accuracy: float | None = None, loaded: str | None = None) -> "Candidate":
        """A scored copy; scores are checked (finite loss, accuracy in [0, 1])."""
        loss, accuracy = check_score(self.id, loss, accuracy)
        return replace(self, status=Status.SCORED, loss=loss, accuracy=accuracy, raw_loss=raw_loss,
                       raw_accuracy=raw_accuracy, loaded=loaded if loaded is not None else self.loaded)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["source"] = self.source.value
        data["status"] = self.status.value
        data["edits"] = list(self.edits)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Candidate":
        known = set(cls.__dataclass_fields__)
        unknown, missing = set(data) - known, known - set(data)
        if unknown or missing:
            raise ValueError(f"not a Candidate record: unknown fields {sorted(unknown)}, missing fields {sorted(missing)}")
        try:
            return cls(**dict(data))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"not a valid Candidate record ({exc}): {dict(data)!r}") from None


def check_score(cid: str, loss: Any, accuracy: Any) -> tuple[float, float]:
    loss, accuracy = float(loss), float(accuracy)
    if not math.isfinite(loss):
        raise ValueError(f"loss for {cid!r} must be finite, got {loss!r}")
    if not 0.0 <= accuracy <= 1.0:
        raise ValueError(f"accuracy for {cid!r} must be in [0, 1], got {accuracy!r}")
    return loss, accuracy


def rank_candidates(candidates: Iterable[Candidate]) -> list[Candidate]:
    """Scored candidates, best first: lowest loss, then highest accuracy, then earliest."""
    scored = [c for c in candidates if c.scored]
    order = {id(c): i for i, c in enumerate(scored)}
    return sorted(scored, key=lambda c: (c.loss, -c.accuracy, order[id(c)]))  # type: ignore[operator]


def best_candidate(candidates: Iterable[Candidate]) -> Candidate | None:
    ranked = rank_candidates(candidates)
    return ranked[0] if ranked else None
