"""The one way records become JSON and come back: NaN and infinities as strings, enums as their values.

Why: JSON has no NaN, yet a diverged run must still save its losses, and every record (step records,
round events, candidates) is written to files that other tools read.  Encoding is deep; decoding is per
float field, because only the record knows which fields are numbers (a template may well read "nan").
This module imports nothing of the package, so every layer can use it.
"""
from __future__ import annotations

import math
from enum import Enum
from typing import Any, Mapping

__all__ = ["json_data", "json_float"]

_NON_FINITE = ("nan", "inf", "-inf")


def json_data(value: Any) -> Any:
    """Deep copy into JSON types; NaN and infinities become ``"nan"``, ``"inf"``, ``"-inf"``."""
    if isinstance(value, Mapping):
        return {str(k): json_data(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_data(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, Enum):
        return value.value
    return value


def json_float(value: Any) -> Any:
    """A float field read back: ``"nan"``, ``"inf"``, ``"-inf"`` become floats, anything else is kept."""
    if isinstance(value, str) and value in _NON_FINITE:
        return float(value)
    return value
