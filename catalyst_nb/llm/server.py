"""Command: serve the embedded local LLM until Ctrl-C.

    python -m catalyst_nb.llm.server [--port N] [--n-ctx 2048] [--model PATH] [--engine batched|llama-cpp]

Prints the base URL and the model name to use with any OpenAI-compatible client, then waits. Stops
the server cleanly on Ctrl-C or SIGTERM. The Gemma weights are subject to the Gemma Terms of Use
(https://ai.google.dev/gemma/terms).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from typing import Sequence

from .errors import LocalServerError
from .launcher import DEFAULT_MODEL_ALIAS, ENGINES, LocalLLMServer


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m catalyst_nb.llm.server", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=None, help="port on 127.0.0.1 (default: a free one)")
    parser.add_argument("--n-ctx", type=int, default=2048, help="context length in tokens")
    parser.add_argument("--n-threads", type=int, default=None, help="CPU threads (default: llama.cpp's choice)")
    parser.add_argument("--model", default=None, help="a GGUF file (default: the embedded Gemma 3 270M)")
    parser.add_argument("--alias", default=DEFAULT_MODEL_ALIAS, help="model name the server answers to")
    parser.add_argument("--engine", choices=ENGINES, default="batched",
                        help="batched: completions, a request's n choices decoded together (default); "
                             "llama-cpp: llama-cpp-python's server (chat endpoint too)")
    parser.add_argument("--startup-timeout", type=float, default=120.0)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    server = LocalLLMServer(
        model_path=args.model, model_alias=args.alias, port=args.port, n_ctx=args.n_ctx,
        n_threads=args.n_threads, startup_timeout=args.startup_timeout, engine=args.engine,
    )
    stop = threading.Event()
    serving = False

    def on_term(signum: int, frame: object) -> None:
        stop.set()
        if not serving:  # still starting: abort the start, which stops what was started
            raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    # Set explicitly: a process started with SIGINT ignored (a shell's background job) would otherwise
    # inherit that and could only be stopped by SIGTERM.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with server:
            serving = True
            print(f"base_url: {server.base_url}", flush=True)
            print(f"model:    {server.model_alias}", flush=True)
            print(f"pid:      {server.pid}", flush=True)
            print("serving; press Ctrl-C to stop", flush=True)
            while not stop.wait(0.5):
                if not server.is_running:
                    print("the server process exited", file=sys.stderr)
                    return 1
    except LocalServerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass
    print("stopped", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
