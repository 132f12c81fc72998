"""An OpenAI-compatible completions server whose ``n`` choices are decoded as one batch.

    python -m catalyst_nb.llm.batch_server --model FILE.gguf [--alias NAME] [--port N] [--n-ctx 2048]
                                            [--n-threads N] [--max-choices 8]

Serves ``GET /v1/models`` and ``POST /v1/completions`` (``prompt`` as a string or a one-string list,
``n``, ``seed``, ``temperature``, ``top_p``, ``max_tokens``, ``stop``; no streaming, no log-probabilities)
with :class:`~catalyst_nb.llm.batch_decoding.BatchDecoder`.  Why our own server: llama-cpp-python's answers
one request at a time and ignores ``n``, so a round of 8 samples costs 8 calls; here it is one call whose
8 choices share every decoding step.  The standard library's HTTP server is enough for one local client
at a time (a lock serialises decoding; each connection has its own thread, so an idle keep-alive
connection never blocks another client).  The launcher (:class:`~catalyst_nb.llm.launcher.LocalLLMServer`)
starts it in its own process; bad requests get the OpenAI error shape with status 400.
"""

from __future__ import annotations

import argparse
import json
import signal
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Sequence

from .batch_decoding import DEFAULT_MAX_TOKENS, DEFAULT_TEMPERATURE, DEFAULT_TOP_P, BatchDecoder, SamplingParams

__all__ = ["main", "parse_completion_request", "serve"]

# The most choices one request may ask for (each costs cache room and a sampler).
MAX_N = 64


class RequestError(ValueError):
    """A request the server cannot answer as asked (status 400)."""


def _number(body: dict[str, Any], name: str, default: Any, kind: type) -> Any:
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and not isinstance(value, int)):
        raise RequestError(f"{name} must be a{'n integer' if kind is int else ' number'}, got {value!r}")
    return kind(value)


def parse_completion_request(body: Any) -> tuple[str, int, SamplingParams]:
    """The prompt, ``n`` and sampling settings of a ``/v1/completions`` body; :class:`RequestError` when
    it asks for something this server does not do."""
    if not isinstance(body, dict):
        raise RequestError("the request body must be a JSON object")
    if body.get("stream"):
        raise RequestError("streaming is not supported by this server")
    if body.get("logprobs") is not None or body.get("echo"):
        raise RequestError("logprobs and echo are not supported by this server")
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1:
        prompt = prompt[0]
    if not isinstance(prompt, str) or not prompt:
        raise RequestError("prompt must be a non-empty string (one prompt per request)")
    n = _number(body, "n", 1, int)
    if not 1 <= n <= MAX_N:
        raise RequestError(f"n must be in 1..{MAX_N}, got {n}")
    stop = body.get("stop")
    if stop is None:
        stop = ()
    elif isinstance(stop, str):
        stop = (stop,)
    elif isinstance(stop, list) and all(isinstance(s, str) for s in stop):
        stop = tuple(stop)
    else:
        raise RequestError(f"stop must be a string or a list of strings, got {stop!r}")
    seed = _number(body, "seed", None, int)
    try:
        params = SamplingParams(
            max_tokens=_number(body, "max_tokens", DEFAULT_MAX_TOKENS, int),
            temperature=_number(body, "temperature", DEFAULT_TEMPERATURE, float),
            top_p=_number(body, "top_p", DEFAULT_TOP_P, float),
            stop=stop, seed=seed,
        )
    except ValueError as exc:
        raise RequestError(str(exc)) from None
    return prompt, n, params


def _handler(decoder: BatchDecoder, alias: str, lock: threading.Lock) -> type[BaseHTTPRequestHandler]:

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: the openai client reuses its connection

        def log_message(self, format: str, *args: Any) -> None:  # no access log on the terminal
            return None

        def _send(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _error(self, status: int, message: str, kind: str = "invalid_request_error") -> None:
            self._send(status, {"error": {"message": message, "type": kind, "param": None, "code": None}})

        def do_GET(self) -> None:
            if self.path.rstrip("/") == "/v1/models":
                self._send(200, {"object": "list", "data": [{"id": alias, "object": "model", "owned_by": "local"}]})
            else:
                self._error(404, f"no route {self.path}; this server serves /v1/models and /v1/completions")

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            if self.path.rstrip("/") != "/v1/completions":
                self._error(404, f"no route {self.path}; this server serves /v1/completions only (no chat)")
                return
            try:
                prompt, n, params = parse_completion_request(json.loads(raw or b"null"))
                with lock:
                    choices, prompt_tokens = decoder.complete(prompt, n, params)
            except json.JSONDecodeError as exc:
                self._error(400, f"the request body is not JSON: {exc}")
                return
            except (RequestError, ValueError) as exc:
                self._error(400, str(exc))
                return
            except Exception as exc:  # noqa: BLE001 - a decoding fault is the server's, not the request's
                self._error(500, f"{type(exc).__name__}: {exc}", "server_error")
                return
            completion_tokens = sum(c.completion_tokens for c in choices)
            self._send(200, {
                "id": f"cmpl-{uuid.uuid4().hex}", "object": "text_completion", "created": int(time.time()),
                "model": alias,
                "choices": [{"index": i, "text": c.text, "logprobs": None, "finish_reason": c.finish_reason}
                            for i, c in enumerate(choices)],
                "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                          "total_tokens": prompt_tokens + completion_tokens},
            })

    return Handler


def serve(decoder: BatchDecoder, alias: str, host: str, port: int,
          lock: threading.Lock | None = None) -> ThreadingHTTPServer:
    """An HTTP server for ``decoder`` bound to ``host:port`` (call ``serve_forever`` on it); ``lock`` is
    held while the decoder works (hold it to free the decoder safely)."""
    server = ThreadingHTTPServer((host, port), _handler(decoder, alias, lock or threading.Lock()))
    server.daemon_threads = True
    return server


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m catalyst_nb.llm.batch_server", description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="a GGUF file")
    parser.add_argument("--alias", default="local", help="model name the server answers to")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--n-ctx", type=int, default=2048, help="cache size in tokens, shared by a request's choices")
    parser.add_argument("--n-threads", type=int, default=None, help="CPU threads (default: every CPU)")
    parser.add_argument("--max-choices", type=int, default=8, help="choices decoded in one batch")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # SIGTERM (the launcher's stop) ends serve_forever through KeyboardInterrupt, so the model is freed.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        decoder = BatchDecoder(args.model, n_ctx=args.n_ctx, n_threads=args.n_threads, max_choices=args.max_choices)
    except (ValueError, OSError) as exc:
        parser.exit(2, f"error: {exc}\n")  # to stderr, where the launcher's log tail shows it
    lock = threading.Lock()
    try:
        server = serve(decoder, args.alias, args.host, args.port, lock)
    except OSError as exc:
        decoder.close()
        parser.exit(2, f"error: cannot listen on {args.host}:{args.port}: {exc}\n")
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        with lock:  # a request still decoding finishes before the model is freed under it
            decoder.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
