"""How many threads torch should use, given the CPUs this process may run on and who else runs there.

torch defaults to one thread per *machine* core, which is wrong twice on a shared or containerised host:
the process may be pinned to fewer cores (``os.sched_getaffinity``), and the local LLM server (llama.cpp)
spins its own worker threads on the same cores while the gradient stage runs.  Oversubscribed cores make
small matmuls dramatically slower (threads spin-wait on each other), so the default here is the
process's CPU affinity minus the LLM server's threads, never below one.

The choice stays overridable: an explicit ``threads=`` argument wins, then the ``CATALYST_NB_THREADS``
environment variable, then the computed default.
"""
from __future__ import annotations

import logging
import os
from typing import Any

__all__ = [
    "THREADS_ENV",
    "available_cpus",
    "configure_torch_threads",
    "llm_server_threads",
    "torch_thread_count",
]

log = logging.getLogger(__name__)

#: Environment variable that fixes torch's thread count (a positive integer).
THREADS_ENV = "CATALYST_NB_THREADS"


def available_cpus() -> int:
    """Number of CPUs this process may run on (its affinity mask), falling back to ``os.cpu_count()``."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not on Linux
        return max(1, os.cpu_count() or 1)


def llm_server_threads(server: Any) -> int:
    """Worker threads a local LLM server uses: 0 when it is not running.

    ``server`` is a :class:`catalyst_nb.llm.LocalLLMServer` (or anything with ``is_running`` and
    ``n_threads``).  Without an explicit ``n_threads`` the llama.cpp server takes half the machine's
    cores, which is what is assumed then.
    """
    if server is None or not getattr(server, "is_running", False):
        return 0
    n = getattr(server, "n_threads", None)
    if n is None:
        return max((os.cpu_count() or 1) // 2, 1)
    return max(int(n), 0)


def _parse_env(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n < 1:
        raise ValueError(f"{THREADS_ENV}={value!r} must be a positive integer")
    return n


def torch_thread_count(
    *,
    threads: int | None = None,
    llm_threads: int = 0,
    cpus: int | None = None,
    environ: dict[str, str] | None = None,
) -> int:
    """The thread count torch should use.

    Args:
        threads: an explicit choice; wins over everything else.
        llm_threads: threads of an LLM server that runs at the same time on the same CPUs.
        cpus: CPUs available to this process (default: :func:`available_cpus`).
        environ: where to read ``CATALYST_NB_THREADS`` (default: ``os.environ``).

    Raises:
        ValueError: a non-positive explicit or environment value, or a negative ``llm_threads``.
    """
    if threads is not None:
        if int(threads) < 1:
            raise ValueError(f"threads={threads!r} must be >= 1")
        return int(threads)
    env = os.environ if environ is None else environ
    if env.get(THREADS_ENV, "").strip():
        return _parse_env(env[THREADS_ENV].strip())
    if llm_threads < 0:
        raise ValueError(f"llm_threads={llm_threads!r} must be >= 0")
    total = available_cpus() if cpus is None else int(cpus)
    if total < 1:
        raise ValueError(f"cpus={cpus!r} must be >= 1")
    return max(1, total - int(llm_threads))


def configure_torch_threads(*, threads: int | None = None, llm_server: Any = None) -> int:
    """Set torch's intra-op thread count (see :func:`torch_thread_count`) and return it.

    Pass the running :class:`~catalyst_nb.llm.LocalLLMServer` as ``llm_server`` so that its threads are
    left free; call again after the server stops to take the cores back.
    """
    import torch  # local import: this module is also read by the torch-free LLM layer

    n = torch_thread_count(threads=threads, llm_threads=llm_server_threads(llm_server))
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
        log.info("torch uses %d threads (%d CPUs available)", n, available_cpus())
    return n
