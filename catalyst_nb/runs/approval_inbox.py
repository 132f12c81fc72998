"""The approval inbox of a run folder: how a waiting run and a person in another process talk.

A run with ``approval = "human"`` cannot ask anyone directly: it is headless, maybe on another machine,
and may be killed at any moment.  So both sides talk through files in the run folder::

    run_dir/approvals/
      run_id                  this run's identity (written by a fresh run; a decision names it)
      round-N.awaiting.json   what the run asks: the scored proposals, the recommendation, the current
                              context's score, how to check an edited text, the deadline (written once)
      round-N.decision.json   the answer: first wins (hard-linked into place, never overwritten)
      round-N.refused-K.json  a decision the run could not apply, with the reason (the round stays open)
      waiting.json            the waiting run's heartbeat (touched about every half second)

Why a file per round and first-wins: two deciders (two notebooks, a notebook and a shell) may answer
at once; the decision is made visible with one ``link()`` that fails when the file exists, so exactly
one answer exists per round and the other decider is told which one was taken.  Nothing is ever applied
from memory: the run applies a decision and then saves its state; a run killed in between still waits
for that round after ``--resume`` and applies the same file again, once.  A decider killed while
writing leaves only a temporary file, which nothing reads.

This module holds the files and their rules only; checking a decision's text needs the run's tokenizer
(:mod:`catalyst_nb.runs.approval_check`) and the waiting loop needs the optimizer
(:mod:`catalyst_nb.runs.approval_wait`).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping

from catalyst_nb.state_io import atomic_write_text

__all__ = ["ACTIONS", "APPROVALS_DIR", "ApprovalError", "ApprovalInbox", "Decision", "DecisionTaken",
           "HEARTBEAT_STALE_S"]

APPROVALS_DIR = "approvals"
ACTIONS = ("approve", "reject", "suggest")
#: A waiting run touches its heartbeat about every half second; older than this, it is not running.
HEARTBEAT_STALE_S = 5.0
_ROUND_FILE = re.compile(r"round-(\d+)\.awaiting\.json$")


class ApprovalError(ValueError):
    """A decision that cannot be taken as asked (wrong round or run, unknown proposal, a text that
    would be cut); the message names what is wrong and what would work."""


class DecisionTaken(ApprovalError):
    """The round was decided already: the message names the decision that was taken (first wins)."""

    def __init__(self, taken: "Decision") -> None:
        super().__init__(f"round {taken.round} was already decided: {taken.describe()}")
        self.taken = taken


@dataclass(frozen=True)
class Decision:
    """One answer to one waiting round of one run.

    Attributes:
        run_id: the run it answers (a decision for another run is refused).
        round: the 0-based round it answers.
        action: ``approve`` (``candidate_id``, optionally edited to ``text``), ``reject`` (keep the
            current context) or ``suggest`` (restart from ``text``).
        decider: who decided, recorded in the decision event: ``cli``, ``notebook`` or ``timeout``.
        written: when it was written (seconds since the epoch).
    """

    run_id: str
    round: int
    action: str
    decider: str
    candidate_id: str | None = None
    text: str | None = None
    written: float = 0.0

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ValueError(f"action={self.action!r} is not one of {ACTIONS}")
        if self.action == "approve" and not self.candidate_id:
            raise ValueError("an approve decision needs the candidate_id of a proposal")
        if self.action == "suggest" and not (self.text or "").strip():
            raise ValueError(f"a suggest decision needs a text, got {self.text!r}")

    def describe(self) -> str:
        """``approve r0-3 edited to 'a neat {}' by cli at 21:40:03`` (what a second decider is told)."""
        what = {"approve": f"approve {self.candidate_id}" + (f" edited to {self.text!r}" if self.text else ""),
                "reject": "reject (keep the current context)", "suggest": f"suggest {self.text!r}"}[self.action]
        when = time.strftime("%H:%M:%S", time.localtime(self.written)) if self.written else "?"
        return f"{what} by {self.decider} at {when}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Decision":
        known = {"run_id", "round", "action", "decider", "candidate_id", "text", "written"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown decision fields {unknown}")
        return cls(run_id=str(data["run_id"]), round=int(data["round"]), action=str(data["action"]),
                   decider=str(data["decider"]), candidate_id=data.get("candidate_id"), text=data.get("text"),
                   written=float(data.get("written") or 0.0))


def _read_json(path: Path) -> Any:
    """The file's JSON, or ``None`` when it is missing (a half-written file cannot exist: all writes
    are renames or links of complete files)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None


class ApprovalInbox:
    """The ``approvals/`` folder of one run folder; used by the waiting run and by every decider."""

    def __init__(self, run_dir: str | os.PathLike[str]) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / APPROVALS_DIR
        self._beating: int | None = None

    def __repr__(self) -> str:
        return f"ApprovalInbox({os.fspath(self.run_dir)!r})"

    # ---- paths ----------------------------------------------------------------------------------
    def awaiting_file(self, round_index: int) -> Path:
        return self.path / f"round-{int(round_index)}.awaiting.json"

    def decision_file(self, round_index: int) -> Path:
        return self.path / f"round-{int(round_index)}.decision.json"

    @property
    def heartbeat_file(self) -> Path:
        return self.path / "waiting.json"

    # ---- identity -------------------------------------------------------------------------------
    def start(self, *, fresh: bool) -> "ApprovalInbox":
        """Run side, before the first unit of work: a fresh run forgets every earlier run's requests
        and answers (they would answer the wrong run) and takes a new id; a resumed run keeps both."""
        if fresh and self.path.exists():
            shutil.rmtree(self.path)
        self.path.mkdir(parents=True, exist_ok=True)
        if fresh or not (self.path / "run_id").is_file():
            atomic_write_text(self.path / "run_id", uuid.uuid4().hex[:12] + "\n")
        return self

    @property
    def run_id(self) -> str | None:
        try:
            return (self.path / "run_id").read_text(encoding="utf-8").strip() or None
        except FileNotFoundError:
            return None

    # ---- requests (written by the run) ------------------------------------------------------------
    def post(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """Publish what round ``record["awaiting"]["round"]`` asks; a request already posted (a run
        resumed while waiting) is kept as it was, so its deadline does not move."""
        round_index = int(record["awaiting"]["round"])
        existing = self.request(round_index)
        if existing is not None and existing.get("run_id") == record.get("run_id"):
            return existing
        atomic_write_text(self.awaiting_file(round_index), json.dumps(record, allow_nan=False, sort_keys=True) + "\n")
        return dict(record)

    def request(self, round_index: int) -> dict[str, Any] | None:
        return _read_json(self.awaiting_file(round_index))

    def rounds(self) -> list[int]:
        """The rounds that asked for a decision, in order."""
        if not self.path.is_dir():
            return []
        found = (_ROUND_FILE.match(p.name) for p in self.path.iterdir())
        return sorted(int(m.group(1)) for m in found if m)

    def latest(self) -> dict[str, Any] | None:
        """The last request of this run (decided or not), or ``None``."""
        for r in reversed(self.rounds()):
            record = self.request(r)
            if record is not None and record.get("run_id") == self.run_id:
                return record
        return None

    def pending(self) -> dict[str, Any] | None:
        """The request that waits for a decision now (none: ``None``)."""
        record = self.latest()
        if record is None or self.decision(int(record["awaiting"]["round"])) is not None:
            return None
        return record

    # ---- decisions (first wins) -----------------------------------------------------------------
    def decision(self, round_index: int) -> Decision | None:
        """The answer of a round, or ``None`` (also while a file system without hard links still
        shows it half written: the next look reads it whole)."""
        try:
            data = _read_json(self.decision_file(round_index))
        except json.JSONDecodeError:
            return None
        return None if data is None else Decision.from_dict(data)

    def write_decision(self, decision: Decision) -> Decision:
        """Make ``decision`` the answer of its round unless one exists; raise :class:`DecisionTaken`
        naming the existing one otherwise.

        The file is written in full under a temporary name and linked into place: ``link`` fails when
        the target exists, on local and network file systems alike, so two deciders cannot both win
        and a reader never sees half a decision.
        """
        if decision.written == 0.0:
            decision = Decision(**{**decision.to_dict(), "written": time.time()})
        self.path.mkdir(parents=True, exist_ok=True)
        target = self.decision_file(decision.round)
        text = json.dumps(decision.to_dict(), sort_keys=True) + "\n"
        fd, tmp = tempfile.mkstemp(dir=self.path, prefix=f".{target.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())
            try:
                os.link(tmp, target)
            except FileExistsError:
                raise DecisionTaken(self._taken(decision.round)) from None
            except OSError:  # a file system without hard links: exclusive creation is first-wins too
                try:
                    with open(target, "x", encoding="utf-8") as fh:
                        fh.write(text)
                except FileExistsError:
                    raise DecisionTaken(self._taken(decision.round)) from None
        finally:
            Path(tmp).unlink(missing_ok=True)
        return decision

    def _taken(self, round_index: int) -> Decision:
        """The decision another decider wrote (read again briefly if it is still being written)."""
        for _ in range(50):
            taken = self.decision(round_index)
            if taken is not None:
                return taken
            time.sleep(0.02)
        raise ApprovalError(f"round {round_index} has a decision file that cannot be read: "
                            f"{os.fspath(self.decision_file(round_index))}")

    def refuse(self, decision: Decision, reason: str) -> Path:
        """Run side: a decision that could not be applied moves aside with the reason; the round is open
        again (the next decider is told, through :meth:`refusals`, why the earlier answer failed)."""
        n = len(self.refusals(decision.round))
        target = self.path / f"round-{decision.round}.refused-{n}.json"
        atomic_write_text(target, json.dumps({**decision.to_dict(), "reason": reason}, sort_keys=True) + "\n")
        self.decision_file(decision.round).unlink(missing_ok=True)
        return target

    def refusals(self, round_index: int) -> list[dict[str, Any]]:
        if not self.path.is_dir():
            return []
        files = sorted(self.path.glob(f"round-{int(round_index)}.refused-*.json"))
        return [d for d in (_read_json(p) for p in files) if d is not None]

    # ---- liveness -------------------------------------------------------------------------------
    def beat(self, round_index: int) -> None:
        """Run side, while waiting: say that a process still waits for this round (written once per
        round, then only its time stamp is touched)."""
        if self._beating != round_index or not self.heartbeat_file.exists():
            atomic_write_text(self.heartbeat_file, json.dumps({"round": int(round_index), "pid": os.getpid()}) + "\n")
            self._beating = round_index
        else:
            os.utime(self.heartbeat_file)

    def waiting_alive(self) -> bool:
        """Whether a run process waited on this folder within the last :data:`HEARTBEAT_STALE_S` seconds."""
        try:
            return time.time() - self.heartbeat_file.stat().st_mtime < HEARTBEAT_STALE_S
        except FileNotFoundError:
            return False
