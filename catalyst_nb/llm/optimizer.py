"""The LLM side of the catalyst loop as an ask/tell optimizer over text templates.

``ask(history)`` shows the LLM the scored templates and returns new *pending* candidates; a person (or
an automatic policy) may ``revise`` them, set their status with ``mark_approved`` / ``mark_rejected``, or
``add_template`` their own; ``tell``
(or ``score`` with a scoring function) records losses and accuracies. Scoring is a function passed in,
so nothing here needs CLIP or torch. Every round is kept as a record with the request, the raw replies
and the lines the parser dropped, so what the LLM did is data, not a log line.

Faults: if the client raises (server down, timeout, HTTP errors, malformed replies, budget spent) the
error propagates and the optimizer's state is exactly as before the call. An empty completion or a
reply with no usable template is a normal, recorded round with zero proposals.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Callable, Iterable, Mapping, Sequence

from catalyst_nb.hooks import HookRegistry, RemovableHandle
from catalyst_nb.candidates import Candidate, Source, Status, best_candidate, check_score
from catalyst_nb.llm.client import LLMClient, LLMRequest, LLMResponse, request_key
from catalyst_nb.llm.history import ScoredTemplate
from catalyst_nb.llm.meta_prompt import MetaPromptConfig, TaskDescription, build_request, hide_filler
from catalyst_nb.llm.parser import RejectedLine, parse_proposals
from catalyst_nb.llm.sampling_seed import sampling_seed
from catalyst_nb.templates import check_template, normalize_template
from catalyst_nb.keys import check_known_keys
from catalyst_nb.optimizer_state import StateError, check_state, pack_state

__all__ = ["LLMOptimizerConfig", "LLMPromptOptimizer", "LLMRound"]

logger = logging.getLogger(__name__)

_STATE_VERSION = 3  # 3: the common layout of catalyst_nb.optimizer_state (2 was a flat dict)
_STATE_KEYS = ("client", "proposals", "rounds", "human_count")

RoundHook = Callable[["LLMPromptOptimizer", "LLMRound"], None]


@dataclass(frozen=True)
class LLMOptimizerConfig:
    """How the LLM is asked: the meta-prompt (see :class:`MetaPromptConfig`) and the sampling.

    ``samples`` is the number of calls per round (each with its own seed, hashed from ``seed``, the round
    and the call: :func:`~catalyst_nb.llm.sampling_seed.sampling_seed`, so no two runs share a draw):
    a small base model gives one useful line per call far more often than a list in one call.
    ``batch_samples`` sends a round's samples as the ``n`` choices of one call instead (seeded by the
    round's first sample seed), for a server that decodes a request's choices together, such as the
    embedded model's (:mod:`catalyst_nb.llm.batch_server`): the same number of samples of the same prompt,
    at a fraction of the cost.  ``keep_surplus`` keeps more than ``n_proposals`` valid templates from a round.
    """

    n_proposals: int = 3
    max_words: int = 8
    max_history: int = 20
    style: str = "auto"
    show_classnames: bool = False
    temperature: float | None = 0.7
    top_p: float | None = None
    max_tokens: int | None = 128
    n: int = 1
    samples: int = 1
    seed: int | None = None
    keep_surplus: bool = False
    batch_samples: bool = False
    without_filler: bool = False
    class_word: str = "{}"

    def __post_init__(self) -> None:
        self.meta  # validates the meta-prompt fields
        if not isinstance(self.samples, int) or self.samples < 1:
            raise ValueError(f"samples must be an int >= 1, got {self.samples!r}")
        if not isinstance(self.n, int) or self.n < 1:
            raise ValueError(f"n must be an int >= 1, got {self.n!r}")
        if self.temperature is not None and not 0 <= self.temperature <= 2:
            raise ValueError(f"temperature must be in [0, 2], got {self.temperature!r}")

    @property
    def meta(self) -> MetaPromptConfig:
        return MetaPromptConfig(n_proposals=self.n_proposals, max_words=self.max_words,
                                max_history=self.max_history, style=self.style,
                                show_classnames=self.show_classnames, without_filler=self.without_filler,
                                class_word=self.class_word)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "LLMOptimizerConfig":
        check_known_keys(data, (f.name for f in fields(cls)), "LLM optimizer settings")
        return cls(**dict(data))


@dataclass(frozen=True)
class LLMRound:
    """One LLM round (``samples`` calls): the first request (plain data, no credentials), the replies
    of all calls, and the outcome. ``index`` is 0-based."""

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
    n_calls: int = 1
    seeds: tuple[int | None, ...] = ()

    @property
    def empty(self) -> bool:
        """True when the round produced no proposal (empty completion or nothing valid)."""
        return not self.proposal_ids

    @property
    def empty_completion(self) -> bool:
        return all(not r.strip() for r in self.replies)

    @property
    def meta_prompt(self) -> str:
        """The rendered meta-prompt as the LLM saw it (chat messages joined by blank lines)."""
        if self.request.get("prompt") is not None:
            return str(self.request["prompt"])
        return "\n\n".join(f"[{m['role']}]\n{m['content']}" for m in self.request.get("messages") or ())

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
            "n_calls": self.n_calls,
            "seeds": list(self.seeds),
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
            notes=tuple(data["notes"]),
            prompt_tokens=data["prompt_tokens"],
            completion_tokens=data["completion_tokens"],
            latency_s=float(data["latency_s"]),
            history_size=int(data["history_size"]),
            n_calls=int(data["n_calls"]),
            seeds=tuple(data["seeds"]),
        )


def _as_scored(item: Any, i: int) -> ScoredTemplate:
    if isinstance(item, ScoredTemplate):
        return item
    if isinstance(item, Candidate):
        if not item.scored:
            raise ValueError(f"history[{i}] is candidate {item.id!r} without a score")
        return ScoredTemplate(item.template, float(item.loss), float(item.accuracy), source=f"{item.source.value}:{item.id}")  # type: ignore[arg-type]
    raise ValueError(f"history[{i}] must be a ScoredTemplate or a scored Candidate, got {type(item).__name__}: {item!r}")


class LLMPromptOptimizer:
    """Ask an LLM for new templates from scored ones; keep candidates and rounds as inspectable data.

    Settings are an :class:`LLMOptimizerConfig` (pass ``config=`` or its fields as keywords). ``seed``
    (if given) is hashed with the round and call number, so successive rounds and other runs sample
    differently while a rerun (or a replay from a cassette) repeats exactly. ``style`` chooses the meta-prompt ("auto": chat
    messages for chat clients, a scored list for completion clients; "captions": bare lines for small
    base models).
    """

    def __init__(self, client: LLMClient, *, task: TaskDescription, config: LLMOptimizerConfig | None = None,
                 **settings: Any) -> None:
        if not isinstance(task, TaskDescription):
            raise ValueError(f"task must be a TaskDescription, got {type(task).__name__}")
        for attr in ("kind", "model", "complete"):
            if not hasattr(client, attr):
                raise ValueError(f"client must follow the LLMClient protocol (missing {attr!r}): {client!r}")
        if config is not None and settings:
            raise ValueError(f"pass either config= or settings, not both (got {sorted(settings)})")
        self.client = client
        self.task = task
        self.config = config if config is not None else LLMOptimizerConfig.from_dict(settings)
        self._proposals: dict[str, Candidate] = {}
        self._rounds: list[LLMRound] = []
        self._human_count = 0
        self._hooks = HookRegistry()

    @property
    def meta(self) -> MetaPromptConfig:
        return self.config.meta

    def __repr__(self) -> str:
        counts = {s.value: sum(p.status == s for p in self._proposals.values()) for s in Status}
        return (
            f"LLMPromptOptimizer(client={self.client!r}, rounds={len(self._rounds)}, "
            + ", ".join(f"{k}={v}" for k, v in counts.items() if v) + ")"
        )

    # ---- reading ----------------------------------------------------------------------------
    @property
    def proposals(self) -> tuple[Candidate, ...]:
        return tuple(self._proposals.values())

    @property
    def rounds(self) -> tuple[LLMRound, ...]:
        return tuple(self._rounds)

    def get(self, proposal_id: str) -> Candidate:
        try:
            return self._proposals[proposal_id]
        except KeyError:
            raise KeyError(f"no proposal with id {proposal_id!r} (known: {list(self._proposals)[:10]})") from None

    def by_status(self, status: Status | str) -> tuple[Candidate, ...]:
        try:
            status = Status(status)
        except ValueError:
            raise ValueError(f"status must be one of {[s.value for s in Status]}, got {status!r}") from None
        return tuple(p for p in self._proposals.values() if p.status == status)

    @property
    def pending(self) -> tuple[Candidate, ...]:
        return self.by_status(Status.PENDING)

    @property
    def approved(self) -> tuple[Candidate, ...]:
        return self.by_status(Status.APPROVED)

    @property
    def scored(self) -> tuple[Candidate, ...]:
        return tuple(p for p in self._proposals.values() if p.scored)

    def best(self) -> Candidate | None:
        """The scored proposal with the lowest loss (ties: higher accuracy, then the earliest), or ``None``."""
        return best_candidate(self._proposals.values())

    def scored_history(self) -> tuple[ScoredTemplate, ...]:
        """Scored proposals as :class:`ScoredTemplate`, to feed into the next ``ask``."""
        return tuple(_as_scored(p, i) for i, p in enumerate(self.scored))

    # ---- hooks ------------------------------------------------------------------------------
    def register_llm_round_hook(self, hook: RoundHook) -> RemovableHandle:
        """Call ``hook(optimizer, round)`` after every recorded round; ``handle.remove()`` unregisters it."""
        return self._hooks.register(hook)

    # ---- asking -----------------------------------------------------------------------------
    def _requests(self, history: Sequence[ScoredTemplate], index: int) -> list[LLMRequest]:
        c = self.config
        calls, n = (1, c.samples * c.n) if c.batch_samples else (c.samples, c.n)
        out = []
        for i in range(calls):
            seed = None if c.seed is None else sampling_seed(c.seed, index, i)
            out.append(build_request(
                history, self.task, client_kind=self.client.kind, model=self.client.model, config=c.meta,
                temperature=c.temperature, top_p=c.top_p, max_tokens=c.max_tokens, n=n, seed=seed,
            ))
        return out

    def build_request(self, history: Sequence[Any]) -> LLMRequest:
        """The (first) request the next ``ask(history)`` will send (for inspection; sends nothing)."""
        return self._requests(self._check_history(history), self._next_index())[0]

    def _next_index(self) -> int:
        return self._rounds[-1].index + 1 if self._rounds else 0

    @staticmethod
    def _check_history(history: Iterable[Any]) -> list[ScoredTemplate]:
        return [_as_scored(item, i) for i, item in enumerate(history)]

    def _tried_texts(self, history: Sequence[ScoredTemplate]) -> list[str]:
        texts = [h.template for h in history]
        if self.meta.without_filler:  # the shown (cleaned) form is not new either
            texts += [hide_filler(h.template) for h in history]
        for p in self._proposals.values():
            texts.append(p.template)
            texts.append(p.original)
            texts.extend(p.edits)
        return texts

    def ask(self, history: Sequence[Any], *, round: int | None = None) -> tuple[Candidate, ...]:
        """One LLM round: returns this round's new pending proposals (possibly none).

        ``history`` holds :class:`ScoredTemplate` or scored :class:`Candidate` records. ``round`` labels
        the round (default: one after the last); a caller that skips rounds (e.g. the catalyst after an
        LLM fault) passes its own index so ids stay aligned with its rounds.

        Raises the client's :class:`~catalyst_nb.llm.errors.LLMError` on a failed call, leaving the
        optimizer unchanged.
        """
        history = self._check_history(history)
        index = self._next_index() if round is None else int(round)
        if any(r.index == index for r in self._rounds) or (self._rounds and index < self._rounds[-1].index):
            raise ValueError(f"round {index} is not after the last recorded round {self._rounds[-1].index}")
        requests = self._requests(history, index)
        responses = [self.client.complete(r) for r in requests]  # may raise: nothing has changed yet
        return self._commit_round(history, requests, responses, index)

    def _commit_round(self, history: list[ScoredTemplate], requests: list[LLMRequest],
                      responses: list[LLMResponse], index: int) -> tuple[Candidate, ...]:
        tried = self._tried_texts(history)
        cap = None if self.config.keep_surplus else self.meta.n_proposals
        kept: list[tuple[str, str]] = []
        rejected: list[RejectedLine] = []
        notes: list[str] = []
        texts = [t for response in responses for t in response.texts]
        for reply in texts:
            left = None if cap is None else max(cap - len(kept), 0)
            result = parse_proposals(
                reply, max_words=self.meta.max_words, classnames=self.task.classnames,
                tried=tried + [t for t, _ in kept], max_proposals=left,
            )
            kept.extend((text, reply) for text in result.proposals)
            rejected.extend(result.rejected)
            notes.extend(result.notes)
        if all(not t.strip() for t in texts):
            notes.append("empty completion")
        new = [
            Candidate(id=f"r{index}-{j}", template=text, source=Source.LLM, round=index, raw_reply=reply)
            for j, (text, reply) in enumerate(kept)
        ]

        def total(attr: str) -> int | None:
            values = [getattr(r, attr) for r in responses]
            return None if any(v is None for v in values) else sum(values)

        record = LLMRound(
            index=index,
            request_key=request_key(requests[0]),
            request=requests[0].to_dict(),
            replies=tuple(texts),
            proposal_ids=tuple(p.id for p in new),
            rejected=tuple(rejected),
            notes=tuple(notes),
            prompt_tokens=total("prompt_tokens"),
            completion_tokens=total("completion_tokens"),
            latency_s=sum(r.latency_s for r in responses),
            history_size=len(history),
            n_calls=len(responses),
            seeds=tuple(r.seed for r in requests),
        )
        self._rounds.append(record)
        for p in new:
            self._proposals[p.id] = p
        if not new:
            logger.info("LLM round %d gave no usable template (%d lines dropped)", index, len(rejected))
        self._hooks(self, record)
        return tuple(new)

    # ---- people -----------------------------------------------------------------------------
    def add_template(self, text: str, *, note: str = "", round: int | None = None) -> Candidate:
        """Add a person's own template as a pending proposal (id ``h1``, ``h2``, ...)."""
        text = check_template(text)
        key = normalize_template(text)
        for p in self._proposals.values():
            if normalize_template(p.template) == key:
                raise ValueError(f"template {text!r} is the same as proposal {p.id!r} ({p.template!r})")
        self._human_count += 1
        proposal = Candidate(id=f"h{self._human_count}", template=text, source=Source.HUMAN, round=round, note=note)
        self._proposals[proposal.id] = proposal
        return proposal

    def revise(self, proposal_id: str, text: str) -> Candidate:
        """Replace a pending or approved proposal's text, keeping the earlier text in ``edits``."""
        p = self.get(proposal_id)
        if p.status not in (Status.PENDING, Status.APPROVED):
            raise ValueError(f"cannot revise proposal {proposal_id!r} with status {p.status.value!r}")
        text = check_template(text)
        if text == p.template:
            return p
        updated = replace(p, template=text, edits=p.edits + (p.template,))
        self._proposals[proposal_id] = updated
        return updated

    def mark_approved(self, proposal_id: str) -> Candidate:
        """Set a proposal's status to ``approved``: marked for scoring (also un-rejects); a scored proposal
        cannot change.  (Not the catalyst's ``approve``, which decides a restart.)"""
        p = self.get(proposal_id)
        if p.scored:
            raise ValueError(f"proposal {proposal_id!r} is already scored")
        updated = replace(p, status=Status.APPROVED, note="" if p.status == Status.REJECTED else p.note)
        self._proposals[proposal_id] = updated
        return updated

    def mark_rejected(self, proposal_id: str, *, reason: str = "") -> Candidate:
        """Set a proposal's status to ``rejected`` (never scored unless marked approved again)."""
        p = self.get(proposal_id)
        if p.scored:
            raise ValueError(f"proposal {proposal_id!r} is already scored")
        updated = replace(p, status=Status.REJECTED, note=reason)
        self._proposals[proposal_id] = updated
        return updated

    def mark(self, proposal_id: str, status: Status | str, *, note: str | None = None) -> Candidate:
        """Set a proposal's status (e.g. ``chosen`` once a restart used it)."""
        p = self.get(proposal_id)
        updated = replace(p, status=Status(status), note=p.note if note is None else note)
        self._proposals[proposal_id] = updated
        return updated

    # ---- scores -----------------------------------------------------------------------------
    def tell(self, scores: Mapping[str, Any]) -> tuple[Candidate, ...]:
        """Record ``{id: (loss, accuracy)}``, ``{id: ScoredTemplate}`` or ``{id: Candidate}`` (a scored
        copy, e.g. with its as-loaded and raw scores); all or nothing."""
        checked: dict[str, Candidate] = {}
        for pid, score in scores.items():
            p = self.get(pid)
            if p.status == Status.REJECTED:
                raise ValueError(f"proposal {pid!r} was rejected; mark_approved it before scoring")
            if p.scored:
                raise ValueError(f"proposal {pid!r} is already scored (loss {p.loss})")
            if isinstance(score, Candidate):
                if not score.scored:
                    raise ValueError(f"score for {pid!r} is a candidate without a score")
                checked[pid] = p.with_score(score.loss, score.accuracy, raw_loss=score.raw_loss,  # type: ignore[arg-type]
                                            raw_accuracy=score.raw_accuracy, loaded=score.loaded)
                continue
            if isinstance(score, ScoredTemplate):
                loss, accuracy = score.loss, score.accuracy
            else:
                try:
                    loss, accuracy = score
                except (TypeError, ValueError):
                    raise ValueError(f"score for {pid!r} must be (loss, accuracy), got {score!r}") from None
            checked[pid] = p.with_score(*check_score(pid, loss, accuracy))
        self._proposals.update(checked)
        return tuple(checked.values())

    def score(self, fn: Callable[[str], Any], *, ids: Iterable[str] | None = None) -> tuple[Candidate, ...]:
        """Score proposals with ``fn(template) -> (loss, accuracy)``; default: all pending and approved.

        All scores are computed before any is recorded, so an exception in ``fn`` changes nothing.
        """
        if ids is None:
            targets = [p.id for p in self._proposals.values() if p.status in (Status.PENDING, Status.APPROVED)]
        else:
            targets = list(ids)
        scores = {pid: fn(self.get(pid).template) for pid in targets}
        return self.tell(scores)

    # ---- state ------------------------------------------------------------------------------
    def _identity(self) -> dict[str, Any]:
        return {"task": {"dataset": self.task.dataset, "images": self.task.images,
                         "classnames": list(self.task.classnames)}}

    def state_dict(self) -> dict[str, Any]:
        """Plain-dict state (JSON-ready). Holds no client, URL or key: only the client's kind and model."""
        return pack_state(optimizer="LLMPromptOptimizer", version=_STATE_VERSION, config=asdict(self.config),
                          identity=self._identity(), state={
                              "client": {"kind": self.client.kind, "model": self.client.model},
                              "proposals": [p.to_dict() for p in self._proposals.values()],
                              "rounds": [r.to_dict() for r in self._rounds],
                              "human_count": self._human_count,
                          })

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore proposals and rounds made under the same task (class names included) and settings.

        Everything is checked before anything changes: a bad state leaves the optimizer as it was.
        """
        self._apply_state(self._validate_state(state))

    def _validate_state(self, state: Mapping[str, Any]) -> tuple[list[Candidate], list[LLMRound], int]:
        """Every check of :meth:`load_state_dict`; returns what to apply, changes nothing."""
        entries = check_state(state, optimizer="LLMPromptOptimizer", version=_STATE_VERSION, keys=_STATE_KEYS,
                              config=asdict(self.config), identity=self._identity())
        if not isinstance(entries["proposals"], list) or not isinstance(entries["rounds"], list):
            raise StateError("LLMPromptOptimizer state is damaged: proposals and rounds must be lists")
        try:
            proposals = [Candidate.from_dict(p) for p in entries["proposals"]]
            rounds = [LLMRound.from_dict(r) for r in entries["rounds"]]
            human_count = int(entries["human_count"])
        except (KeyError, TypeError, ValueError) as exc:
            raise StateError(f"LLMPromptOptimizer state is damaged: {exc}") from None
        ids = [p.id for p in proposals]
        if len(set(ids)) != len(ids):
            raise StateError("LLMPromptOptimizer state has duplicate proposal ids")
        return proposals, rounds, human_count

    def _apply_state(self, checked: tuple[list[Candidate], list[LLMRound], int]) -> None:
        proposals, rounds, human_count = checked
        self._proposals = {p.id: p for p in proposals}
        self._rounds = rounds
        self._human_count = human_count
