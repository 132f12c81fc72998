"""What a person sees when a restart waits for approval.

With ``approval="human"`` the catalyst's decision phase *returns* an :class:`AwaitingApproval` and moves
no further until one of its public methods is called (``approve``, ``reject``, ``suggest``).  It never
blocks the kernel and never opens a widget: the approval panel, a CLI prompt or a test all read this one
value.  It is part of the saved state, so a kernel restart loses nothing.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from catalyst_nb.candidates import Candidate

__all__ = ["ApprovalPending", "AwaitingApproval", "DECIDERS"]

#: Who may decide a waiting restart, as recorded in the decision event: a person in the optimizer's own
#: process (``human``), or through a run folder: the command line, a notebook attached to the folder, or
#: the run itself taking the policy's recommendation when nobody answered in time (``timeout``).
DECIDERS = ("human", "cli", "notebook", "timeout")


class ApprovalPending(RuntimeError):
    """``step()`` was called while a restart waits for a person's decision."""

    def __init__(self, round_index: int) -> None:
        super().__init__(
            f"round {round_index} is waiting for approval: call approve(candidate_id, text=None), reject() "
            "or suggest(text) first (see .awaiting for the scored proposals)"
        )


@dataclass(frozen=True)
class AwaitingApproval:
    """A decision that waits for a person.

    Attributes:
        round: the 0-based round.
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

    round: int
    proposals: tuple[Candidate, ...]
    recommended: str | None
    current: Mapping[str, float]
    meta_prompt: str
    replies: tuple[str, ...]
    dropped: tuple[tuple[str, str], ...]
    policy: str = ""
    probe: Mapping[str, float] | None = None

    def rank(self, candidate_id: str) -> int:
        """1-based rank of a proposal (1 = best scored)."""
        for i, c in enumerate(self.proposals, start=1):
            if c.id == candidate_id:
                return i
        raise KeyError(f"no proposal {candidate_id!r} in round {self.round} (known: {[c.id for c in self.proposals]})")

    def to_dict(self) -> dict[str, Any]:
        return {
            "round": self.round, "proposals": [c.to_dict() for c in self.proposals],
            "recommended": self.recommended, "current": dict(self.current), "meta_prompt": self.meta_prompt,
            "replies": list(self.replies), "dropped": [list(d) for d in self.dropped], "policy": self.policy,
            "probe": dict(self.probe) if self.probe is not None else None,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "AwaitingApproval":
        return cls(
            round=int(data["round"]), proposals=tuple(Candidate.from_dict(c) for c in data["proposals"]),
            recommended=data.get("recommended"), current=dict(data["current"]), meta_prompt=data["meta_prompt"],
            replies=tuple(data["replies"]), dropped=tuple((str(a), str(b)) for a, b in data["dropped"]),
            policy=data.get("policy", ""), probe=data.get("probe"),
        )
