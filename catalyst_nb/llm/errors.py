"""Typed errors of the LLM layer.

Callers (the optimizer, a notebook cell, the CLI) need to tell "the server is down" from "the key is
wrong" from "we spent the budget" without parsing messages, so every failure of an LLM call is one of
these classes. None of them ever carries an API key: messages are built by us from the model name, the
base URL and the server's status, and server-provided text is redacted before it is stored.
"""

from __future__ import annotations

__all__ = [
    "LLMError",
    "LLMConnectionError",
    "LLMTimeoutError",
    "LLMAuthError",
    "LLMRateLimitError",
    "LLMServerError",
    "LLMRequestError",
    "LLMResponseError",
    "BudgetExceeded",
    "ReplayMiss",
    "LocalServerError",
]


class LLMError(Exception):
    """Base class: an LLM call did not produce a usable response.

    ``status_code`` is the HTTP status where one was received, else ``None``.
    """

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class LLMConnectionError(LLMError):
    """The server could not be reached (down, refused connection, DNS, TLS)."""


class LLMTimeoutError(LLMConnectionError):
    """The server did not answer within the client's timeout (after the SDK's retries)."""


class LLMAuthError(LLMError):
    """The server refused the credentials (HTTP 401/403) or no key was configured."""


class LLMRateLimitError(LLMError):
    """The server asked us to slow down (HTTP 429) and the SDK's retries did not help."""


class LLMServerError(LLMError):
    """The server failed (HTTP 5xx)."""


class LLMRequestError(LLMError):
    """The server rejected the request itself (HTTP 400/404/422...): a wrong model name or parameter."""


class LLMResponseError(LLMError):
    """The server answered, but not with a well-formed completion (bad JSON, no choices)."""


class BudgetExceeded(LLMError):
    """A usage budget (calls or tokens) is spent; no further calls are made."""


class ReplayMiss(LLMError):
    """A replaying client was asked for a request that its cassette does not hold."""

    def __init__(self, message: str, *, request_key: str) -> None:
        super().__init__(message)
        self.request_key = request_key


class LocalServerError(LLMError):
    """The embedded local LLM server could not be started or did not become ready."""
