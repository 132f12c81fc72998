"""What happened during optimisation, as data: frozen step records in an append-only log.

Every ``step()`` of an optimizer returns a :class:`StepRecord` and appends it here, so widgets, plots,
the LLM meta-prompt and saved runs all read the same facts; nothing is known only from a log line.
A trajectory saves as JSON Lines (one record per line, readable by anything), written atomically.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from catalyst_nb.json_codec import json_data, json_float
from catalyst_nb.state_io import atomic_write_text

__all__ = ["StepRecord", "Trajectory"]


@dataclass(frozen=True)
class StepRecord:
    """One gradient step.

    Attributes:
        step: 0-based index of the step in the whole run (continues across stages and restarts).
        loss: cross-entropy of the minibatch before the update.
        accuracy: minibatch accuracy before the update.
        grad_norm: L2 norm of the context gradient.
        lr: learning rate used for this update.
        context_text: the context's own words: its nearest tokens after the update (``None`` if not projected).
        template: that projection as a hard prompt with ``{}`` for the class name.
        token_ids: the projected token ids (first context row for class-specific context).
        distance: mean distance score of the context slots to their nearest tokens, in the projection's
            metric: the L2 distance under ``"l2"`` (lower is closer to words), the cosine *similarity*
            under ``"cosine"`` (higher is closer).
        seconds: wall time of the step, projection included.
        stage: which gradient stage this step belongs to (0 for plain runs).
    """

    step: int
    loss: float
    accuracy: float
    grad_norm: float
    lr: float
    context_text: str | None = None
    template: str | None = None
    token_ids: tuple[int, ...] | None = None
    distance: float | None = None
    seconds: float = 0.0
    stage: int = 0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if d["token_ids"] is not None:
            d["token_ids"] = list(d["token_ids"])
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "StepRecord":
        """The record of :meth:`to_dict` (also with NaN written as ``"nan"``); every field is required."""
        known = {f.name for f in fields(cls)}
        unknown, missing = set(data) - known, known - set(data)
        if unknown or missing:
            raise ValueError(f"not a StepRecord: unknown fields {sorted(unknown)}, missing fields {sorted(missing)}")
        data = {k: json_float(v) if k in _FLOAT_FIELDS else v for k, v in data.items()}
        if data["token_ids"] is not None:
            data["token_ids"] = tuple(int(i) for i in data["token_ids"])
        return cls(**data)


_FLOAT_FIELDS = ("loss", "accuracy", "grad_norm", "lr", "distance", "seconds")


class Trajectory(Sequence[StepRecord]):
    """Append-only sequence of :class:`StepRecord`."""

    def __init__(self, records: Sequence[StepRecord] = ()):
        self._records: list[StepRecord] = []
        # the records' dict forms, made once each: a run saves its whole trajectory every few seconds,
        # and converting every record again each time grew with the square of the steps
        self._dicts: list[dict[str, Any]] = []
        for r in records:
            self.append(r)

    def append(self, record: StepRecord) -> None:
        if not isinstance(record, StepRecord):
            raise TypeError(f"expected a StepRecord, got {type(record).__name__}")
        if self._records and record.step <= self._records[-1].step:
            raise ValueError(f"step {record.step} does not follow step {self._records[-1].step}")
        self._records.append(record)

    def __getitem__(self, index):  # type: ignore[override]
        return self._records[index]

    def __len__(self) -> int:
        return len(self._records)

    def __iter__(self) -> Iterator[StepRecord]:
        return iter(self._records)

    def column(self, name: str) -> list[Any]:
        """All values of one field, e.g. ``trajectory.column("loss")``."""
        return [getattr(r, name) for r in self._records]

    def stage(self, stage: int) -> list[StepRecord]:
        return [r for r in self._records if r.stage == stage]

    def distinct_templates(self, stage: int | None = None) -> list[str]:
        """Projected templates in order of first appearance (optionally within one stage)."""
        seen: dict[str, None] = {}
        for r in self._records:
            if r.template is not None and (stage is None or r.stage == stage):
                seen.setdefault(r.template, None)
        return list(seen)

    def to_dicts(self) -> list[dict[str, Any]]:
        """Every record's :meth:`StepRecord.to_dict` (new dicts: the caller may change them)."""
        self._dicts.extend(r.to_dict() for r in self._records[len(self._dicts):])
        return [{**d, "token_ids": list(d["token_ids"])} if d["token_ids"] is not None else dict(d)
                for d in self._dicts]

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write ``<path>`` as JSON Lines, atomically (a crash leaves the old file or the new one)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = [json.dumps(json_data(rec)) + "\n" for rec in self.to_dicts()]
        atomic_write_text(path, "".join(lines))
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> "Trajectory":
        path = Path(path)
        records = []
        with open(path, encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                if line.strip():
                    try:
                        data = json.loads(line)
                    except json.JSONDecodeError as exc:
                        raise ValueError(f"{path}:{lineno} is not valid JSON: {exc}") from exc
                    try:
                        records.append(StepRecord.from_dict(data))
                    except (TypeError, ValueError) as exc:
                        raise ValueError(f"{path}:{lineno}: {exc}") from None
        return cls(records)

    def __repr__(self) -> str:
        last = self._records[-1] if self._records else None
        tail = f", last loss {last.loss:.4f} at step {last.step}" if last else ""
        return f"Trajectory({len(self)} steps{tail})"

