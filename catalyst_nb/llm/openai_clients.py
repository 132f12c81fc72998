"""OpenAI-compatible clients (chat completions and legacy completions) through the ``openai`` SDK.

Any ``base_url`` works: the OpenAI API, vLLM, Ollama, llama.cpp's server. Timeouts and retries are the
SDK's own (``timeout=``, ``max_retries=``); we only translate its exceptions into our typed errors so
that callers never need to import ``openai``. The key is handed to the SDK and kept nowhere else: not
in ``repr``, not in requests or responses, and it is redacted from any server text we keep.
"""

from __future__ import annotations

import json
import logging
import os
import time
from typing import Any

from .client import LLMRequest, LLMResponse, check_request_kind
from .errors import (
    LLMAuthError,
    LLMConnectionError,
    LLMError,
    LLMRateLimitError,
    LLMRequestError,
    LLMResponseError,
    LLMServerError,
    LLMTimeoutError,
)

__all__ = ["OpenAIChatClient", "OpenAICompletionClient", "map_openai_error"]

logger = logging.getLogger(__name__)

_REDACTED = "***"


def _redact(text: str, secret: str | None) -> str:
    if secret and len(secret) >= 4:
        text = text.replace(secret, _REDACTED)
    return text


def map_openai_error(exc: BaseException, *, where: str, secret: str | None = None) -> LLMError:
    """Translate an ``openai`` SDK exception into our typed error (``where`` names model and URL)."""
    import openai

    status = getattr(exc, "status_code", None)
    detail = _redact(str(exc), secret)
    if len(detail) > 300:
        detail = detail[:300] + "..."
    if isinstance(exc, openai.APITimeoutError):
        return LLMTimeoutError(f"{where}: the server did not answer in time")
    if isinstance(exc, openai.APIConnectionError):
        return LLMConnectionError(f"{where}: could not connect to the server ({detail})")
    if isinstance(exc, (openai.AuthenticationError, openai.PermissionDeniedError)):
        return LLMAuthError(f"{where}: the server refused the credentials (HTTP {status})", status_code=status)
    if isinstance(exc, openai.RateLimitError):
        return LLMRateLimitError(f"{where}: rate limited (HTTP {status}): {detail}", status_code=status)
    if isinstance(exc, openai.APIStatusError):
        if status is not None and status >= 500:
            return LLMServerError(f"{where}: server error (HTTP {status}): {detail}", status_code=status)
        return LLMRequestError(f"{where}: request rejected (HTTP {status}): {detail}", status_code=status)
    if isinstance(exc, openai.APIResponseValidationError):
        return LLMResponseError(f"{where}: malformed response: {detail}", status_code=status)
    return LLMError(f"{where}: {type(exc).__name__}: {detail}", status_code=status)


class _OpenAIClientBase:
    """Shared construction, error mapping and response reading of the two SDK-backed clients."""

    kind: str = ""

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float = 60.0,
        max_retries: int = 2,
        default_headers: dict[str, str] | None = None,
    ) -> None:
        import openai

        if not isinstance(model, str) or not model:
            raise ValueError(f"model must be a non-empty str, got {model!r}")
        if timeout <= 0:
            raise ValueError(f"timeout must be > 0 seconds, got {timeout!r}")
        if max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {max_retries!r}")
        self.model = model
        self.base_url = base_url or os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1"
        key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        if not key:
            raise LLMAuthError(
                f"no API key for {type(self).__name__}(model={model!r}, base_url={self.base_url!r}): "
                "pass api_key=... or set OPENAI_API_KEY (a local server without auth accepts any "
                "placeholder such as api_key='EMPTY')"
            )
        self._secret = key
        self.timeout = float(timeout)
        self.max_retries = int(max_retries)
        self._sdk = openai.OpenAI(
            api_key=key,
            base_url=self.base_url,
            timeout=self.timeout,
            max_retries=self.max_retries,
            default_headers=default_headers,
        )

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(model={self.model!r}, base_url={self.base_url!r}, "
            f"timeout={self.timeout!r}, max_retries={self.max_retries!r})"
        )

    def __getstate__(self) -> None:
        raise TypeError(f"{type(self).__name__} holds credentials and is not picklable; pickle its settings instead")

    def _where(self) -> str:
        return f"{type(self).__name__} model={self.model!r} at {self.base_url}"

    def complete(self, request: LLMRequest) -> LLMResponse:
        """Send ``request``; raise a typed :class:`LLMError` subclass on any failure."""
        import openai

        check_request_kind(self.kind, request)
        if request.model != self.model:
            logger.debug("request model %r differs from client model %r; sending the request's", request.model, self.model)
        start = time.perf_counter()
        # The SDK's exception holds the HTTP request, headers and key included.  Raising our error inside
        # the except block would keep it as __context__ (``from None`` only hides it from tracebacks), so
        # the error is built there and raised after the block, with no link to the SDK's exception.
        failure: LLMError | None = None
        try:
            raw = self._send(request)
        except openai.OpenAIError as exc:
            failure = map_openai_error(exc, where=self._where(), secret=self._secret)
        except json.JSONDecodeError as exc:  # a garbage body declared as JSON
            failure = LLMResponseError(
                f"{self._where()}: the server's reply is not valid JSON ({_redact(str(exc), self._secret)})"
            )
        if failure is not None:
            raise failure
        latency = time.perf_counter() - start
        response = self._read(raw, latency)
        logger.debug(
            "%s: %d choice(s), %s+%s tokens, %.3f s",
            self._where(), len(response.texts), response.prompt_tokens, response.completion_tokens, latency,
        )
        return response

    def _send(self, request: LLMRequest) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError

    def _choice_text(self, choice: Any) -> str | None:  # pragma: no cover - overridden
        raise NotImplementedError

    def _read(self, raw: Any, latency: float) -> LLMResponse:
        where = self._where()
        choices = getattr(raw, "choices", None)
        if not isinstance(choices, list) or not choices:
            shown = _redact(repr(raw), self._secret)[:200]
            raise LLMResponseError(f"{where}: the reply has no choices: {shown}")
        texts: list[str] = []
        reasons: list[str | None] = []
        for choice in choices:
            try:
                text = self._choice_text(choice)
            except AttributeError:
                raise LLMResponseError(f"{where}: a choice has no text: {_redact(repr(choice), self._secret)[:200]}") from None
            texts.append(text if isinstance(text, str) else "")
            reason = getattr(choice, "finish_reason", None)
            reasons.append(reason if isinstance(reason, str) else None)
        usage = getattr(raw, "usage", None)
        prompt_tokens = getattr(usage, "prompt_tokens", None) if usage is not None else None
        completion_tokens = getattr(usage, "completion_tokens", None) if usage is not None else None
        model = getattr(raw, "model", None)
        return LLMResponse(
            texts=tuple(texts),
            model=model if isinstance(model, str) else self.model,
            prompt_tokens=prompt_tokens if isinstance(prompt_tokens, int) else None,
            completion_tokens=completion_tokens if isinstance(completion_tokens, int) else None,
            latency_s=latency,
            finish_reasons=tuple(reasons),
        )


class OpenAIChatClient(_OpenAIClientBase):
    """Chat completions (``/v1/chat/completions``) for instruction-tuned models.

    ``max_tokens_field`` names the parameter that carries ``max_tokens``: "max_tokens" for most
    servers, "max_completion_tokens" for OpenAI models that reject the older name.
    """

    kind = "chat"

    def __init__(self, model: str, *, max_tokens_field: str = "max_tokens", **kwargs: Any) -> None:
        if max_tokens_field not in ("max_tokens", "max_completion_tokens"):
            raise ValueError(
                f"max_tokens_field must be 'max_tokens' or 'max_completion_tokens', got {max_tokens_field!r}"
            )
        super().__init__(model, **kwargs)
        self.max_tokens_field = max_tokens_field

    def _send(self, request: LLMRequest) -> Any:
        kwargs = request.sampling_kwargs()
        if "max_tokens" in kwargs and self.max_tokens_field != "max_tokens":
            kwargs[self.max_tokens_field] = kwargs.pop("max_tokens")
        messages = [{"role": m.role, "content": m.content} for m in request.messages or ()]
        return self._sdk.chat.completions.create(model=request.model, messages=messages, **kwargs)

    def _choice_text(self, choice: Any) -> str | None:
        return choice.message.content


class OpenAICompletionClient(_OpenAIClientBase):
    """Legacy text completions (``/v1/completions``) for base models that continue a prompt."""

    kind = "completion"

    def _send(self, request: LLMRequest) -> Any:
        return self._sdk.completions.create(model=request.model, prompt=request.prompt, **request.sampling_kwargs())

    def _choice_text(self, choice: Any) -> str | None:
        return choice.text
