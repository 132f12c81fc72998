"""One cell as a unit of work that any executor can ship: plain data in, plain data out.

:func:`run_cell` is what a worker process or a Ray task calls.  It never raises for a failing run: the
error becomes a ``failed`` outcome and its traceback goes to the cell's ``error.txt``, so one bad cell
cannot stop the other cells of a sweep.  Only an interrupt (Ctrl-C) is let through.

The LLM is handed over by URL: the executor starts a local server (kept across cells where its answers
depend on each request alone, else one per cell: :mod:`catalyst_nb.sweeps.local_executor`) and hands its
URL to each task; the cell builds its own client from it (clients hold credentials and are not picklable).
"""
from __future__ import annotations

import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from catalyst_nb.runs.config import LOCAL_LLMS
from catalyst_nb.state_io import atomic_write_text
from .folder import ERROR_FILE

__all__ = ["CellTask", "CellOutcome", "CellFunction", "run_cell", "shared_llm_client"]

# execute(config, run_dir, *, resume, progress, llm_client) -> summary dict
CellFunction = Callable[..., dict]
# A run whose accuracy came out NaN is finished too ("collapsed"): the table flags it, a retry would not help.
FINISHED = ("done", "collapsed")


@dataclass(frozen=True)
class CellTask:
    """What a worker needs to run one cell."""

    cell_id: str
    settings: dict[str, Any]
    run_dir: str
    resume: bool = False
    llm_url: str | None = None


@dataclass(frozen=True)
class CellOutcome:
    """How a cell ended: ``done`` with the run's summary, or ``failed`` with a one-line error."""

    cell_id: str
    status: str
    summary: dict[str, Any] | None = None
    error: str | None = None
    seconds: float = 0.0


def shared_llm_client(config: Any, url: str) -> Any:
    """A client for the executor's local server at ``url``, as the run would have built for its ``llm``
    (``"local"``: the embedded model's completions; ``"local-chat"``: the chat model's chat endpoint, with
    the long timeout a 1.5B model on one busy thread needs)."""
    from catalyst_nb.llm.launcher import CHAT_TIMEOUT_S, DEFAULT_MODEL_ALIAS

    if config.llm.source == "local-chat":
        from catalyst_nb.llm.chat_model import CHAT_MODEL_ALIAS
        from catalyst_nb.llm.openai_clients import OpenAIChatClient

        return OpenAIChatClient(config.llm.model or CHAT_MODEL_ALIAS, base_url=url, api_key="local-no-key",
                                timeout=CHAT_TIMEOUT_S, max_retries=0)
    from catalyst_nb.llm.openai_clients import OpenAICompletionClient

    return OpenAICompletionClient(config.llm.model or DEFAULT_MODEL_ALIAS, base_url=url, api_key="local-no-key",
                                  timeout=120.0, max_retries=0)


def _default_cell_function() -> CellFunction:
    """Every cell is an :class:`~catalyst_nb.experiment.Experiment` run into its folder (as ``catalyst-nb run``)."""
    from catalyst_nb.experiment.headless import execute

    return execute


def run_cell(task: CellTask, cell_fn: CellFunction | None = None) -> CellOutcome:
    """Run one cell in ``task.run_dir``; any exception becomes a ``failed`` outcome (see module docstring)."""
    started = time.perf_counter()
    run_dir = Path(task.run_dir)
    error_path = run_dir / ERROR_FILE
    try:
        from .config import run_config_class

        fn = cell_fn if cell_fn is not None else _default_cell_function()
        config = run_config_class().from_dict(task.settings)
        client = None
        if task.llm_url is not None and config.llm.source in LOCAL_LLMS:
            client = shared_llm_client(config, task.llm_url)
        summary = fn(config, run_dir, resume=task.resume, progress=False, llm_client=client)
        if not isinstance(summary, dict):
            raise TypeError(f"the cell function returned {type(summary).__name__}, not a summary dict")
        if summary.get("status", "done") not in FINISHED:
            raise RuntimeError(f"the run stopped with status {summary.get('status')!r}; a sweep needs runs that "
                               "decide on their own (approval 'auto')")
    except Exception as exc:  # noqa: BLE001 - a failing cell is recorded, never fatal to the sweep
        atomic_write_text(error_path, traceback.format_exc())
        message = f"{type(exc).__name__}: {exc}".splitlines()[0][:500]
        return CellOutcome(task.cell_id, "failed", error=message, seconds=time.perf_counter() - started)
    error_path.unlink(missing_ok=True)
    return CellOutcome(task.cell_id, "done", summary=summary, seconds=time.perf_counter() - started)
