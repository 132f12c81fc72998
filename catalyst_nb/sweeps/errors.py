"""The error of a sweep file that cannot describe a sweep (raised while reading it and while expanding its grid)."""
from __future__ import annotations

__all__ = ["SweepConfigError"]


class SweepConfigError(ValueError):
    """A sweep file that cannot describe a sweep (the message names the offending key or value)."""
