"""Lazy public names (PEP 562), shared by the package faces that must import quickly.

``import catalyst_nb`` and ``catalyst_nb.runs`` hand out names from modules that import torch and
open_clip; importing those only when a name is first used keeps the LLM server command and the CLI's
argument checks fast (and torch-free).
"""
from __future__ import annotations

import importlib
from typing import Any, Callable, Mapping

__all__ = ["lazy_getattr"]


def lazy_getattr(package: str, exports: Mapping[str, str], namespace: dict[str, Any]) -> Callable[[str], Any]:
    """A module ``__getattr__`` that imports ``exports[name]`` on first use and caches the value."""

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value  # later look-ups skip this function
        return value

    return __getattr__
