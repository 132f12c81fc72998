"""How many threads torch should use, given the CPUs this process may run on and who else runs there.

torch defaults to one thread per *machine* core, which is wrong twice on a shared or containerised host:
the process may be pinned to fewer cores (``os.sched_getaffinity``), and the local LLM server (llama.cpp)
spins its own worker threads on the same cores while the gradient stage runs.  Oversubscribed cores make
small matmuls dramatically slower (threads spin-wait on each other), so the default here is the
process's CPU affinity minus the LLM server's threads, never below one.

The computed default counts only the CPUs that other work leaves free (:func:`free_cpus`, a short
sample of ``/proc/stat``): on a shared machine whose cores are busy with other processes, torch threads
that wait for each other at every operation's end are descheduled in turn, and two threads on two busy
cores ran the demo's steps 5x slower than one (README, "Speed").  On an idle machine it is every CPU.

The choice stays overridable: an explicit ``threads=`` argument wins, then the ``CATALYST_NB_THREADS``
environment variable, then the computed default.

Whoever starts a worker decides its threads, and nothing downstream takes them back:
:func:`assign_process_threads` (called by a sweep's worker initializer) writes the decision into the
worker's ``CATALYST_NB_THREADS``, which every later :func:`configure_torch_threads` call in that process,
and any process it starts, then follows.  Before this, the run layer reset torch to every CPU and
``--jobs 2`` ran four compute threads on two cores.

The LLM server of a single run *lends* its cores instead of reserving them: a call is synchronous, so the
gradient stages never run while the server computes, and a server that is idle between calls costs
nothing.  Such a server says so with ``lends_cores = True`` and then counts for no threads here; it is
started with the free CPUs (:func:`server_threads`): every core on an idle machine, one on a busy one.
"""
from __future__ import annotations

import logging
import os
from typing import Any

__all__ = [
    "THREADS_ENV",
    "assign_process_threads",
    "available_cpus",
    "configure_torch_threads",
    "free_cpus",
    "llm_server_threads",
    "server_threads",
    "torch_thread_count",
    "worker_threads",
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


def _cpu_times(cpus: set[int]) -> tuple[float, float] | None:
    """(idle-or-niced, total) jiffies summed over ``cpus`` from ``/proc/stat``; None where unreadable."""
    try:
        with open("/proc/stat") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return None
    idle = total = 0.0
    for line in lines:
        name, _, rest = line.partition(" ")
        if not name.startswith("cpu") or name == "cpu" or int(name[3:]) not in cpus:
            continue
        values = [float(v) for v in rest.split()]
        # user nice system idle iowait ...: niced work yields to us, so it counts as free
        idle += values[1] + values[3] + (values[4] if len(values) > 4 else 0.0)
        total += sum(values[:8])
    return (idle, total) if total else None


def free_cpus(*, interval: float = 0.2) -> int:
    """CPUs of this process's affinity that other work leaves free, sampled over ``interval`` seconds
    (idle and niced time); at least 1, and every available CPU where ``/proc/stat`` cannot be read.

    Call it while this process computes nothing (before a run), or it counts its own threads as busy.
    """
    total_cpus = available_cpus()
    try:
        mask = set(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return total_cpus
    first = _cpu_times(mask)
    if first is None:
        return total_cpus
    import time

    time.sleep(interval)
    second = _cpu_times(mask)
    if second is None or second[1] <= first[1]:
        return total_cpus
    share = (second[0] - first[0]) / (second[1] - first[1])
    return max(1, min(total_cpus, round(share * total_cpus)))


def llm_server_threads(server: Any) -> int:
    """Worker threads a local LLM server uses: 0 when it is not running.

    ``server`` is a :class:`catalyst_nb.llm.LocalLLMServer` (or anything with ``is_running`` and
    ``n_threads``).  Without an explicit ``n_threads`` the llama.cpp server takes half the machine's
    cores, which is what is assumed then.  A server with ``lends_cores`` true computes only while its
    caller waits for the answer, so its threads never run beside torch's: 0.
    """
    if server is None or not getattr(server, "is_running", False) or getattr(server, "lends_cores", False):
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


def worker_threads(workers: int, *, cpus: int | None = None, environ: dict[str, str] | None = None) -> int:
    """Threads for each of ``workers`` processes that share this process's CPUs.

    ``CATALYST_NB_THREADS``, when set, is the user's explicit per-process choice and wins; otherwise the
    CPUs are split evenly, at least one thread each.
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers={workers!r} must be an int >= 1")
    env = os.environ if environ is None else environ
    if env.get(THREADS_ENV, "").strip():
        return _parse_env(env[THREADS_ENV].strip())
    total = available_cpus() if cpus is None else int(cpus)
    return max(1, total // workers)


def server_threads(*, cpus: int | None = None) -> int:
    """Threads for a local LLM server that lends its cores (see the module docstring): the CPUs other
    work leaves free (:func:`free_cpus`), as for torch.  On a busy 2-core machine a server computing on
    both cores answered the demo's rounds 4x slower than one on a single core (README, "Speed")."""
    return free_cpus() if cpus is None else max(1, int(cpus))


def assign_process_threads(n: int) -> int:
    """Fix this process's compute threads at ``n`` for good (a worker's starter calls it first thing).

    Sets torch's intra-op threads and writes ``CATALYST_NB_THREADS`` and ``OMP_NUM_THREADS``, so that a
    later :func:`configure_torch_threads` in this process (the run layer calls it) and any process started
    from here keep ``n`` instead of taking every CPU back.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n={n!r} must be an int >= 1")
    os.environ[THREADS_ENV] = str(n)
    os.environ["OMP_NUM_THREADS"] = str(n)
    import torch  # local import: see configure_torch_threads

    torch.set_num_threads(n)
    return n


def configure_torch_threads(*, threads: int | None = None, llm_server: Any = None) -> int:
    """Set torch's intra-op thread count (see :func:`torch_thread_count`) and return it.

    Pass the running :class:`~catalyst_nb.llm.LocalLLMServer` as ``llm_server`` so that its threads are
    left free; call again after the server stops to take the cores back.  Without an explicit choice,
    the CPUs counted are the free ones (:func:`free_cpus`).
    """
    import torch  # local import: this module is also read by the torch-free LLM layer

    chosen = threads is not None or bool(os.environ.get(THREADS_ENV, "").strip())
    n = torch_thread_count(threads=threads, llm_threads=llm_server_threads(llm_server),
                           cpus=None if chosen else free_cpus())
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
        log.info("torch uses %d threads (%d CPUs available)", n, available_cpus())
    return n
