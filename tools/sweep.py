#!/usr/bin/env python
"""Train and evaluate every combination of config grids; tabulate the results.

    python tools/sweep.py --config-file configs/InsPose_R_50_36ep.yaml \
        --grid MODEL.INSPOSE.KPNET_DEPTH=1,2,3,4 --output-root output/sweeps/kpnet_depth
    python tools/sweep.py --config-file CFG --grid MODEL.INSPOSE.OUTPUT_STRIDE=2,4,8,16 \
        --grid "INPUT.MIN_SIZE_TRAIN=[(640,),(800,)]" --output-root DIR --num-gpus 8 SOLVER.MAX_ITER 90000
    python tools/sweep.py --config-file CFG --variants configs/release/components_sweep.yaml \
        --grid SEED=1,2 --output-root DIR

``--variants FILE`` (YAML, ``NAME: [KEY, VALUE, ...]`` per line, relative to the working directory)
makes each named set of overrides a run, crossed with the ``--grid`` combinations (``--grid`` is
then optional); run folders start with the variant's name. With a ``SEED`` grid, results.md also
has the mean and each seed's value per variant (and results_seeds.csv).

Writes DIR/<run>/ (train_net's output, final_metrics.json, log.txt), DIR/results.md and
DIR/results.csv. Running the same command again skips the finished runs (an interrupted one
resumes). ``--dry-run`` lists the runs and their commands. Trailing ``KEY VALUE`` pairs override the
config of every run. Exit code 0 when every run finished, 1 when one failed, 2 when the grid or the
config is wrong (nothing runs then). The logic is ``inspose.sweep``.
"""
import argparse
import logging
import os
import subprocess
import sys

logger = logging.getLogger("inspose.sweep")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config-file", required=True, metavar="FILE")
    parser.add_argument(
        "--grid", action="append", default=[], metavar="KEY=VALUES",
        help="a config key and its values: KEY=v1,v2 or KEY=[v1,v2] (Python list); repeat for a product",
    )  # fmt: skip
    parser.add_argument(
        "--variants", default="", metavar="FILE",
        help="YAML file of named override sets (NAME: [KEY, VALUE, ...]), each crossed with the grid",
    )  # fmt: skip
    parser.add_argument("--output-root", required=True, metavar="DIR")
    parser.add_argument("--num-gpus", type=int, default=1, help="runs at a time, one GPU each (default 1)")
    parser.add_argument(
        "--dry-run", action="store_true", help="list the runs and their commands, run nothing"
    )
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE overrides for every run")
    args = parser.parse_args(argv)
    if not args.grid and not args.variants:
        parser.error("give at least one --grid KEY=VALUES or --variants FILE")
    return args


def print_dry_run(plan, runs) -> None:
    for run in runs:
        print(f"{run.name}\n  train: {subprocess.list2cmdline(plan.train_argv(run))}")
        print(f"  eval:  {subprocess.list2cmdline(plan.eval_argv(run))}")


def main(argv=None) -> int:
    args = parse_args(argv)
    import inspose  # noqa: F401  (first: compat shim, then detectron2 registrations)
    from inspose.config import ConfigError
    from inspose.sweep.plan import GridError, plan_sweep
    from inspose.sweep.run import run_sweep, sweep_logging

    with sweep_logging("" if args.dry_run else os.path.abspath(args.output_root)):
        try:
            plan, runs = plan_sweep(
                args.config_file, args.grid, args.output_root, args.opts, args.num_gpus, args.variants
            )  # fmt: skip
        except (GridError, ConfigError) as error:
            logger.error("%s", error)
            return 2
        if args.dry_run:
            print_dry_run(plan, runs)
            return 0
        return run_sweep(plan, runs, args.num_gpus)


if __name__ == "__main__":
    sys.exit(main())
