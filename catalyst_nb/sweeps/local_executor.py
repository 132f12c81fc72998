"""Cells on this machine: in this process (``jobs=1``) or in ``jobs`` worker processes.

Workers are spawned, not forked (a forked copy of a process that already runs torch threads or holds a
server's sockets is a known source of hangs).  Each worker's threads are decided here, once, as its share
of the CPUs (:func:`catalyst_nb.threads.worker_threads`), and fixed for the worker's life
(:func:`catalyst_nb.threads.assign_process_threads`): the run layer's own thread setting then keeps
them, so ``jobs`` workers never run more compute threads than there are cores.  A worker serves many
cells (process start and imports once per worker, measured 16 s on a busy 2-core machine) and loads
each model once (:func:`start_worker`; 2.5 s per cell on that machine).

When a cell asks for a local LLM (``llm = "local"``, the embedded Gemma, or ``"local-chat"``, the Qwen
chat model) and its method uses an LLM, it gets a server of that model:

- A server whose answers depend on each request alone (``independent_requests``: the embedded model's
  batched engine, which evaluates every prompt from an empty cache) outlives the cell, so no cell pays
  its start-up.  ``jobs=1``: one per model for the whole sweep, lending the free cores (calls are
  synchronous, so it computes only while the one running cell waits for it).  ``jobs`` > 1: one per
  worker and model, started at the worker's first such cell and stopped when the worker ends, on the
  worker's own share of the CPUs.  One server shared by all workers was measured to be the sweep's
  bottleneck (the calls of two workers queued behind each other: a catalyst cell spent 37 of its 61 s
  waiting on LLM calls that take 12 s alone).  Per worker, a worker and its server never compute at the
  same time, so ``jobs`` workers still never run more compute threads than there are cores.
- Any other server (the chat model's, llama-cpp-python's server, which reuses the previous prompt's
  evaluated tokens) is started for one cell and stopped after it.  Kept across cells, it answered a cell's
  first request differently depending on which cells the worker had run before, so the same cell drew
  other templates in two runs of the protocol; started per cell, a cell's answers are those of the same
  run on its own, whatever ``jobs`` is, at the price of loading the model (1.1 GB) once per cell.
"""
from __future__ import annotations

import concurrent.futures as futures
import contextlib
import functools
import multiprocessing
import time
from dataclasses import replace
from typing import Any, Callable, Iterator, Sequence

from catalyst_nb.runs.config import LOCAL_LLMS
from catalyst_nb.threads import assign_process_threads, worker_threads

from .cell import CellFunction, CellOutcome, CellTask, run_cell

__all__ = ["LocalExecutor", "local_llm_of", "LLM_METHODS"]

LLM_METHODS = ("llm-only", "catalyst")


def local_llm_of(settings: dict[str, Any]) -> str | None:
    """The local LLM (``"local"`` or ``"local-chat"``) a cell would start a server for, else ``None``."""
    llm = settings.get("llm", "local")
    return llm if settings.get("method") in LLM_METHODS and llm in LOCAL_LLMS else None


def _shared_across_cells(server: Any) -> bool:
    """Whether ``server`` may serve many cells: only where it says its answers depend on each request
    alone (:attr:`catalyst_nb.llm.launcher.LocalLLMServer.independent_requests`); a server that does not say
    so is started per cell."""
    return getattr(server, "independent_requests", False) is True


class _CellServers:
    """The local LLM servers that cells get: one kept per model whose server may serve many cells, a fresh
    one per cell for any other (module docstring).  Servers start at the first cell that needs them."""

    def __init__(self, factories: dict[str, Callable[[], Any]]) -> None:
        self.factories = factories
        self._kept: dict[str, str] = {}
        self._stack = contextlib.ExitStack()

    def url(self, kind: str, cell_scope: contextlib.ExitStack) -> str:
        """The URL of a running ``kind`` server for one cell; a per-cell server stops with ``cell_scope``."""
        if kind in self._kept:
            return self._kept[kind]
        server = self.factories[kind]()
        if _shared_across_cells(server):
            self._stack.enter_context(server)
            self._kept[kind] = server.base_url
            return server.base_url
        cell_scope.enter_context(server)
        return server.base_url

    def close(self) -> None:
        """Stop the kept servers."""
        self._stack.close()
        self._kept = {}


def _cell_with_server(servers: _CellServers, task: CellTask, cell_fn: CellFunction | None) -> CellOutcome:
    """Run one cell, with a local LLM server where it needs one.  A server that fails to start fails that
    cell (with the reason), not the sweep or the worker: the next cell tries again."""
    kind = local_llm_of(task.settings)
    if task.llm_url is not None or kind is None:
        return run_cell(task, cell_fn)
    with contextlib.ExitStack() as cell_scope:
        started = time.perf_counter()
        try:
            url = servers.url(kind, cell_scope)
        except Exception as exc:  # noqa: BLE001 - recorded as the cell's failure
            return CellOutcome(task.cell_id, "failed", error=f"local LLM server: {type(exc).__name__}: {exc}"[:500],
                               seconds=time.perf_counter() - started)
        return run_cell(replace(task, llm_url=url), cell_fn)


# A pool worker's LLM servers (set by start_worker): kept ones stop when the worker exits.
_WORKER_LLM: dict[str, Any] = {"servers": None}


def start_worker(threads: int, server_factory: Callable[[], Any] | None = None,
                 chat_server_factory: Callable[[], Any] | None = None) -> None:
    """A worker's set-up, once for all the cells it serves: its share of the CPUs for good, one model load
    per model (:func:`catalyst_nb.backbone.keep_loaded_models`) instead of one per cell, and how to make
    its own LLM servers should its cells need them (default: the embedded model, and the chat model, each
    on ``threads``)."""
    import atexit

    from catalyst_nb.backbone import keep_loaded_models

    assign_process_threads(threads)
    keep_loaded_models()
    servers = _CellServers(_server_factories(server_factory, chat_server_factory, threads))
    _WORKER_LLM["servers"] = servers
    atexit.register(servers.close)


def _local_server(kind: str, threads: int | None) -> Any:
    """A (not yet started) server of the local model ``kind`` on ``threads`` (``None``: the CPUs other work
    leaves free, :func:`catalyst_nb.threads.server_threads`, counted now)."""
    from catalyst_nb.llm.launcher import LocalLLMServer, local_chat_server
    from catalyst_nb.threads import server_threads

    n_threads = server_threads() if threads is None else threads
    return local_chat_server(n_threads=n_threads) if kind == "local-chat" else LocalLLMServer(n_threads=n_threads)


def _server_factories(server_factory: Callable[[], Any] | None, chat_server_factory: Callable[[], Any] | None,
                      threads: int | None) -> dict[str, Callable[[], Any]]:
    """``{local LLM: how to make its server}``: the given factories, else the shipped models on ``threads``."""
    given = {"local": server_factory, "local-chat": chat_server_factory}
    return {kind: given[kind] or functools.partial(_local_server, kind, threads) for kind in LOCAL_LLMS}


def run_in_worker(task: CellTask, cell_fn: CellFunction | None = None) -> CellOutcome:
    """A pool worker's cell: a cell that needs a local LLM gets a server of this worker's (module docstring)."""
    return _cell_with_server(_WORKER_LLM["servers"], task, cell_fn)


@contextlib.contextmanager
def _models_kept_here() -> Iterator[None]:
    """Cells run in this process keep their models for the sweep's length, then let them go."""
    from catalyst_nb import backbone

    before = backbone._KEPT  # noqa: SLF001 - restored as it was (a caller may keep models itself)
    if before is None:
        backbone.keep_loaded_models()
    try:
        yield
    finally:
        if before is None:
            backbone.keep_loaded_models(False)


class LocalExecutor:
    """Runs cells here; ``jobs`` > 1 runs that many at once in spawned worker processes.

    ``llm_server_factory`` and ``chat_server_factory`` make the local servers of the embedded model and of
    the chat model (context managers with ``base_url``; ``independent_requests = True`` lets one serve
    many cells: the sweep's one with ``jobs=1``, each worker's own with ``jobs`` > 1; otherwise a server is
    made per cell).  With ``jobs`` > 1 they must be picklable (module-level functions or classes).
    Defaults: the two shipped models (module docstring).
    """

    name = "local"

    def __init__(self, *, jobs: int = 1, llm_server_factory: Callable[[], Any] | None = None,
                 chat_server_factory: Callable[[], Any] | None = None) -> None:
        if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
            raise ValueError(f"jobs must be an int >= 1, got {jobs!r}")
        self.jobs = jobs
        self.llm_server_factory = llm_server_factory
        self.chat_server_factory = chat_server_factory

    def run(self, tasks: Sequence[CellTask], cell_fn: CellFunction | None = None) -> Iterator[CellOutcome]:
        """Yield each cell's outcome as it finishes (in finishing order when ``jobs`` > 1)."""
        if not tasks:
            return
        if self.jobs > 1:
            yield from self._run_pool(tasks, cell_fn)
            return
        servers = _CellServers(_server_factories(self.llm_server_factory, self.chat_server_factory, None))
        with contextlib.closing(servers), _models_kept_here():
            for task in tasks:
                yield _cell_with_server(servers, task, cell_fn)

    def _run_pool(self, tasks: Sequence[CellTask], cell_fn: CellFunction | None) -> Iterator[CellOutcome]:
        workers = min(self.jobs, len(tasks))
        threads = worker_threads(workers)
        pool = futures.ProcessPoolExecutor(
            max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
            initializer=start_worker, initargs=(threads, self.llm_server_factory, self.chat_server_factory),
        )
        pending = {pool.submit(run_in_worker, task, cell_fn): task for task in tasks}
        try:
            for future in futures.as_completed(pending):
                task = pending[future]
                try:
                    yield future.result()
                except Exception as exc:  # noqa: BLE001 - a worker that died takes only its cells with it
                    yield CellOutcome(task.cell_id, "failed", error=f"worker failed: {type(exc).__name__}: {exc}"[:500])
        except KeyboardInterrupt:
            # Ctrl-C or SIGTERM (catalyst_nb.sweeps.stopping): the running cells stop now instead of running to
            # their end; each resumes from its last saved state when the sweep runs again
            _terminate_workers(pool)
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


def _terminate_workers(pool: futures.ProcessPoolExecutor, grace: float = 10.0) -> None:
    """SIGTERM every worker of ``pool`` and wait for them (a worker's LLM server stops with it)."""
    processes = list((getattr(pool, "_processes", None) or {}).values())
    for process in processes:
        if process.is_alive():
            process.terminate()
    for process in processes:
        process.join(grace)
        if process.is_alive():
            process.kill()
            process.join()
