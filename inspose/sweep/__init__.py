"""Config sweeps: train and evaluate every combination of config grids (``tools/sweep.py``).

``grid`` reads ``--grid`` arguments, ``naming`` names the run folders, ``validate`` checks the
sweep against the config up front, ``runner`` trains and evaluates one run in subprocesses,
``schedule`` runs them one after another or one per GPU, ``tables`` writes ``results.md`` /
``results.csv``, ``cli`` ties them together. ``evaluate_run`` is the evaluation subprocess
(``python -m inspose.sweep.evaluate_run``), not imported here.
"""
from .grid import GridAxis, GridError, grid_combinations, parse_grid, parse_grid_arg
from .metrics_file import FINAL_METRICS_FILE, read_final_metrics, write_final_metrics
from .naming import SweepRun, name_runs
from .runner import RunOutcome, SweepPlan, run_one
from .schedule import run_all
from .tables import collect_rows, write_tables

__all__ = [
    "FINAL_METRICS_FILE",
    "GridAxis",
    "GridError",
    "RunOutcome",
    "SweepPlan",
    "SweepRun",
    "collect_rows",
    "grid_combinations",
    "name_runs",
    "parse_grid",
    "parse_grid_arg",
    "read_final_metrics",
    "run_all",
    "run_one",
    "write_final_metrics",
    "write_tables",
]
