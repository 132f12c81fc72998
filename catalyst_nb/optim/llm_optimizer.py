"""The LLM side of the catalyst loop as an ask/tell optimizer over text templates.

``ask(history)`` shows the LLM the scored templates and returns new *pending* proposals; a person (or
an automatic policy) may ``revise``, ``approve``, ``reject`` them or ``suggest`` their own; ``tell``
(or ``score`` with a scoring function) records losses and accuracies. Scoring is a function passed in,
so nothing here needs CLIP. Every round is kept as a record with the request, the raw replies and the
lines the parser dropped, so what the LLM did is data, not a log line.

Faults: if the client raises (server down, timeout, HTTP errors, malformed replies, budget spent) the
error propagates and the optimizer's state is exactly as before the call. An empty completion or a
reply with no usable template is a normal, recorded round with zero proposals.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, replace
from typing import Any, Callable, Iterable, Mapping, Sequence

from catalyst_nb.llm.client import LLMClient, LLMRequest, LLMResponse, request_key
from catalyst_nb.llm.history import PLACEHOLDER, ScoredTemplate, normalize_template
from catalyst_nb.llm.meta_prompt import MetaPromptConfig, TaskDescription, build_request
from catalyst_nb.llm.parser import RejectedLine, parse_proposals

__all__ = ["LLMPromptOptimizer", "LLMRound", "Proposal", "STATUSES"]

logger = logging.getLogger(__name__)

STATUSES = ("pending", "approved", "rejected", "scored")
_STATE_VERSION = 1


@dataclass(frozen=True)
class Proposal:
    """One candidate template and what happened to it.

    ``original_text`` is the text as first proposed; ``edits`` the earlier texts replaced by
    ``revise`` (oldest first). ``raw_reply`` is the LLM reply it was parsed from ("" for a person's).
    """

    id: str
    text: str
    source: str
    status: str = "pending"
    round: int | None = None
    raw_reply: str = ""
    original_text: str = ""
    edits: tuple[str, ...] = ()
    loss: float | None = None
    accuracy: float | None = None
    note: str = ""

    @property
    def revised(self) -> bool:
        return bool(self.edits)

    def to_scored(self) -> ScoredTemplate:
        if self.loss is None or self.accuracy is None:
            raise ValueError(f"proposal {self.id!r} has no score yet (status {self.status!r})")
        return ScoredTemplate(self.text, self.loss, self.accuracy, source=f"{self.source}:{self.id}")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["edits"] = list(self.edits)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Proposal:
        data = dict(data)
        data["edits"] = tuple(data.get("edits", ()))
        proposal = cls(**data)
        if proposal.status not in STATUSES:
            raise ValueError(f"proposal {proposal.id!r} has unknown status {proposal.status!r}")
        return proposal


@dataclass(frozen=True)
class LLMRound:
    """One call to the LLM: the request (as plain data, no credentials), its replies and the outcome."""

    index: int
    request_key: str
    request: Mapping[str, Any]
    replies: tuple[str, ...]
    proposal_ids: tuple[str, ...]
    rejected: tuple[RejectedLine, ...]
    notes: tuple[str, ...]
    prompt_tokens: int | None
    completion_tokens: int | None
    latency_s: float
    history_size: int

    @property
    def empty(self) -> bool:
        """True when the round produced no proposal (empty completion or nothing valid)."""
        return not self.proposal_ids

    @property
    def empty_completion(self) -> bool:
        return all(not r.strip() for r in self.replies)

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "request_key": self.request_key,
            "request": dict(self.request),
            "replies": list(self.replies),
            "proposal_ids": list(self.proposal_ids),
            "rejected": [asdict(r) for r in self.rejected],
            "notes": list(self.notes),
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "latency_s": self.latency_s,
            "history_size": self.history_size,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LLMRound:
        return cls(
            index=int(data["index"]),
            request_key=data["request_key"],
            request=dict(data["request"]),
            replies=tuple(data["replies"]),
            proposal_ids=tuple(data["proposal_ids"]),
            rejected=tuple(RejectedLine(**r) for r in data["rejected"]),
            notes=tuple(data.get("notes", ())),
            prompt_tokens=data.get("prompt_tokens"),
            completion_tokens=data.get("completion_tokens"),
            latency_s=float(data.get("latency_s", 0.0)),
            history_size=int(data.get("history_size", 0)),
        )


def _check_template(text: str) -> str:
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"a template must be a non-empty str, got {text!r}")
    text = " ".join(text.split())
    if text.count(PLACEHOLDER) > 1:
        raise ValueError(f"a template may contain {PLACEHOLDER} at most once, got {text!r}")
    if "{" in text.replace(PLACEHOLDER, "") or "}" in text.replace(PLACEHOLDER, ""):
        raise ValueError(f"a template may contain no braces other than {PLACEHOLDER}, got {text!r}")
    return text


def _check_score(pid: str, score: Any) -> tuple[float, float]:
    if isinstance(score, ScoredTemplate):
        loss, accuracy = score.loss, score.accuracy
    else:
        try:
            loss, accuracy = score
        except (TypeError, ValueError):
            raise ValueError(f"score for {pid!r} must be (loss, accuracy), got {score!r}") from None
    loss, accuracy = float(loss), float(accuracy)
    if not math.isfinite(loss):
        raise ValueError(f"loss for {pid!r} must be finite, got {loss!r}")
    if not 0.0 <= accuracy <= 1.0:
        raise ValueError(f"accuracy for {pid!r} must be in [0, 1], got {accuracy!r}")
    return loss, accuracy


class LLMPromptOptimizer:
    """Ask an LLM for new templates from scored ones; keep proposals and rounds as inspectable data.

    ``seed`` (if given) is offset by the round number, so successive rounds sample differently while
    a rerun (or a replay from a cassette) repeats exactly. ``style`` chooses the meta-prompt
    ("auto": chat messages for chat clients, a list continuation for completion clients).
    """

    def __init__(
        self,
        client: LLMClient,
        *,
        task: TaskDescription,
        n_proposals: int = 3,
        max_words: int = 8,
        max_history: int = 20,
        style: str = "auto",
        show_class_names: bool = False,
        temperature: float | None = 0.7,
        top_p: float | None = None,
        max_tokens: int | None = 128,
        n: int = 1,
        seed: int | None = None,
        keep_surplus: bool = False,
    ) -> None:
        if not isinstance(task, TaskDescription):
            raise ValueError(f"task must be a TaskDescription, got {type(task).__name__}")
        for attr in ("kind", "model", "complete"):
            if not hasattr(client, attr):
                raise ValueError(f"client must follow the LLMClient protocol (missing {attr!r}): {client!r}")
        self.client = client
        self.task = task
        self.meta = MetaPromptConfig(
            n_proposals=n_proposals, max_words=max_words, max_history=max_history, style=style,
            show_class_names=show_class_names,
        )
        self.temperature = temperature
        self.top_p = top_p
        self.max_tokens = max_tokens
        self.n = n
        self.seed = seed
        self.keep_surplus = bool(keep_surplus)
        self._proposals: dict[str, Proposal] = {}
        self._rounds: list[LLMRound] = []
        self._human_count = 0

    def __repr__(self) -> str:
        counts = {s: sum(p.status == s for p in self._proposals.values()) for s in STATUSES}
        return (
            f"LLMPromptOptimizer(client={self.client!r}, rounds={len(self._rounds)}, "
            + ", ".join(f"{k}={v}" for k, v in counts.items()) + ")"
        )

    # ---- reading ----------------------------------------------------------------------------
    @property
    def proposals(self) -> tuple[Proposal, ...]:
        return tuple(self._proposals.values())

    @property
    def rounds(self) -> tuple[LLMRound, ...]:
        return tuple(self._rounds)

    def get(self, proposal_id: str) -> Proposal:
        try:
            return self._proposals[proposal_id]
        except KeyError:
            raise KeyError(f"no proposal with id {proposal_id!r} (known: {list(self._proposals)[:10]})") from None

    def by_status(self, status: str) -> tuple[Proposal, ...]:
        if status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {status!r}")
        return tuple(p for p in self._proposals.values() if p.status == status)

    @property
    def pending(self) -> tuple[Proposal, ...]:
        return self.by_status("pending")

    @property
    def approved(self) -> tuple[Proposal, ...]:
        return self.by_status("approved")

    @property
    def scored(self) -> tuple[Proposal, ...]:
        return self.by_status("scored")

    def best(self) -> Proposal | None:
        """The scored proposal with the lowest loss (ties: the earliest), or ``None``."""
        scored = self.scored
        return min(scored, key=lambda p: p.loss) if scored else None  # type: ignore[arg-type,return-value]

    def scored_history(self) -> tuple[ScoredTemplate, ...]:
        """Scored proposals as :class:`ScoredTemplate`, to feed into the next ``ask``."""
        return tuple(p.to_scored() for p in self.scored)

    # ---- asking -----------------------------------------------------------------------------
    def build_request(self, history: Sequence[ScoredTemplate]) -> LLMRequest:
        """The request the next ``ask(history)`` will send (for inspection; sends nothing)."""
        history = self._check_history(history)
        seed = None if self.seed is None else self.seed + len(self._rounds)
        return build_request(
            history, self.task, client_kind=self.client.kind, model=self.client.model, config=self.meta,
            temperature=self.temperature, top_p=self.top_p, max_tokens=self.max_tokens, n=self.n, seed=seed,
        )

    @staticmethod
    def _check_history(history: Iterable[ScoredTemplate]) -> list[ScoredTemplate]:
        items = list(history)
        for i, item in enumerate(items):
            if not isinstance(item, ScoredTemplate):
                raise ValueError(f"history[{i}] must be a ScoredTemplate, got {type(item).__name__}: {item!r}")
        return items

    def _tried_texts(self, history: Sequence[ScoredTemplate]) -> list[str]:
        texts = [h.text for h in history]
        for p in self._proposals.values():
            texts.append(p.text)
            texts.append(p.original_text)
            texts.extend(p.edits)
        return texts

    def ask(self, history: Sequence[ScoredTemplate]) -> tuple[Proposal, ...]:
        """One LLM round: returns this round's new pending proposals (possibly none).

        Raises the client's :class:`~catalyst_nb.llm.errors.LLMError` on a failed call, leaving the
        optimizer unchanged.
        """
        history = self._check_history(history)
        request = self.build_request(history)
        response: LLMResponse = self.client.complete(request)  # may raise: nothing has changed yet
        return self._commit_round(history, request, response)

    def _commit_round(self, history: list[ScoredTemplate], request: LLMRequest, response: LLMResponse) -> tuple[Proposal, ...]:
        index = len(self._rounds) + 1
        tried = self._tried_texts(history)
        cap = None if self.keep_surplus else self.meta.n_proposals
        kept: list[tuple[str, str]] = []
        rejected: list[RejectedLine] = []
        notes: list[str] = []
        for reply in response.texts:
            left = None if cap is None else max(cap - len(kept), 0)
            result = parse_proposals(
                reply, max_words=self.meta.max_words, class_names=self.task.class_names,
                tried=tried + [t for t, _ in kept], max_proposals=left,
            )
            kept.extend((text, reply) for text in result.proposals)
            rejected.extend(result.rejected)
            notes.extend(result.notes)
        if all(not t.strip() for t in response.texts):
            notes.append("empty completion")
        new: list[Proposal] = []
        for j, (text, reply) in enumerate(kept, start=1):
            pid = f"r{index}-{j}"
            new.append(Proposal(id=pid, text=text, source="llm", round=index, raw_reply=reply, original_text=text))
        record = LLMRound(
            index=index,
            request_key=request_key(request),
            request=request.to_dict(),
            replies=response.texts,
            proposal_ids=tuple(p.id for p in new),
            rejected=tuple(rejected),
            notes=tuple(notes),
            prompt_tokens=response.prompt_tokens,
            completion_tokens=response.completion_tokens,
            latency_s=response.latency_s,
            history_size=len(history),
        )
        self._rounds.append(record)
        for p in new:
            self._proposals[p.id] = p
        if not new:
            logger.info("LLM round %d gave no usable template (%d lines dropped)", index, len(rejected))
        return tuple(new)

    # ---- people -----------------------------------------------------------------------------
    def suggest(self, text: str, *, note: str = "") -> Proposal:
        """Add a person's own template as a pending proposal (id ``h1``, ``h2``, ...)."""
        text = _check_template(text)
        key = normalize_template(text)
        for p in self._proposals.values():
            if normalize_template(p.text) == key:
                raise ValueError(f"template {text!r} is the same as proposal {p.id!r} ({p.text!r})")
        self._human_count += 1
        proposal = Proposal(id=f"h{self._human_count}", text=text, source="human", original_text=text, note=note)
        self._proposals[proposal.id] = proposal
        return proposal

    def revise(self, proposal_id: str, text: str) -> Proposal:
        """Replace a pending or approved proposal's text, keeping the earlier text in ``edits``."""
        p = self.get(proposal_id)
        if p.status not in ("pending", "approved"):
            raise ValueError(f"cannot revise proposal {proposal_id!r} with status {p.status!r}")
        text = _check_template(text)
        if text == p.text:
            return p
        updated = replace(p, text=text, edits=p.edits + (p.text,))
        self._proposals[proposal_id] = updated
        return updated

    def approve(self, proposal_id: str) -> Proposal:
        """Mark a proposal for scoring (also un-rejects); a scored proposal cannot change."""
        p = self.get(proposal_id)
        if p.status == "scored":
            raise ValueError(f"proposal {proposal_id!r} is already scored")
        updated = replace(p, status="approved", note="" if p.status == "rejected" else p.note)
        self._proposals[proposal_id] = updated
        return updated

    def reject(self, proposal_id: str, *, reason: str = "") -> Proposal:
        p = self.get(proposal_id)
        if p.status == "scored":
            raise ValueError(f"proposal {proposal_id!r} is already scored")
        updated = replace(p, status="rejected", note=reason)
        self._proposals[proposal_id] = updated
        return updated

    # ---- scores -----------------------------------------------------------------------------
    def tell(self, scores: Mapping[str, Any]) -> tuple[Proposal, ...]:
        """Record ``{id: (loss, accuracy)}`` (or ``{id: ScoredTemplate}``); all or nothing."""
        checked: dict[str, tuple[float, float]] = {}
        for pid, score in scores.items():
            p = self.get(pid)
            if p.status == "rejected":
                raise ValueError(f"proposal {pid!r} was rejected; approve it before scoring")
            if p.status == "scored":
                raise ValueError(f"proposal {pid!r} is already scored (loss {p.loss})")
            checked[pid] = _check_score(pid, score)
        out = []
        for pid, (loss, accuracy) in checked.items():
            updated = replace(self._proposals[pid], status="scored", loss=loss, accuracy=accuracy)
            self._proposals[pid] = updated
            out.append(updated)
        return tuple(out)

    def score(self, fn: Callable[[str], Any], *, ids: Iterable[str] | None = None) -> tuple[Proposal, ...]:
        """Score proposals with ``fn(template) -> (loss, accuracy)``; default: all pending and approved.

        All scores are computed before any is recorded, so an exception in ``fn`` changes nothing.
        """
        if ids is None:
            targets = [p.id for p in self._proposals.values() if p.status in ("pending", "approved")]
        else:
            targets = list(ids)
        scores = {pid: fn(self.get(pid).text) for pid in targets}
        return self.tell(scores)

    # ---- state ------------------------------------------------------------------------------
    def _config(self) -> dict[str, Any]:
        return {
            "task": {"dataset": self.task.dataset, "images": self.task.images, "class_names": list(self.task.class_names)},
            "meta": {
                "n_proposals": self.meta.n_proposals, "max_words": self.meta.max_words,
                "max_history": self.meta.max_history, "style": self.meta.style,
                "show_class_names": self.meta.show_class_names,
            },
            "sampling": {"temperature": self.temperature, "top_p": self.top_p, "max_tokens": self.max_tokens, "n": self.n, "seed": self.seed},
            "keep_surplus": self.keep_surplus,
        }

    def state_dict(self) -> dict[str, Any]:
        """Plain-dict state (JSON-ready). Holds no client, URL or key: only the client's kind and model."""
        return {
            "version": _STATE_VERSION,
            "client": {"kind": self.client.kind, "model": self.client.model},
            "config": self._config(),
            "proposals": [p.to_dict() for p in self._proposals.values()],
            "rounds": [r.to_dict() for r in self._rounds],
            "human_count": self._human_count,
        }

    def load_state_dict(self, state: Mapping[str, Any], *, strict: bool = True) -> None:
        """Restore proposals and rounds. With ``strict`` the configuration must match this optimizer's."""
        if not isinstance(state, Mapping) or state.get("version") != _STATE_VERSION:
            raise ValueError(f"unsupported LLMPromptOptimizer state version {getattr(state, 'get', lambda k: None)('version')!r}")
        missing = {"config", "proposals", "rounds", "human_count"} - set(state)
        if missing:
            raise ValueError(f"state is missing {sorted(missing)}")
        if strict and state["config"] != self._config():
            diff = sorted(k for k in self._config() if state["config"].get(k) != self._config()[k])
            raise ValueError(f"state was saved with a different configuration (differs in {diff}); pass strict=False to load anyway")
        proposals = [Proposal.from_dict(p) for p in state["proposals"]]
        rounds = [LLMRound.from_dict(r) for r in state["rounds"]]
        ids = [p.id for p in proposals]
        if len(set(ids)) != len(ids):
            raise ValueError("state has duplicate proposal ids")
        self._proposals = {p.id: p for p in proposals}
        self._rounds = rounds
        self._human_count = int(state["human_count"])
