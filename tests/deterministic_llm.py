"""An OpenAI-compatible completions endpoint whose reply is a function of the request alone (stdlib only).

Two processes that send the same requests get the same replies, so a run made in-process and the same run
made by ``python -m catalyst_nb run`` in a subprocess can be compared event by event.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator

LINES = ["a {} on a rail", "a folded {}", "a photo of the {}", "a small {}", "a grey {}", "a {} for sale",
         "a bright photo of a {}", "a {} in a shop", "a worn {}", "a clean {}"]


class Deterministic(BaseHTTPRequestHandler):
    def reply_text(self, body: dict) -> str:
        """The completion's text for a request body (a subclass may answer otherwise)."""
        digest = int(hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest(), 16)
        return LINES[digest % len(LINES)]

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


@contextlib.contextmanager
def deterministic_llm(handler: type[Deterministic] = Deterministic) -> Iterator[str]:
    """Serve ``handler`` (:class:`Deterministic` or a subclass) on a free local port; yields the base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
