"""Round events: one frozen, typed record per kind of thing a catalyst round does.

Gradient steps are :class:`~catalyst_nb.trajectory.StepRecord`; everything else that happens in a run
is a :class:`RoundEvent` of one of these kinds:

========================  ================  ==========================================================
class                     ``kind``          what happened
========================  ================  ==========================================================
:class:`StageEnd`         ``stage_end``     a gradient stage ended; the context scored (and evaluated)
:class:`CandidatesScored` ``candidates``    projections, variants and pool templates scored
:class:`LLMCall`          ``llm``           the LLM was asked; its replies and the lines dropped
:class:`ProposalsScored`  ``proposals``     the LLM's (and people's) proposals scored
:class:`Decision`         ``decision``      what the restart starts from (``chosen=None``: keep going)
:class:`Restart`          ``restart``       the chosen template loaded into the context
:class:`Skipped`          ``skipped``       the round ended without a decision, and why
:class:`AwaitingApproval` ``awaiting``      a restart waits for a person (``approval="human"``)
========================  ================  ==========================================================

Every event saves as ``{"kind", "round", "step", "data", "seconds"}`` (``data`` the payload fields as
plain JSON), which is the line shape of a run folder's ``events.jsonl``; :meth:`RoundEvent.from_dict`
gives back the typed record.  Widgets, plots, saved runs and resume read these records, so nothing is
known only from a log line.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, ClassVar, Iterable, Mapping

from catalyst_nb.candidates import Candidate
from catalyst_nb.json_codec import json_data

__all__ = ["EVENT_KINDS", "AwaitingApproval", "CandidatesScored", "Decision", "LLMCall", "ProposalsScored",
           "Restart", "RoundEvent", "Skipped", "StageEnd", "json_data", "stage_end_rows"]

_BASE_FIELDS = ("round", "step", "seconds")


@dataclass(frozen=True, kw_only=True)
class RoundEvent:
    """What every round event has; subclasses add their payload fields.

    Attributes:
        round: 0-based round index (for ``stage_end``: the stage index; the last stage is ``rounds``).
        step: the global gradient step count when it happened.
        seconds: wall time the phase took.
    """

    kind: ClassVar[str] = ""
    _candidate_fields: ClassVar[tuple[str, ...]] = ()  # payload fields holding Candidate records

    round: int
    step: int
    seconds: float = 0.0

    def __post_init__(self) -> None:
        if type(self) is RoundEvent:
            raise TypeError("RoundEvent is the common base; build one of its kinds (StageEnd, Decision, ...)")

    @classmethod
    def payload_fields(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls) if f.name not in _BASE_FIELDS)

    @property
    def data(self) -> dict[str, Any]:
        """The payload as plain JSON data (what ``events.jsonl`` holds under ``"data"``)."""
        out: dict[str, Any] = {}
        for name in self.payload_fields():
            value = getattr(self, name)
            if name in self._candidate_fields:
                value = [c.to_dict() for c in value]
            out[name] = value
        return json_data(out)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "round": self.round, "step": self.step, "data": self.data,
                "seconds": self.seconds}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "RoundEvent":
        """The typed event of a :meth:`to_dict` form; every key is required, none may be unknown."""
        keys = {"kind", "round", "step", "data", "seconds"}
        if set(data) != keys:
            raise ValueError(f"not a round event: has {sorted(map(str, data))}, expected {sorted(keys)}")
        kind = data["kind"]
        if kind not in _BY_KIND:
            raise ValueError(f"unknown event kind {kind!r}; expected one of {EVENT_KINDS}")
        klass = _BY_KIND[kind]
        if cls is not RoundEvent and klass is not cls:
            raise ValueError(f"a {kind!r} event is not a {cls.__name__}")
        payload = data["data"]
        if not isinstance(payload, Mapping):
            raise ValueError(f"{kind!r} event data must be a mapping, got {type(payload).__name__}")
        expected = set(klass.payload_fields())
        if set(payload) != expected:
            raise ValueError(f"{kind!r} event data has {sorted(payload)}, expected {sorted(expected)}")
        values = {name: (tuple(Candidate.from_dict(c) for c in value) if name in klass._candidate_fields
                         else _frozen(value)) for name, value in payload.items()}
        return klass(round=int(data["round"]), step=int(data["step"]), seconds=float(data["seconds"]), **values)


def _frozen(value: Any) -> Any:
    """JSON lists read back as tuples (the records are frozen); mappings keep their keys."""
    if isinstance(value, list):
        return tuple(_frozen(v) for v in value)
    if isinstance(value, Mapping):
        return {k: _frozen(v) for k, v in value.items()}
    return value


@dataclass(frozen=True, kw_only=True)
class StageEnd(RoundEvent):
    """A gradient stage ended: the context scored on the scoring split (and on ``eval``, if given)."""

    kind: ClassVar[str] = "stage_end"
    stage: int
    scoring: Mapping[str, float]
    scoring_key: str
    eval: Mapping[str, float] | None = None

    @property
    def scoring_accuracy(self) -> float:
        return float(self.scoring["accuracy"])

    @property
    def eval_accuracy(self) -> float | None:
        return None if self.eval is None else float(self.eval["accuracy"])


@dataclass(frozen=True, kw_only=True)
class CandidatesScored(RoundEvent):
    """This round's projections, variants and pool templates, scored as loaded into the context."""

    kind: ClassVar[str] = "candidates"
    _candidate_fields: ClassVar[tuple[str, ...]] = ("candidates",)
    candidates: tuple[Candidate, ...]


@dataclass(frozen=True, kw_only=True)
class LLMCall(RoundEvent):
    """The LLM was asked (``n_calls`` calls): the meta-prompt, the raw replies, the dropped lines."""

    kind: ClassVar[str] = "llm"
    meta_prompt: str
    replies: tuple[str, ...]
    dropped: tuple[Mapping[str, str], ...]
    n_valid: int
    n_calls: int
    latency_s: float
    seeds: tuple[int | None, ...] = ()  # each call's sampling seed


@dataclass(frozen=True, kw_only=True)
class ProposalsScored(RoundEvent):
    """The round's proposals, each scored or marked invalid."""

    kind: ClassVar[str] = "proposals"
    _candidate_fields: ClassVar[tuple[str, ...]] = ("proposals",)
    proposals: tuple[Candidate, ...]


@dataclass(frozen=True, kw_only=True)
class Decision(RoundEvent):
    """What the next stage starts from: ``chosen`` (a candidate id) or ``None`` (keep the context)."""

    kind: ClassVar[str] = "decision"
    decider: str
    policy: str
    chosen: str | None
    template: str | None
    edited_from: str | None = None
    probe: Mapping[str, float] | None = None


@dataclass(frozen=True, kw_only=True)
class Restart(RoundEvent):
    """The chosen template was loaded into the context (``loaded``: what the context holds)."""

    kind: ClassVar[str] = "restart"
    id: str
    template: str
    loaded: str
    report: Mapping[str, Any]
    scoring_before: Mapping[str, float]
    scoring_after: Mapping[str, float]
    probe_steps_adopted: int = 0


@dataclass(frozen=True, kw_only=True)
class Skipped(RoundEvent):
    """The round ended without a decision (LLM fault, nothing usable in the reply)."""

    kind: ClassVar[str] = "skipped"
    reason: str


@dataclass(frozen=True, kw_only=True)
class AwaitingApproval(RoundEvent):
    """A restart waits for a person; nothing moves until the catalyst's ``approve``/``reject``/``suggest``.

    Attributes:
        proposals: scored proposals, best first (by scoring-split loss as loaded into the context).
        recommended: the id the restart policy would choose, or ``None`` (keep the current context).
        current: ``{"loss", "accuracy"}`` of the soft prompt on the scoring split now.
        meta_prompt: the rendered meta-prompt the LLM saw.
        replies: the LLM's raw replies.
        dropped: ``(line, reason)`` for every reply line the parser dropped.
        policy: the restart policy that made the recommendation.
        probe: for ``restart="probe"``, the scoring loss reached by each probed branch (id -> loss;
            ``"current"`` for plain continuation).
    """

    kind: ClassVar[str] = "awaiting"
    _candidate_fields: ClassVar[tuple[str, ...]] = ("proposals",)
    proposals: tuple[Candidate, ...]
    recommended: str | None
    current: Mapping[str, float]
    meta_prompt: str
    replies: tuple[str, ...]
    dropped: tuple[tuple[str, str], ...]
    policy: str
    probe: Mapping[str, float] | None = None

    def rank(self, candidate_id: str) -> int:
        """1-based rank of a proposal (1 = best scored)."""
        for i, c in enumerate(self.proposals, start=1):
            if c.id == candidate_id:
                return i
        raise KeyError(f"no proposal {candidate_id!r} in round {self.round} (known: {[c.id for c in self.proposals]})")


_BY_KIND: dict[str, type[RoundEvent]] = {k.kind: k for k in (
    StageEnd, CandidatesScored, LLMCall, ProposalsScored, Decision, Restart, Skipped, AwaitingApproval)}
EVENT_KINDS = tuple(_BY_KIND)


def stage_end_rows(events: Iterable[Any]) -> list[dict[str, Any]]:
    """One row per stage end among ``events`` (typed events, or their saved dicts, ``events.jsonl`` lines
    included): ``{"stage", "step", "scoring_accuracy", "scoring_loss", "eval_accuracy", "eval_loss"}``,
    the ``eval_*`` values ``None`` without an evaluation split.

    The one reader of the stage-end payload: the run summary, saved runs, the report and the plots use it.
    """
    rows = []
    for event in events:
        d = event.to_dict() if isinstance(event, RoundEvent) else event
        if d.get("kind") != StageEnd.kind:
            continue
        data = d["data"]
        scoring, evaluation = data.get("scoring") or {}, data.get("eval") or {}
        rows.append({"stage": int(data.get("stage", d["round"])), "step": int(d["step"]),
                     "scoring_accuracy": scoring.get("accuracy"), "scoring_loss": scoring.get("loss"),
                     "eval_accuracy": evaluation.get("accuracy"), "eval_loss": evaluation.get("loss")})
    return rows
