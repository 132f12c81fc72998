"""A sweep's description, read from TOML and checked before anything runs.

A sweep file names the grid once, in the same flat keys a single run uses (:class:`RunConfig`)::

    [sweep]
    name = "methods"
    collapse_margin = 0.10        # a run is flagged when NaN or this far below zero-shot
    baseline = "coop"             # optional: every other method's paired difference to this label

    [defaults]                    # run settings shared by every cell
    steps = 250
    llm = "local"

    [grid]                        # axes: each a non-empty list of run-setting values
    data = ["embedded"]
    shots = [1, 4, 16]
    seed = [1, 2, 3]
    base_to_new = [false, true]

    [methods."catalyst (paper)"]  # one row label per method variant, with its own settings
    method = "catalyst"
    preset = "paper"

Why methods are labelled tables and not one more axis: a method variant is a bundle of settings (the
catalyst's preset, restart policy and LLM go together), and its label is what the table shows.
Everything is validated here, before a model loads: unknown keys anywhere are named, an empty grid or an
empty axis is refused, a key set in two places (a default and an axis, an axis and a method) is refused
as ambiguous, and every cell is built as a :class:`RunConfig` so that a bad method name or value fails
with the run layer's own message, naming the cell.
"""
from __future__ import annotations

import hashlib
import json
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from .errors import SweepConfigError
from .grid import expand

__all__ = ["SweepConfig", "SweepConfigError", "load_sweep_config", "run_config_class", "DEFAULT_COLLAPSE_MARGIN"]

DEFAULT_COLLAPSE_MARGIN = 0.10
_TOP_KEYS = ("sweep", "resources", "defaults", "grid", "methods")
_SWEEP_KEYS = ("name", "collapse_margin", "baseline")
_RESOURCE_KEYS = ("num_cpus", "num_gpus")
_REQUIRED_AXES = ("shots", "seed")


def run_config_class() -> type:
    """The run layer's config class (imported late, so that importing this package stays light)."""
    from catalyst_nb.runs.config import RunConfig

    return RunConfig


def _run_keys() -> tuple[str, ...]:
    return run_config_class().known_keys()  # flat names (grid axes such as lr) and the [gradient]/... tables


def _unknown(where: str, given: Mapping[str, Any], allowed: tuple[str, ...]) -> None:
    extra = [k for k in given if k not in allowed]
    if extra:
        raise SweepConfigError(f"unknown key(s) in {where}: {', '.join(map(repr, extra))}; allowed: {', '.join(allowed)}")


def _table(data: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, Mapping):
        raise SweepConfigError(f"[{key}] must be a table, got {value!r}")
    return dict(value)


@dataclass(frozen=True)
class SweepConfig:
    """A validated sweep: shared settings, grid axes (in file order) and labelled method variants.

    Attributes:
        name: shown in the table's title; the file stem when not given.
        defaults: run settings for every cell.
        grid: axis name -> non-empty tuple of values (always has ``shots`` and ``seed``).
        methods: (label, settings) pairs in file order; each settings dict has ``method``.
        collapse_margin: a run whose accuracy is this far (0-1) below zero-shot is flagged as collapsed.
        baseline: a method label; the table and ``results.csv`` pair every other method with it, seed by
            seed (``None``: no paired columns).
        num_cpus, num_gpus: what one cell needs (declared to Ray; the local executor runs ``--jobs``).
    """

    name: str
    defaults: dict[str, Any]
    grid: dict[str, tuple[Any, ...]]
    methods: tuple[tuple[str, dict[str, Any]], ...]
    collapse_margin: float = DEFAULT_COLLAPSE_MARGIN
    baseline: str | None = None
    num_cpus: float = 1.0
    num_gpus: float = 0.0
    source: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, name: str = "sweep") -> SweepConfig:
        if not isinstance(data, Mapping):
            raise SweepConfigError(f"a sweep config must be a table, got {type(data).__name__}")
        _unknown("the sweep file", data, _TOP_KEYS)
        run_keys = _run_keys()

        sweep = _table(data, "sweep")
        _unknown("[sweep]", sweep, _SWEEP_KEYS)
        sweep_name = sweep.get("name", name)
        if not isinstance(sweep_name, str) or not sweep_name.strip():
            raise SweepConfigError(f"[sweep] name must be a non-empty string, got {sweep_name!r}")
        margin = sweep.get("collapse_margin", DEFAULT_COLLAPSE_MARGIN)
        if isinstance(margin, bool) or not isinstance(margin, (int, float)) or not 0 <= margin <= 1 or math.isnan(margin):
            raise SweepConfigError(f"[sweep] collapse_margin must be a number in [0, 1], got {margin!r}")

        resources = _table(data, "resources")
        _unknown("[resources]", resources, _RESOURCE_KEYS)
        need = {k: resources.get(k, 1.0 if k == "num_cpus" else 0.0) for k in _RESOURCE_KEYS}
        for key, value in need.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or math.isnan(value):
                raise SweepConfigError(f"[resources] {key} must be a number >= 0, got {value!r}")

        defaults = _table(data, "defaults")
        _unknown("[defaults]", defaults, run_keys)
        if "method" in defaults:
            raise SweepConfigError("[defaults] cannot set 'method': list the methods under [methods.LABEL]")

        raw_grid = _table(data, "grid")
        if not raw_grid:
            raise SweepConfigError("the grid is empty: [grid] needs at least 'shots' and 'seed'")
        _unknown("[grid]", raw_grid, tuple(k for k in run_keys if k != "method"))
        missing = [k for k in _REQUIRED_AXES if k not in raw_grid]
        if missing:
            raise SweepConfigError(f"[grid] needs the axes {', '.join(missing)} (a list each)")
        grid: dict[str, tuple[Any, ...]] = {}
        for key, values in raw_grid.items():
            if not isinstance(values, list):
                raise SweepConfigError(f"[grid] {key} must be a list of values, got {values!r}")
            if not values:
                raise SweepConfigError(f"[grid] {key} is an empty list: the grid would have no cells")
            if len(set(map(repr, values))) != len(values):
                raise SweepConfigError(f"[grid] {key} lists a value twice: {values!r}")
            if key in defaults:
                raise SweepConfigError(f"{key!r} is set both in [defaults] and as a [grid] axis")
            grid[key] = tuple(values)

        raw_methods = _table(data, "methods")
        if not raw_methods:
            raise SweepConfigError("no methods: add at least one [methods.LABEL] table with method = \"...\"")
        methods: list[tuple[str, dict[str, Any]]] = []
        for label, settings in raw_methods.items():
            if not isinstance(settings, Mapping):
                raise SweepConfigError(f"[methods.{label!r}] must be a table of run settings, got {settings!r}")
            settings = dict(settings)
            _unknown(f"[methods.{label!r}]", settings, run_keys)
            if "method" not in settings:
                raise SweepConfigError(f"[methods.{label!r}] needs method = \"...\"")
            clash = [k for k in settings if k in grid]
            if clash:
                raise SweepConfigError(f"[methods.{label!r}] sets {', '.join(clash)}, which is also a [grid] axis")
            methods.append((str(label), settings))
        baseline = sweep.get("baseline")
        labels = [label for label, _ in methods]
        if baseline is not None and baseline not in labels:
            raise SweepConfigError(f"[sweep] baseline must be one of the method labels {labels}, got {baseline!r}")

        config = cls(
            name=sweep_name.strip(), defaults=defaults, grid=grid, methods=tuple(methods),
            collapse_margin=float(margin), baseline=baseline, num_cpus=float(need["num_cpus"]), num_gpus=float(need["num_gpus"]),
            source=dict(data),
        )
        config.check_cells()
        return config

    def check_cells(self) -> None:
        """Build every cell's run config once, so that a bad value fails now, naming the cell."""
        for cell in expand(self):
            try:
                run_config_class().from_dict(cell.settings)
            except (TypeError, ValueError) as exc:
                raise SweepConfigError(f"cell {cell.cell_id}: {exc}") from None

    def canonical(self) -> dict[str, Any]:
        """What identifies the cells' results (the name, the margin, the baseline and the resources do not
        change them)."""
        return {
            "defaults": self.defaults,
            "grid": {k: list(v) for k, v in self.grid.items()},
            "methods": [[label, settings] for label, settings in self.methods],
        }

    def config_hash(self) -> str:
        """SHA-256 of the canonical form: the same settings in any key order give the same hash."""
        text = json.dumps(self.canonical(), sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(text.encode()).hexdigest()

    @property
    def base_to_new(self) -> bool:
        """Whether any cell trains on base classes and reports base, new and their harmonic mean."""
        values = self.grid.get("base_to_new", (self.defaults.get("base_to_new", False),))
        return any(bool(v) for v in values) or any(bool(s.get("base_to_new")) for _, s in self.methods)


def load_sweep_config(path: str | Path) -> SweepConfig:
    """Read and validate a sweep TOML file (a missing file or bad TOML is a :class:`SweepConfigError`)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SweepConfigError(f"sweep config not found: {path}") from None
    except OSError as exc:
        raise SweepConfigError(f"cannot read sweep config {path}: {exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SweepConfigError(f"{path} is not valid TOML: {exc}") from None
    return SweepConfig.from_dict(data, name=path.stem)
