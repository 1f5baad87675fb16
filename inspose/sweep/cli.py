"""Command line of ``tools/sweep.py``: train and evaluate every combination of config grids.

    python tools/sweep.py --config-file configs/InsPose_R_50_36ep.yaml \
        --grid MODEL.INSPOSE.KPNET_DEPTH=1,2,3,4 --grid "INPUT.MIN_SIZE_TRAIN=[(640,),(800,)]" \
        --output-root output/sweeps/kpnet_depth [--num-gpus 4] [KEY VALUE ...]

Each run lives in ``OUTPUT_ROOT/<run>/`` (see ``runner.py``); a run with ``final_metrics.json`` is
skipped, so the same command continues an interrupted sweep. At the end (also after Ctrl-C)
``results.md`` and ``results.csv`` list every run. Exit code 0 when every run finished, 1 when one
failed, 2 when the grid or the config is wrong (nothing runs then).
"""
import argparse
import contextlib
import logging
import os
import subprocess
import sys
from typing import List, Sequence

from ..config import ConfigError, load_config
from .grid import GridError, grid_combinations, parse_grid
from .naming import SweepRun, name_runs
from .runner import FAILED, SweepPlan, training_only_opts
from .schedule import run_all
from .tables import collect_rows, write_tables
from .validate import validate_sweep

__all__ = ["main", "parse_args", "plan_sweep", "run_sweep"]

logger = logging.getLogger("inspose.sweep")
SWEEP_LOG = "sweep_log.txt"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config-file", required=True, metavar="FILE")
    parser.add_argument(
        "--grid", action="append", required=True, metavar="KEY=VALUES",
        help="a config key and its values: KEY=v1,v2 or KEY=[v1,v2] (Python list); repeat for a product",
    )  # fmt: skip
    parser.add_argument("--output-root", required=True, metavar="DIR")
    parser.add_argument("--num-gpus", type=int, default=1, help="runs at a time, one GPU each (default 1)")
    parser.add_argument(
        "--dry-run", action="store_true", help="list the runs and their commands, run nothing"
    )
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE overrides for every run")
    return parser.parse_args(argv)


def plan_sweep(args: argparse.Namespace):
    """(plan, runs) of the command line, validated; raises GridError / ConfigError."""
    if args.num_gpus < 1:
        raise GridError(f"--num-gpus must be >= 1, got {args.num_gpus}")
    axes = parse_grid(args.grid)
    runs = name_runs(grid_combinations(axes))
    extra_opts = list(args.opts or [])
    validate_sweep(args.config_file, axes, runs, extra_opts)
    train_opts = training_only_opts(load_config(args.config_file, extra_opts), [a.key for a in axes])
    root = os.path.abspath(args.output_root)
    plan = SweepPlan(args.config_file, root, tuple(extra_opts), tuple(train_opts))
    return plan, runs


@contextlib.contextmanager
def _sweep_logging(output_root: str):
    handlers: List[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if output_root:
        os.makedirs(output_root, exist_ok=True)
        handlers.append(logging.FileHandler(os.path.join(output_root, SWEEP_LOG)))
    formatter = logging.Formatter("[%(asctime)s sweep] %(levelname)s %(message)s", "%m/%d %H:%M:%S")
    for handler in handlers:
        handler.setFormatter(formatter)
        logger.addHandler(handler)
    level, propagate = logger.level, logger.propagate
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield
    finally:
        for handler in handlers:
            logger.removeHandler(handler)
            handler.close()
        logger.setLevel(level)
        logger.propagate = propagate


def _print_dry_run(plan: SweepPlan, runs: Sequence[SweepRun]) -> None:
    for run in runs:
        print(f"{run.name}\n  train: {subprocess.list2cmdline(plan.train_argv(run))}")
        print(f"  eval:  {subprocess.list2cmdline(plan.eval_argv(run))}")


def run_sweep(plan: SweepPlan, runs: Sequence[SweepRun], num_gpus: int) -> int:
    """Run every run, write the tables (also when interrupted); 0 if none failed, else 1."""
    logger.info("%d runs in %s (%s)", len(runs), plan.output_root, ", ".join(r.name for r in runs))
    outcomes = []
    try:
        outcomes = run_all(plan, runs, num_gpus)
    finally:
        failed = [o.run.name for o in outcomes if o.status == FAILED]
        rows = collect_rows(plan.output_root, runs, failed)
        for path in write_tables(plan.output_root, rows):
            logger.info("wrote %s", path)
    if failed:
        logger.error("%d of %d runs failed: %s", len(failed), len(runs), ", ".join(failed))
        return 1
    logger.info("all %d runs finished", len(runs))
    return 0


def main(argv=None) -> int:
    args = parse_args(argv)
    with _sweep_logging("" if args.dry_run else os.path.abspath(args.output_root)):
        try:
            plan, runs = plan_sweep(args)
        except (GridError, ConfigError) as error:
            logger.error("%s", error)
            return 2
        if args.dry_run:
            _print_dry_run(plan, runs)
            return 0
        return run_sweep(plan, runs, args.num_gpus)
