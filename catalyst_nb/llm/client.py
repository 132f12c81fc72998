"""The one small protocol every LLM client follows, and the request/response records it exchanges.

A client has a ``kind`` ("chat": takes messages; "completion": continues a plain prompt), a ``model``
name and one method, ``complete(request) -> response``. Requests and responses are frozen plain data so
that they can be hashed (record/replay), compared (tests) and written to JSON (cassettes, ledgers)
without any client object, base URL or key in them.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Protocol, runtime_checkable

__all__ = [
    "CLIENT_KINDS",
    "ChatMessage",
    "LLMRequest",
    "LLMResponse",
    "LLMClient",
    "request_key",
]

CLIENT_KINDS = ("chat", "completion")
_ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class ChatMessage:
    """One chat turn: ``role`` is "system", "user" or "assistant"."""

    role: str
    content: str

    def __post_init__(self) -> None:
        if self.role not in _ROLES:
            raise ValueError(f"ChatMessage role must be one of {_ROLES}, got {self.role!r}")
        if not isinstance(self.content, str):
            raise ValueError(f"ChatMessage content must be a str, got {type(self.content).__name__}")


@dataclass(frozen=True)
class LLMRequest:
    """Everything that determines a completion: exactly one of ``messages`` (chat) or ``prompt``.

    Sampling parameters left at ``None`` are not sent, so a server's own default applies; the ones
    that are set are sent verbatim (``seed`` only where the server supports it).
    """

    model: str
    messages: tuple[ChatMessage, ...] | None = None
    prompt: str | None = None
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    n: int = 1
    seed: int | None = None
    stop: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.model, str) or not self.model:
            raise ValueError(f"LLMRequest.model must be a non-empty str, got {self.model!r}")
        if (self.messages is None) == (self.prompt is None):
            raise ValueError("LLMRequest needs exactly one of messages (chat) or prompt (completion)")
        if self.messages is not None:
            messages = tuple(self.messages)
            if not messages or not all(isinstance(m, ChatMessage) for m in messages):
                raise ValueError("LLMRequest.messages must be a non-empty sequence of ChatMessage")
            object.__setattr__(self, "messages", messages)
        if self.stop is not None:
            stop = (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)
            object.__setattr__(self, "stop", stop)
        if self.temperature is not None and not (0.0 <= self.temperature <= 2.0):
            raise ValueError(f"temperature must be in [0, 2], got {self.temperature!r}")
        if self.top_p is not None and not (0.0 < self.top_p <= 1.0):
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p!r}")
        if self.max_tokens is not None and self.max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1, got {self.max_tokens!r}")
        if not isinstance(self.n, int) or self.n < 1:
            raise ValueError(f"n must be an int >= 1, got {self.n!r}")

    @property
    def kind(self) -> str:
        """"chat" for a messages request, "completion" for a prompt request."""
        return "chat" if self.messages is not None else "completion"

    def sampling_kwargs(self) -> dict[str, Any]:
        """The sampling parameters that are set, as keyword arguments for the openai SDK."""
        out: dict[str, Any] = {}
        for name in ("temperature", "top_p", "max_tokens", "seed"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        if self.n != 1:
            out["n"] = self.n
        if self.stop is not None:
            out["stop"] = list(self.stop)
        return out

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form; the input of :func:`request_key`."""
        return {
            "model": self.model,
            "messages": None
            if self.messages is None
            else [{"role": m.role, "content": m.content} for m in self.messages],
            "prompt": self.prompt,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "max_tokens": self.max_tokens,
            "n": self.n,
            "seed": self.seed,
            "stop": None if self.stop is None else list(self.stop),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LLMRequest:
        messages = data.get("messages")
        stop = data.get("stop")
        return cls(
            model=data["model"],
            messages=None if messages is None else tuple(ChatMessage(**m) for m in messages),
            prompt=data.get("prompt"),
            temperature=data.get("temperature"),
            top_p=data.get("top_p"),
            max_tokens=data.get("max_tokens"),
            n=data.get("n", 1),
            seed=data.get("seed"),
            stop=None if stop is None else tuple(stop),
        )

    def describe(self, width: int = 80) -> str:
        """A short human description, used in error messages (never contains credentials)."""
        text = self.prompt if self.prompt is not None else self.messages[-1].content  # type: ignore[index]
        flat = " ".join(text.split())
        if len(flat) > width:
            flat = "..." + flat[-(width - 3) :]
        return f"{self.kind} request to model {self.model!r} ending {flat!r}"


def request_key(request: LLMRequest) -> str:
    """A stable hash of the whole request (model, messages or prompt, sampling parameters).

    Canonical JSON (sorted keys, no whitespace, UTF-8) so that the key is the same across processes,
    Python versions and machines; the format version is part of the hashed payload.
    """
    payload = {"format": "catalyst_nb.llm.request/1", "request": request.to_dict()}
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class LLMResponse:
    """What came back: one text per choice, token usage where reported, and the call's latency."""

    texts: tuple[str, ...]
    model: str = ""
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    latency_s: float = 0.0
    finish_reasons: tuple[str | None, ...] = field(default=())

    def __post_init__(self) -> None:
        object.__setattr__(self, "texts", tuple(self.texts))
        object.__setattr__(self, "finish_reasons", tuple(self.finish_reasons))
        if not all(isinstance(t, str) for t in self.texts):
            raise ValueError("LLMResponse.texts must all be str")
        if not math.isfinite(self.latency_s) or self.latency_s < 0:
            raise ValueError(f"latency_s must be a finite number >= 0, got {self.latency_s!r}")

    @property
    def text(self) -> str:
        """The first choice's text ("" when there is none)."""
        return self.texts[0] if self.texts else ""

    @property
    def total_tokens(self) -> int:
        return (self.prompt_tokens or 0) + (self.completion_tokens or 0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "texts": list(self.texts),
            "model": self.model,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "latency_s": self.latency_s,
            "finish_reasons": list(self.finish_reasons),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LLMResponse:
        return cls(
            texts=tuple(data["texts"]),
            model=data.get("model", ""),
            prompt_tokens=data.get("prompt_tokens"),
            completion_tokens=data.get("completion_tokens"),
            latency_s=float(data.get("latency_s", 0.0)),
            finish_reasons=tuple(data.get("finish_reasons", ())),
        )


@runtime_checkable
class LLMClient(Protocol):
    """Anything that turns an :class:`LLMRequest` into an :class:`LLMResponse`.

    Implementations raise only :class:`~catalyst_nb.llm.errors.LLMError` subclasses for failed calls.
    """

    kind: str
    model: str

    def complete(self, request: LLMRequest) -> LLMResponse: ...


def check_kind(kind: str) -> str:
    if kind not in CLIENT_KINDS:
        raise ValueError(f"client kind must be one of {CLIENT_KINDS}, got {kind!r}")
    return kind


def check_request_kind(client_kind: str, request: LLMRequest) -> None:
    """Raise ``ValueError`` when a chat request is sent to a completion client or vice versa."""
    if request.kind != client_kind:
        raise ValueError(
            f"a {client_kind} client cannot send a {request.kind} request "
            f"({'messages' if request.kind == 'chat' else 'prompt'} given)"
        )

