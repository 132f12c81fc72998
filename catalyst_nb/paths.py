"""The one place that decides where catalyst_nb keeps caches (feature caches, assembled LLM files).

One rule for every cache, so that a user who moves caches with ``XDG_CACHE_HOME`` or ``CATALYST_NB_CACHE``
moves all of them: ``$CATALYST_NB_CACHE`` if set, else ``$XDG_CACHE_HOME/catalyst_nb``, else
``~/.cache/catalyst_nb``.  No torch here: the LLM layer uses it too.
"""
from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_root"]


def cache_root() -> Path:
    """The root folder of every catalyst_nb cache (read from the environment on each call)."""
    override = os.environ.get("CATALYST_NB_CACHE")
    if override:
        return Path(override).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "catalyst_nb"
