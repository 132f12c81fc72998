"""A tiny OpenAI-compatible HTTP server on 127.0.0.1 for tests (stdlib only).

Two uses:
* in-process (``FakeOpenAIServer``): scripted HTTP answers (status, body, delay) so the real ``openai``
  SDK meets 401/429/500, garbage JSON, empty completions and slow replies;
* as a stand-in for ``python -m llama_cpp.server`` or ``python -m catalyst_nb.llm.batch_server``
  (``python fake_openai.py -m MODULE --port N ...``) to test the launcher's process handling without
  compiling llama.cpp.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # dict -> JSON, bytes -> raw
    content_type: str = "application/json"
    delay_s: float = 0.0


def completion_body(*texts: str, model: str = "fake-model", prompt_tokens: int = 11, completion_tokens: int = 7) -> dict:
    return {
        "id": "cmpl-1",
        "object": "text_completion",
        "created": 0,
        "model": model,
        "choices": [{"index": i, "text": t, "finish_reason": "stop", "logprobs": None} for i, t in enumerate(texts)],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": prompt_tokens + completion_tokens},
    }


def chat_body(*texts: str, model: str = "fake-model", prompt_tokens: int = 13, completion_tokens: int = 5) -> dict:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [
            {"index": i, "message": {"role": "assistant", "content": t}, "finish_reason": "stop"} for i, t in enumerate(texts)
        ],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": prompt_tokens + completion_tokens},
    }


class _Handler(BaseHTTPRequestHandler):
    server: "FakeOpenAIServer._HTTP"

    def _send(self, reply: Reply) -> None:
        if reply.delay_s:
            time.sleep(reply.delay_s)
        data = reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode()
        try:
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def do_GET(self) -> None:  # noqa: N802 - http.server API
        if self.path.rstrip("/").endswith("/models"):
            model_id = getattr(self.server.owner, "model_id", "fake-model")
            self._send(Reply(body={"object": "list", "data": [{"id": model_id, "object": "model"}]}))
            if getattr(self.server.owner, "exit_after_answer", False):
                self.wfile.flush()
                os._exit(4)
        else:
            self._send(Reply(status=404, body={"error": {"message": "not found"}}))

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length", 0))
        raw = self.rfile.read(length)
        try:
            payload = json.loads(raw)
        except ValueError:
            payload = None
        self.server.owner.requests.append({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}, "json": payload})
        self._send(self.server.owner.next_reply())

    def log_message(self, *args: Any) -> None:
        pass


class FakeOpenAIServer:
    """Answers POSTs from a queue of :class:`Reply` (the last one repeats); records every request."""

    class _HTTP(ThreadingHTTPServer):
        daemon_threads = True
        owner: "FakeOpenAIServer"

    def __init__(self, *replies: Reply) -> None:
        self.replies = list(replies)
        self.requests: list[dict] = []
        self._lock = threading.Lock()
        self._http = self._HTTP(("127.0.0.1", 0), _Handler)
        self._http.owner = self
        self._thread = threading.Thread(target=self._http.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._http.server_port}/v1"

    def next_reply(self) -> Reply:
        with self._lock:
            if len(self.replies) > 1:
                return self.replies.pop(0)
            return self.replies[0] if self.replies else Reply(status=500, body={"error": {"message": "no reply scripted"}})

    def __enter__(self) -> "FakeOpenAIServer":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.shutdown()
        self._http.server_close()


def _serve_as_llama_cpp(argv: list[str]) -> None:
    """Stand-in for ``python -m llama_cpp.server``: serve completions on --port until killed."""
    port = int(argv[argv.index("--port") + 1])
    if "--fail-on-start" in argv:
        print("fake server: failing on purpose", file=sys.stderr, flush=True)
        raise SystemExit(3)
    if "--never-ready" in argv:
        while True:
            time.sleep(1)
    server = FakeOpenAIServer(Reply(body=completion_body(" a photo of a {}.\n2. a sketch of a {}.")))
    server._http.server_close()
    server._http = server._HTTP(("127.0.0.1", port), _Handler)
    server._http.owner = server
    # answer /models with the alias asked for, as llama.cpp does (or another name, to stand for a stranger)
    flag = "--model_alias" if "--model_alias" in argv else "--alias"  # llama_cpp.server's or batch_server's
    alias = argv[argv.index(flag) + 1] if flag in argv else "fake-model"
    server.model_id = argv[argv.index("--report-model") + 1] if "--report-model" in argv else alias
    server.exit_after_answer = "--exit-after-answer" in argv
    print(f"fake server on {port}", flush=True)
    server._http.serve_forever()


if __name__ == "__main__":
    _serve_as_llama_cpp(sys.argv[1:])
