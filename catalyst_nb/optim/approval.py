"""What a person sees when a restart waits for approval.

With ``approval="human"`` the catalyst's decision phase emits and *returns* an :class:`AwaitingApproval`
event and moves no further until one of its decision methods is called (``approve``, ``reject``,
``suggest``).  It never blocks the kernel and never opens a widget: the approval panel, a CLI prompt or a
test all read this one value (``catalyst.awaiting``), and observers of the event stream see it arrive.  It
is part of the saved state, so a kernel restart loses nothing.
"""
from __future__ import annotations

from catalyst_nb.optim.events import AwaitingApproval

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
