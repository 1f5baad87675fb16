#!/usr/bin/env python
"""Train and evaluate every combination of config grids; tabulate the results.

    python tools/sweep.py --config-file configs/InsPose_R_50_36ep.yaml \
        --grid MODEL.INSPOSE.KPNET_DEPTH=1,2,3,4 --output-root output/sweeps/kpnet_depth
    python tools/sweep.py --config-file CFG --grid MODEL.INSPOSE.OUTPUT_STRIDE=2,4,8,16 \
        --grid "INPUT.MIN_SIZE_TRAIN=[(640,),(800,)]" --output-root DIR --num-gpus 8 SOLVER.MAX_ITER 90000

Writes DIR/<run>/ (train_net's output, final_metrics.json, log.txt), DIR/results.md and
DIR/results.csv. Running the same command again skips the finished runs. ``--dry-run`` lists the
runs and their commands. Trailing ``KEY VALUE`` pairs override the config of every run.
"""
import sys

import inspose  # noqa: F401  (first: compat shim, then detectron2 registrations)
from inspose.sweep.cli import main

if __name__ == "__main__":
    sys.exit(main())
