"""One switch that shrinks budgets for smoke runs (CI runs every notebook on a CPU in minutes).

Notebooks ask :func:`smoke_budget` for step counts, shots and rounds instead of hard-coding them, so the
same cells teach with realistic budgets and still run quickly under ``CATALYST_NB_SMOKE=1``.
"""
from __future__ import annotations

import os
from typing import TypeVar

__all__ = ["SMOKE_ENV", "smoke_mode", "smoke_budget"]

SMOKE_ENV = "CATALYST_NB_SMOKE"
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}

T = TypeVar("T")


def smoke_mode() -> bool:
    """Whether ``CATALYST_NB_SMOKE`` asks for small budgets; an unreadable value is an error, not a guess."""
    raw = os.environ.get(SMOKE_ENV, "").strip().lower()
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise ValueError(f"{SMOKE_ENV}={os.environ.get(SMOKE_ENV)!r}; use 1 or 0")


def smoke_budget(full: T, smoke: T) -> T:
    """``smoke`` under ``CATALYST_NB_SMOKE=1``, ``full`` otherwise (e.g. ``smoke_budget(200, 20)`` steps)."""
    return smoke if smoke_mode() else full
