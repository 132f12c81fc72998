"""Stopping a sweep: Ctrl-C or SIGTERM end it at once, and a rerun picks it up where it stopped.

Why it needs saying: a sweep started as a shell's background job (``&``, ``nohup``) begins with SIGINT
ignored, so ``kill -INT`` did nothing, and SIGTERM ended only the parent while its worker processes
finished their running cells on their own.  :func:`stop_signals` makes both signals raise
:class:`KeyboardInterrupt` in the sweep's process, however it was started; the local executor then
terminates its workers (their cells resume from their last saved state on the next run, each worker's
LLM server goes with its worker) instead of waiting for the running cells to end.
"""
from __future__ import annotations

import contextlib
import signal
import threading
from typing import Iterator

__all__ = ["stop_signals"]


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")


@contextlib.contextmanager
def stop_signals() -> Iterator[None]:
    """Within the block, SIGINT and SIGTERM raise :class:`KeyboardInterrupt`; the old handlers come back
    after.  Off the main thread (where Python cannot set handlers) it changes nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)
