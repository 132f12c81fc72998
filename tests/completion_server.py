"""A stand-in for an OpenAI-compatible completions server in run tests: a subclass says what to reply."""
from __future__ import annotations

import json
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator


class CompletionHandler(BaseHTTPRequestHandler):
    """Answers ``POST .../completions`` with the text :meth:`reply_text` gives for the request body."""

    def reply_text(self, body: dict[str, Any]) -> str:
        raise NotImplementedError

    def do_POST(self):  # noqa: N802 - http.server's name
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        text = self.reply_text(body)
        data = json.dumps({"id": "c", "object": "text_completion", "created": 0, "model": body.get("model", "m"),
                           "choices": [{"index": 0, "text": text, "finish_reason": "stop", "logprobs": None}],
                           "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):  # keep test output clean
        pass


@contextmanager
def serving(handler: type[CompletionHandler]) -> Iterator[str]:
    """The server's base URL (``http://127.0.0.1:PORT/v1``) while the block runs."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
