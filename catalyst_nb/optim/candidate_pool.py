"""The catalyst's pool: the best-scoring templates of the whole run, capped, best first.

Why a class: the pool is read by ``best()``, by the history shown to the LLM, by the candidate sources
(pool templates come back as candidates of later rounds) and by the saved state, and it has one rule
(keep the ``size`` best by scoring loss as loaded, ties to higher accuracy, then the earliest) that must
hold wherever a template is added.  Only scored templates enter it.
"""
from __future__ import annotations

from typing import Any, Iterable, Iterator, Mapping

from catalyst_nb.candidates import Candidate, rank_candidates

__all__ = ["CandidatePool"]


class CandidatePool:
    """Scored candidates and proposals by id, at most ``size`` of them (the best)."""

    def __init__(self, size: int, candidates: Iterable[Candidate] = ()) -> None:
        if not isinstance(size, int) or size < 1:
            raise ValueError(f"pool size={size!r} must be an int >= 1")
        self.size = size
        self._by_id: dict[str, Candidate] = {}
        for cand in candidates:
            self.add(cand)

    def add(self, cand: Candidate) -> None:
        """Add (or replace, by id) a scored candidate; unscored ones are ignored; the worst beyond ``size`` go."""
        if not cand.scored:
            return
        self._by_id[cand.id] = cand
        if len(self._by_id) > self.size:
            keep = {c.id for c in rank_candidates(self._by_id.values())[: self.size]}
            self._by_id = {k: v for k, v in self._by_id.items() if k in keep}

    def replace(self, cand: Candidate) -> None:
        """Put ``cand`` in place of the record with its id (e.g. once it was chosen): moved to the end."""
        self._by_id.pop(cand.id, None)
        self.add(cand)

    def ranked(self) -> list[Candidate]:
        """Best first: lowest scoring loss, then highest accuracy, then the earliest added."""
        return rank_candidates(self._by_id.values())

    def best(self) -> Candidate | None:
        ranked = self.ranked()
        return ranked[0] if ranked else None

    def __iter__(self) -> Iterator[Candidate]:
        return iter(list(self._by_id.values()))

    def __len__(self) -> int:
        return len(self._by_id)

    def __contains__(self, cid: object) -> bool:
        return cid in self._by_id

    def __getitem__(self, cid: str) -> Candidate:
        return self._by_id[cid]

    def to_dicts(self) -> list[dict[str, Any]]:
        return [c.to_dict() for c in self._by_id.values()]

    @classmethod
    def from_dicts(cls, size: int, data: Iterable[Mapping[str, Any]]) -> "CandidatePool":
        return cls(size, (Candidate.from_dict(c) for c in data))

    def __repr__(self) -> str:
        best = self.best()
        return f"CandidatePool({len(self)}/{self.size}, best={best.template if best else None!r})"
