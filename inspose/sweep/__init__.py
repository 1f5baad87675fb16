"""Config sweeps: train and evaluate every combination of config grids (``tools/sweep.py``).

``plan`` reads the ``--grid`` arguments (``variants``: the ``--variants`` file), names the run
folders, checks the sweep against the config up front and gives each run's commands; ``run`` trains
and evaluates the runs in subprocesses, one after another or one per GPU (``evaluate_run`` is the
evaluation step, ``tools/evaluate_run.py``); ``results`` reads and writes ``final_metrics.json`` and
the ``results.md`` / ``results.csv`` tables (``seeds``: the runs of a SEED axis grouped).
"""
from .plan import (
    GridAxis,
    GridError,
    SweepPlan,
    SweepRun,
    grid_combinations,
    name_runs,
    name_variant_runs,
    parse_grid,
    parse_grid_arg,
    plan_sweep,
    training_only_opts,
    validate_sweep,
)
from .results import (
    FAILED,
    FINAL_METRICS_FILE,
    FINISHED,
    NOT_RUN,
    SKIPPED,
    MetricsFileError,
    collect_rows,
    read_final_metrics,
    write_final_metrics,
    write_tables,
)
from .run import RunOutcome, evaluate_run, run_all, run_one, run_sweep
from .variants import Variant, load_variants, parse_variants

__all__ = [
    "FAILED",
    "FINAL_METRICS_FILE",
    "FINISHED",
    "GridAxis",
    "GridError",
    "MetricsFileError",
    "NOT_RUN",
    "RunOutcome",
    "SKIPPED",
    "SweepPlan",
    "SweepRun",
    "Variant",
    "collect_rows",
    "evaluate_run",
    "grid_combinations",
    "load_variants",
    "name_runs",
    "name_variant_runs",
    "parse_grid",
    "parse_grid_arg",
    "parse_variants",
    "plan_sweep",
    "read_final_metrics",
    "run_all",
    "run_one",
    "run_sweep",
    "training_only_opts",
    "validate_sweep",
    "write_final_metrics",
    "write_tables",
]
