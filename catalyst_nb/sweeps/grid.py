"""Grid expansion: every (method variant, axis values) combination as one cell with a stable id.

The id is readable (``coop__embedded__16shot__seed1``) because it names the cell's folder and a person
looks for it there; it depends only on the cell's own settings, never on its position in the grid, so
adding a seed or a method to the file leaves every other cell's folder (and finished result) where it
was.  Two cells that would share an id are refused rather than silently sharing a folder.
"""
from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from typing import Any, Mapping, Protocol, Sequence

from .errors import SweepConfigError

__all__ = ["Cell", "expand", "slug"]

# Axes with a fixed place in ids and tables; any other axis follows in file order.
_LEADING = ("data", "base_to_new")
_TRAILING = ("shots", "seed")


def slug(value: Any) -> str:
    """Lower-case, with runs of anything but letters, digits and dots turned into one dash."""
    text = re.sub(r"[^a-z0-9.]+", "-", str(value).lower()).strip("-")
    return text or "x"


@dataclass(frozen=True)
class Cell:
    """One run of the sweep.

    Attributes:
        cell_id: the folder name under ``cells/``.
        label: the method variant's label (the table's row name).
        axes: this cell's value on every grid axis (``shots``, ``seed`` and any others).
        settings: the full run settings (defaults, then the method's, then the axes').
    """

    cell_id: str
    label: str
    axes: dict[str, Any]
    settings: dict[str, Any]

    @property
    def group(self) -> tuple[tuple[str, Any], ...]:
        """What the table averages over seeds for: everything but the seed."""
        return (("label", self.label),) + tuple((k, v) for k, v in self.axes.items() if k != "seed")


def _axis_order(grid: Mapping[str, tuple[Any, ...]]) -> list[str]:
    middle = [k for k in grid if k not in _LEADING and k not in _TRAILING]
    return [k for k in _LEADING if k in grid] + middle + [k for k in _TRAILING if k in grid]


def _id_part(key: str, value: Any) -> str:
    if key == "shots":
        return f"{slug(value)}shot"
    if key == "seed":
        return f"seed{slug(value)}"
    if key == "data":
        return slug(value)
    if key == "base_to_new":
        return "b2n" if value else "all"
    if isinstance(value, bool):
        return slug(key) if value else f"no-{slug(key)}"
    return f"{slug(key)}-{slug(value)}"


class GridSpec(Protocol):
    """What :func:`expand` reads of a :class:`~catalyst_nb.sweeps.config.SweepConfig` (which imports this module)."""

    defaults: Mapping[str, Any]
    grid: Mapping[str, tuple[Any, ...]]
    methods: Sequence[tuple[str, Mapping[str, Any]]]


def expand(config: GridSpec) -> list[Cell]:
    """All cells, methods outermost (file order), then the axes in their table order."""
    order = _axis_order(config.grid)
    cells: list[Cell] = []
    seen: dict[str, str] = {}
    for label, method_settings in config.methods:
        for values in itertools.product(*(config.grid[k] for k in order)):
            axes = dict(zip(order, values))
            settings = {**config.defaults, **method_settings, **axes}
            cell_id = "__".join([slug(label)] + [_id_part(k, v) for k, v in axes.items()])
            if cell_id in seen:
                raise SweepConfigError(
                    f"two cells would share the folder {cell_id!r} (method labels {seen[cell_id]!r} and {label!r}); "
                    "give the methods labels that differ in letters or digits"
                )
            seen[cell_id] = label
            cells.append(Cell(cell_id=cell_id, label=label, axes=axes, settings=settings))
    return cells
