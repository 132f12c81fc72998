"""Sweeps: the paper's protocol (methods × shots × seeds, and more axes) as one command.

A TOML file describes the grid (:mod:`.config`); each cell is one run folder of the run layer under the
sweep folder (:mod:`.grid`, :mod:`.folder`); an executor runs the unfinished cells here or on a Ray
cluster (:mod:`.local_executor`, :mod:`.ray_executor`); the results become a CSV, a Markdown table and a
plotly figure (:mod:`.aggregate`, :mod:`.table`, :mod:`.figure`).

Importing this package imports neither torch nor Ray.
"""
from __future__ import annotations

from .budget import SweepBudget
from .aggregate import figure_series, flag_collapsed, group_rows, result_rows
from .cell import CellOutcome, CellTask, run_cell
from .config import SweepConfig, SweepConfigError, load_sweep_config
from .folder import SweepFolder, SweepFolderError
from .grid import Cell, expand
from .local_executor import LocalExecutor
from .ray_executor import RayAddressError, RayExecutor, check_ray_address
from .runner import SweepResult, run_sweep, write_reports
from .table import markdown_table

__all__ = [
    "Cell", "CellOutcome", "CellTask", "LocalExecutor", "RayAddressError", "RayExecutor", "SweepConfig",
    "SweepBudget", "SweepConfigError", "SweepFolder", "SweepFolderError", "SweepResult", "check_ray_address", "expand",
    "figure_series", "flag_collapsed", "group_rows", "load_sweep_config", "markdown_table", "result_rows",
    "run_cell", "run_sweep", "write_reports",
]
