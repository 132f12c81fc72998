"""The LLM layer: one client protocol, OpenAI-compatible clients, record/replay, usage accounting,
meta-prompts, the reply parser and the embedded local server launcher.

Importing this package imports neither ``openai`` nor ``llama_cpp``; clients load them when built.
"""

from __future__ import annotations

from .cassette import Cassette, CassetteEntry, RecordingClient, ReplayingClient, ResumingClient
from .client import ChatMessage, LLMClient, LLMRequest, LLMResponse, request_key
from .errors import (
    BudgetExceeded,
    LLMAuthError,
    LLMConnectionError,
    LLMError,
    LLMRateLimitError,
    LLMRequestError,
    LLMResponseError,
    LLMServerError,
    LLMTimeoutError,
    LocalServerError,
    ReplayMiss,
)
from .examples import FASHION_MNIST_TASK, example_fashion_mnist_history
from .history import ScoredTemplate, fill_template, normalize_template
from .launcher import LocalLLMServer, gguf_path
from .ledger import Budget, CallRecord, MeteredClient, Price, UsageLedger
from .meta_prompt import MetaPromptConfig, TaskDescription, build_request, caption_prompt, chat_messages, completion_prompt
from .optimizer import LLMOptimizerConfig, LLMPromptOptimizer, LLMRound
from .openai_clients import OpenAIChatClient, OpenAICompletionClient
from .parser import ParseResult, RejectedLine, parse_proposals
from .scripted import ScriptedClient

__all__ = [
    "BudgetExceeded",
    "FASHION_MNIST_TASK",
    "Budget",
    "CallRecord",
    "Cassette",
    "CassetteEntry",
    "ChatMessage",
    "LLMAuthError",
    "LLMOptimizerConfig",
    "LLMPromptOptimizer",
    "LLMRound",
    "LLMClient",
    "LLMConnectionError",
    "LLMError",
    "LLMRateLimitError",
    "LLMRequest",
    "LLMRequestError",
    "LLMResponse",
    "LLMResponseError",
    "LLMServerError",
    "LLMTimeoutError",
    "LocalLLMServer",
    "LocalServerError",
    "MetaPromptConfig",
    "MeteredClient",
    "OpenAIChatClient",
    "OpenAICompletionClient",
    "ParseResult",
    "Price",
    "RecordingClient",
    "RejectedLine",
    "ReplayMiss",
    "ReplayingClient",
    "ResumingClient",
    "ScoredTemplate",
    "ScriptedClient",
    "TaskDescription",
    "UsageLedger",
    "build_request",
    "caption_prompt",
    "chat_messages",
    "completion_prompt",
    "example_fashion_mnist_history",
    "fill_template",
    "gguf_path",
    "normalize_template",
    "parse_proposals",
    "request_key",
]
