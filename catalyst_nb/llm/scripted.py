"""A client that answers from a script: unit tests and demos without any server.

Each call takes the next scripted item: a string (one choice), a sequence of strings (several
choices) or an exception instance (raised, to rehearse fault paths).  A request for ``n`` choices takes up
to ``n`` consecutive strings as its choices, so one script serves a round sent as ``n`` separate calls or
as one call of ``n`` choices alike.  The requests it received are kept in ``requests`` so tests can assert
on exactly what the optimizer sent.
"""

from __future__ import annotations

from typing import Iterable, Sequence, Union

from .client import LLMRequest, LLMResponse, check_kind, check_request_kind
from .errors import LLMError

__all__ = ["ScriptedClient"]

ScriptItem = Union[str, Sequence[str], BaseException]


def _count_words(text: str) -> int:
    return len(text.split())


class ScriptedClient:
    """Replies from a list, in order; running out is an :class:`LLMError` naming the call number.

    Token counts are whitespace word counts, so ledgers and budgets behave deterministically.
    """

    def __init__(
        self,
        replies: Iterable[ScriptItem],
        *,
        kind: str = "chat",
        model: str = "scripted",
        latency_s: float = 0.0,
    ) -> None:
        self.kind = check_kind(kind)
        if not model:
            raise ValueError(f"model must be a non-empty str, got {model!r}")
        self.model = model
        self.latency_s = float(latency_s)
        self._script: list[ScriptItem] = list(replies)
        for item in self._script:
            if not isinstance(item, (str, BaseException)) and not all(isinstance(t, str) for t in item):
                raise ValueError(f"script items must be str, a sequence of str or an exception, got {item!r}")
        self.requests: list[LLMRequest] = []
        self._next = 0  # the script's next item

    def __repr__(self) -> str:
        return f"ScriptedClient(kind={self.kind!r}, model={self.model!r}, left={self.remaining})"

    @property
    def remaining(self) -> int:
        return len(self._script) - self._next

    def complete(self, request: LLMRequest) -> LLMResponse:
        check_request_kind(self.kind, request)
        index = self._next
        if index >= len(self._script):
            raise LLMError(f"ScriptedClient has no reply left for call {len(self.requests) + 1} "
                           f"({len(self._script)} scripted)")
        self.requests.append(request)
        item = self._script[index]
        self._next += 1
        if isinstance(item, BaseException):
            raise item
        if isinstance(item, str):
            texts: tuple[str, ...] = (item,)
            while len(texts) < request.n and self._next < len(self._script) and isinstance(self._script[self._next], str):
                texts += (self._script[self._next],)  # type: ignore[operator]
                self._next += 1
        else:
            texts = tuple(item)
        if request.prompt is not None:
            prompt_words = _count_words(request.prompt)
        else:
            prompt_words = sum(_count_words(m.content) for m in request.messages or ())
        return LLMResponse(
            texts=texts,
            model=self.model,
            prompt_tokens=prompt_words,
            completion_tokens=sum(_count_words(t) for t in texts),
            latency_s=self.latency_s,
            finish_reasons=tuple("stop" for _ in texts),
        )
