"""The run side of the approval inbox: publish what a round asks, wait for the answer, apply it.

One call in a run's loop, :meth:`ApprovalWaiter.wait`, stands where a notebook would show the approval
panel: it returns the decision event exactly as ``optimizer.approve/reject/suggest`` does, so the loop
appends it and saves the state as for any other unit of work.  Until then the run holds nothing a kill
could lose: the optimizer's pending approval is in the saved state, the question is in the folder, and
the answer will be a file.
"""
from __future__ import annotations

import logging
import os
import time
from typing import Any, Callable

from catalyst_nb.runs.approval_inbox import ApprovalError, ApprovalInbox, Decision, DecisionTaken

__all__ = ["ApprovalWaiter", "POLL_S", "approval_waiter"]

log = logging.getLogger(__name__)

#: How often a waiting run looks for an answer: a decision reaches it within about this long.
POLL_S = 0.5


def approval_waiter(run_dir: str | os.PathLike[str], *, approval: str, timeout: float | None,
                    fresh: bool) -> "ApprovalWaiter | None":
    """The waiter of a run whose restarts are decided through its folder (``None`` with ``approval="auto"``).

    A fresh run clears whatever an earlier run in the same folder asked or was answered, whatever its
    own approval mode: an old answer must never reach a new run.
    """
    inbox = ApprovalInbox(run_dir)
    if approval != "human":
        if fresh and inbox.path.exists():
            inbox.start(fresh=True)
        return None
    return ApprovalWaiter(inbox.start(fresh=fresh), timeout=timeout)


class ApprovalWaiter:
    """Waits for the decisions of one run.

    Args:
        inbox: the run folder's inbox (started).
        timeout: seconds after a round first asked, after which the policy's recommendation is taken
            (recorded as decided by ``timeout``); ``None``: wait as long as it takes.
        poll: seconds between two looks at the inbox.
    """

    def __init__(self, inbox: ApprovalInbox, *, timeout: float | None = None, poll: float = POLL_S,
                 clock: Callable[[], float] = time.time, sleep: Callable[[float], None] = time.sleep) -> None:
        if timeout is not None and not timeout >= 0:
            raise ValueError(f"timeout={timeout!r} must be None or >= 0 seconds")
        if not poll > 0:
            raise ValueError(f"poll={poll!r} must be > 0 seconds")
        self.inbox = inbox
        self.timeout = timeout
        self.poll = poll
        self._clock, self._sleep = clock, sleep

    def request(self, optimizer: Any) -> dict[str, Any]:
        """Publish the optimizer's pending question (kept as it was when a resumed run asks again)."""
        from catalyst_nb.runs.approval_check import fit_spec

        now = self._clock()
        return self.inbox.post({
            "run_id": self.inbox.run_id, "posted": now, "step": int(optimizer.step_count),
            "deadline": None if self.timeout is None else now + self.timeout,
            "fit": fit_spec(optimizer.learner), "awaiting": optimizer.awaiting.to_dict(),
            # a new text may not repeat one of these (the optimizer refuses it, in a notebook too)
            "known": {p.id: p.template for p in optimizer.llm.proposals},
        })

    def wait(self, optimizer: Any, *, on_event: Callable[[dict[str, Any]], None] | None = None) -> Any:
        """Block until the pending round is decided; apply the decision and return its event.

        ``on_event`` hears ``{"type": "waiting", ...}`` once, when the waiting starts (the command line
        prints how to answer).  An answer the optimizer refuses (rare: the decider checked it) is moved
        aside with the reason and the round stays open.
        """
        record = self.request(optimizer)
        round_index = int(record["awaiting"]["round"])
        if on_event is not None:
            on_event({"type": "waiting", "round": round_index, "run_id": record["run_id"],
                      "run_dir": os.fspath(self.inbox.run_dir), "deadline": record["deadline"]})
        while True:
            decision = self.inbox.decision(round_index)
            if decision is None and record["deadline"] is not None and self._clock() >= record["deadline"]:
                decision = self._timeout_decision(record)
            if decision is not None:
                try:
                    return self.apply(optimizer, decision)
                except (ApprovalError, ValueError, KeyError, RuntimeError) as exc:
                    self.inbox.refuse(decision, str(exc))
                    log.warning("decision for round %d refused: %s", round_index, exc)
                    continue
            self.inbox.beat(round_index)
            self._sleep(self.poll)

    def _timeout_decision(self, record: dict[str, Any]) -> Decision:
        recommended = record["awaiting"]["data"]["recommended"]
        decision = Decision(run_id=record["run_id"], round=int(record["awaiting"]["round"]),
                            action="approve" if recommended else "reject", decider="timeout",
                            candidate_id=recommended)
        try:
            return self.inbox.write_decision(decision)
        except DecisionTaken as exc:  # a person answered in the same instant: theirs stands
            return exc.taken

    def apply(self, optimizer: Any, decision: Decision) -> Any:
        """Apply ``decision`` to the waiting optimizer (its run and round must be this one's)."""
        pending = optimizer.awaiting
        if pending is None:
            raise ApprovalError("the optimizer is not waiting for a decision")
        if decision.run_id != self.inbox.run_id:
            raise ApprovalError(f"the decision is for run {decision.run_id}, this is run {self.inbox.run_id}")
        if decision.round != pending.round:
            raise ApprovalError(f"the decision is for round {decision.round}, the run waits for round {pending.round}")
        if decision.action == "approve":
            return optimizer.approve(decision.candidate_id, text=decision.text, decider=decision.decider)
        if decision.action == "reject":
            return optimizer.reject(decider=decision.decider)
        return optimizer.suggest(decision.text, decider=decision.decider)

