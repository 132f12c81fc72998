"""Cells on this machine: in this process (``jobs=1``) or in ``jobs`` worker processes.

Workers are spawned, not forked (a forked copy of a process that already runs torch threads or holds a
server's sockets is a known source of hangs).  Each worker's threads are decided here, once, as its share
of the CPUs (:func:`catalyst_nb.threads.worker_threads`), and fixed for the worker's life
(:func:`catalyst_nb.threads.assign_process_threads`): the run layer's own thread setting then keeps
them, so ``jobs`` workers never run more compute threads than there are cores.  A worker serves many
cells (process start and imports once per worker, measured 16 s on a busy 2-core machine) and loads
each model once (:func:`start_worker`; 2.5 s per cell on that machine).

When any cell asks for the embedded LLM (``llm = "local"``) and its method uses an LLM, ONE local server
is started for the whole sweep and its URL handed to every cell: one model in memory instead of one
per worker, and no per-cell start-up time.
"""
from __future__ import annotations

import concurrent.futures as futures
import contextlib
import functools
import multiprocessing
from dataclasses import replace
from typing import Any, Callable, Iterator, Sequence

from catalyst_nb.threads import assign_process_threads, worker_threads

from .cell import CellFunction, CellOutcome, CellTask, run_cell

__all__ = ["LocalExecutor", "needs_local_llm", "LLM_METHODS"]

LLM_METHODS = ("llm-only", "catalyst")


def needs_local_llm(settings: dict[str, Any]) -> bool:
    """Whether a cell would start the embedded LLM server on its own."""
    return settings.get("method") in LLM_METHODS and settings.get("llm", "local") == "local"


def start_worker(threads: int) -> None:
    """A worker's set-up, once for all the cells it serves: its share of the CPUs for good, and one
    model load per model (:func:`catalyst_nb.backbone.keep_loaded_models`) instead of one per cell."""
    from catalyst_nb.backbone import keep_loaded_models

    assign_process_threads(threads)
    keep_loaded_models()


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


def _default_server_factory(jobs: int) -> Any:
    """One run at a time lends the server the free cores (calls are synchronous); ``jobs`` runs at once give
    it one worker's share, since the other workers keep computing while one of them waits for an answer."""
    from catalyst_nb.llm.launcher import LocalLLMServer
    from catalyst_nb.threads import server_threads

    return LocalLLMServer(n_threads=server_threads() if jobs == 1 else worker_threads(jobs))


class LocalExecutor:
    """Runs cells here; ``jobs`` > 1 runs that many at once in spawned worker processes."""

    name = "local"

    def __init__(self, *, jobs: int = 1, llm_server_factory: Callable[[], Any] | None = None) -> None:
        if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
            raise ValueError(f"jobs must be an int >= 1, got {jobs!r}")
        self.jobs = jobs
        self.llm_server_factory = llm_server_factory or functools.partial(_default_server_factory, jobs)

    @contextlib.contextmanager
    def _shared_llm(self, tasks: Sequence[CellTask]) -> Iterator[str | None]:
        if not any(needs_local_llm(t.settings) for t in tasks):
            yield None
            return
        server = self.llm_server_factory()
        with server:
            yield server.base_url

    def run(self, tasks: Sequence[CellTask], cell_fn: CellFunction | None = None) -> Iterator[CellOutcome]:
        """Yield each cell's outcome as it finishes (in finishing order when ``jobs`` > 1)."""
        if not tasks:
            return
        with self._shared_llm(tasks) as url:
            tasks = [replace(t, llm_url=url) if needs_local_llm(t.settings) else t for t in tasks]
            if self.jobs == 1:
                with _models_kept_here():
                    for task in tasks:
                        yield run_cell(task, cell_fn)
                return
            yield from self._run_pool(tasks, cell_fn)

    def _run_pool(self, tasks: Sequence[CellTask], cell_fn: CellFunction | None) -> Iterator[CellOutcome]:
        workers = min(self.jobs, len(tasks))
        threads = worker_threads(workers)
        pool = futures.ProcessPoolExecutor(
            max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
            initializer=start_worker, initargs=(threads,),
        )
        pending = {pool.submit(run_cell, task, cell_fn): task for task in tasks}
        try:
            for future in futures.as_completed(pending):
                task = pending[future]
                try:
                    yield future.result()
                except Exception as exc:  # noqa: BLE001 - a worker that died takes only its cells with it
                    yield CellOutcome(task.cell_id, "failed", error=f"worker failed: {type(exc).__name__}: {exc}"[:500])
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
