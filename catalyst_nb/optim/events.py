"""Round events: what one phase of a catalyst round did, as a frozen, JSON-ready record.

Gradient steps are :class:`~catalyst_nb.trajectory.StepRecord`; everything else that happens in a run
(a stage ending, candidates scored, the LLM asked, proposals scored, a decision, a restart, a skipped
round) is a :class:`RoundEvent`.  Widgets, plots, saved runs and resume read these records, so nothing
is known only from a log line.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping

__all__ = ["EVENT_KINDS", "RoundEvent", "json_data"]

EVENT_KINDS = ("stage_end", "candidates", "llm", "proposals", "decision", "restart", "skipped")


@dataclass(frozen=True)
class RoundEvent:
    """One phase of a round.

    Attributes:
        kind: one of :data:`EVENT_KINDS`.
        round: 0-based round index (for ``stage_end``: the stage index; the last stage is ``rounds``).
        step: the global gradient step count when it happened.
        data: the payload, plain JSON data; its keys depend on ``kind`` (see the catalyst's docs).
        seconds: wall time the phase took.
    """

    kind: str
    round: int
    step: int
    data: Mapping[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in EVENT_KINDS:
            raise ValueError(f"unknown event kind {self.kind!r}; expected one of {EVENT_KINDS}")

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "round": self.round, "step": self.step, "data": json_data(self.data),
                "seconds": self.seconds}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "RoundEvent":
        unknown = set(data) - {"kind", "round", "step", "data", "seconds"}
        if unknown:
            raise ValueError(f"unknown RoundEvent fields {sorted(unknown)}")
        return cls(kind=data["kind"], round=int(data["round"]), step=int(data["step"]),
                   data=dict(data.get("data") or {}), seconds=float(data.get("seconds", 0.0)))


def json_data(value: Any) -> Any:
    """Deep copy into JSON types; NaN and infinities become strings so a diverged run still saves."""
    if isinstance(value, Mapping):
        return {str(k): json_data(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_data(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if hasattr(value, "value") and isinstance(getattr(value, "value"), str):  # enums
        return value.value
    return value
