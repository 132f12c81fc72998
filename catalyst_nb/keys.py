"""One check for settings given as a mapping: every key must be known, and the error names the rest.

Configs arrive from TOML files, CLI flags and saved states; a misspelt key silently ignored is a run
with other settings than the user believes, so every ``from_dict`` refuses unknown keys the same way.
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping

__all__ = ["check_known_keys"]


def check_known_keys(data: Mapping[str, Any], known: Iterable[str], what: str) -> None:
    """Raise ``ValueError`` naming the keys of ``data`` that are not in ``known``."""
    known = set(known)
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"unknown {what} {unknown}; known: {sorted(known)}")
