"""A finished (or interrupted) run read back from its folder, without loading any model.

Notebooks and plots read runs this way: the gradient steps as a :class:`Trajectory`, the round events as
typed :class:`RoundEvent` records (awaiting approval included), the config and the summary, exactly as
the run wrote them.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from catalyst_nb.optim.events import RoundEvent, stage_end_rows
from catalyst_nb.runs.config import RunConfig
from catalyst_nb.runs.folder import RunFolder
from catalyst_nb.trajectory import StepRecord, Trajectory

__all__ = ["RunRecord", "event_record", "load_run"]


@dataclass(frozen=True)
class RunRecord:
    """What a run folder holds: config, steps, round events and (when finished) the summary."""

    path: Path
    config: RunConfig
    trajectory: Trajectory
    events: tuple[RoundEvent, ...]
    summary: dict[str, Any] | None

    @property
    def finished(self) -> bool:
        return self.summary is not None

    def stage_accuracies(self) -> list[dict[str, Any]]:
        """``{"stage", "step", "scoring", "test"}`` at each stage end."""
        return [{"stage": row["stage"], "step": row["step"], "scoring": row["scoring_accuracy"],
                 "test": row["eval_accuracy"]} for row in stage_end_rows(self.events)]


def event_record(line: dict[str, Any]) -> StepRecord | RoundEvent | None:
    """One line of ``events.jsonl`` as the record the run made (``None`` for other kinds of line)."""
    body = {k: v for k, v in line.items() if k != "type"}
    if line.get("type") == "step":
        return StepRecord.from_dict(body)
    if line.get("type") == "round":
        return RoundEvent.from_dict(body)
    return None


def load_run(path: str | os.PathLike[str]) -> RunRecord:
    """Read a run folder (``catalyst-nb run --out PATH``)."""
    folder = RunFolder(path)
    config = folder.read_config()
    steps, events = [], []
    for e in folder.read_events():
        record = event_record(e)
        if isinstance(record, StepRecord):
            steps.append(record)
        elif record is not None:
            events.append(record)
    summary = folder.read_summary() if folder.is_finished() else None
    return RunRecord(Path(path), config, Trajectory(steps), tuple(events), summary)
