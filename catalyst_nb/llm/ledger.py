"""Usage ledger and budget: what the LLM calls cost, and a hard stop before they cost too much.

:class:`MeteredClient` wraps any client. Before each call it checks the :class:`Budget` and raises
:class:`BudgetExceeded` instead of calling once calls or tokens are spent; after each call (successful
or not) it appends a :class:`CallRecord` to the :class:`UsageLedger`. Costs are computed only where a
price table is given, in currency units per million tokens, because prices change and differ per
server; a local server costs nothing and should not pretend otherwise.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any, Mapping

from .client import LLMClient, LLMRequest, LLMResponse, request_key
from .errors import BudgetExceeded, LLMError

__all__ = ["Budget", "CallRecord", "MeteredClient", "Price", "UsageLedger"]


@dataclass(frozen=True)
class Price:
    """Price per million prompt (input) and completion (output) tokens."""

    prompt_per_million: float
    completion_per_million: float

    def __post_init__(self) -> None:
        if self.prompt_per_million < 0 or self.completion_per_million < 0:
            raise ValueError(f"prices must be >= 0, got {self}")

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (prompt_tokens * self.prompt_per_million + completion_tokens * self.completion_per_million) / 1e6


@dataclass(frozen=True)
class CallRecord:
    """One call as the ledger saw it; ``error`` is the error class name of a failed call."""

    model: str
    kind: str
    request_key: str
    prompt_tokens: int
    completion_tokens: int
    latency_s: float
    cost: float | None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class Budget:
    """Upper limits; ``None`` means unlimited. Checked before each call, so one call can overrun
    ``max_tokens`` by at most its own size; ``max_calls`` is never exceeded."""

    max_calls: int | None = None
    max_tokens: int | None = None

    def __post_init__(self) -> None:
        for name in ("max_calls", "max_tokens"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 0):
                raise ValueError(f"Budget.{name} must be an int >= 0 or None, got {value!r}")

    def check(self, ledger: UsageLedger) -> None:
        """Raise :class:`BudgetExceeded` if one more call would break the budget."""
        if self.max_calls is not None and ledger.calls >= self.max_calls:
            raise BudgetExceeded(
                f"LLM budget spent: {ledger.calls} of max_calls={self.max_calls} calls made "
                f"({ledger.total_tokens} tokens); no further calls"
            )
        if self.max_tokens is not None and ledger.total_tokens >= self.max_tokens:
            raise BudgetExceeded(
                f"LLM budget spent: {ledger.total_tokens} of max_tokens={self.max_tokens} tokens used "
                f"in {ledger.calls} calls; no further calls"
            )


class UsageLedger:
    """Append-only list of :class:`CallRecord` with totals; saved and loaded as plain dicts."""

    def __init__(self, prices: Mapping[str, Price] | None = None) -> None:
        self.prices: dict[str, Price] = dict(prices or {})
        self._records: list[CallRecord] = []

    def __repr__(self) -> str:
        return f"UsageLedger(calls={self.calls}, tokens={self.total_tokens}, cost={self.cost})"

    @property
    def records(self) -> tuple[CallRecord, ...]:
        return tuple(self._records)

    @property
    def calls(self) -> int:
        return len(self._records)

    @property
    def failed_calls(self) -> int:
        return sum(not r.ok for r in self._records)

    @property
    def prompt_tokens(self) -> int:
        return sum(r.prompt_tokens for r in self._records)

    @property
    def completion_tokens(self) -> int:
        return sum(r.completion_tokens for r in self._records)

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @property
    def latency_s(self) -> float:
        return sum(r.latency_s for r in self._records)

    @property
    def cost(self) -> float | None:
        """Total cost, or ``None`` when no call had a price."""
        costs = [r.cost for r in self._records if r.cost is not None]
        return sum(costs) if costs else None

    def record(self, request: LLMRequest, response: LLMResponse | None, *, latency_s: float, error: BaseException | None = None) -> CallRecord:
        prompt_tokens = (response.prompt_tokens or 0) if response is not None else 0
        completion_tokens = (response.completion_tokens or 0) if response is not None else 0
        price = self.prices.get(request.model)
        cost = price.cost(prompt_tokens, completion_tokens) if price is not None else None
        rec = CallRecord(
            model=request.model,
            kind=request.kind,
            request_key=request_key(request),
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            latency_s=response.latency_s if response is not None else latency_s,
            cost=cost,
            error=None if error is None else type(error).__name__,
        )
        self._records.append(rec)
        return rec

    def summary(self) -> dict[str, Any]:
        """Totals as plain data (for a table or a plot)."""
        return {
            "calls": self.calls,
            "failed_calls": self.failed_calls,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
            "latency_s": self.latency_s,
            "cost": self.cost,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": 1,
            "prices": {m: asdict(p) for m, p in sorted(self.prices.items())},
            "records": [asdict(r) for r in self._records],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> UsageLedger:
        if data.get("version") != 1:
            raise ValueError(f"unsupported ledger version {data.get('version')!r}")
        ledger = cls({m: Price(**p) for m, p in data.get("prices", {}).items()})
        ledger._records = [CallRecord(**r) for r in data.get("records", [])]
        return ledger


class MeteredClient:
    """Wraps a client with a ledger and an optional budget (same ``kind`` and ``model``)."""

    def __init__(self, inner: LLMClient, *, ledger: UsageLedger | None = None, budget: Budget | None = None) -> None:
        self.inner = inner
        self.kind = inner.kind
        self.model = inner.model
        self.ledger = ledger if ledger is not None else UsageLedger()
        self.budget = budget

    def __repr__(self) -> str:
        return f"MeteredClient({self.inner!r}, {self.ledger!r}, budget={self.budget!r})"

    def complete(self, request: LLMRequest) -> LLMResponse:
        if self.budget is not None:
            self.budget.check(self.ledger)
        start = time.perf_counter()
        try:
            response = self.inner.complete(request)
        except LLMError as exc:
            self.ledger.record(request, None, latency_s=time.perf_counter() - start, error=exc)
            raise
        self.ledger.record(request, response, latency_s=response.latency_s)
        return response
