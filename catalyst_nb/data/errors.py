"""Typed errors of the data layer.

Data problems are the most common reason a notebook stops, so each one gets its own type and a message
that names the file, the folder or the value at fault and, where there is one, the fix.
"""

from __future__ import annotations

__all__ = [
    "DatasetNotFoundError",
    "ImageNotFoundError",
    "CorruptImageError",
    "CorruptDataError",
]


class DatasetNotFoundError(FileNotFoundError):
    """A dataset folder, split file or data file that should exist does not."""


class ImageNotFoundError(DatasetNotFoundError):
    """One image of a dataset is missing on disk (the message names the file)."""


class CorruptImageError(OSError):
    """An image file exists but cannot be decoded (the message names the file)."""


class CorruptDataError(ValueError):
    """A data file has the wrong format or does not match its recorded checksum."""
