#!/usr/bin/env python
"""Train and evaluate InsPose with detectron2's command line.

    python tools/train_net.py --config-file configs/InsPose_R_50_36ep.yaml --num-gpus 8
    python tools/train_net.py --config-file CFG --eval-only MODEL.WEIGHTS output/model_final.pth
    python tools/train_net.py --config-file CFG --resume          # continue from last_checkpoint

Trailing ``KEY VALUE`` pairs override the config. Without CUDA the run uses the CPU. The logic is
``inspose.engine.run``; this file is the command line.
"""
import logging

import inspose  # noqa: F401  (first: makes detectron2 importable, registers model and datasets)
from detectron2.engine import default_argument_parser

from inspose.engine import setup_cfg
from inspose.engine.launch import launch
from inspose.engine.run import train_or_evaluate

logger = logging.getLogger("inspose")


def main(args):
    """One process's run (``launch`` calls it in every process)."""
    cfg = setup_cfg(args)
    return train_or_evaluate(cfg, eval_only=args.eval_only, resume=args.resume)


def cli(argv=None):
    args = default_argument_parser().parse_args(argv)
    logger.info("Command line arguments: %s", args)
    return launch(
        main,
        args.num_gpus,
        num_machines=args.num_machines,
        machine_rank=args.machine_rank,
        dist_url=args.dist_url,
        args=(args,),
    )


if __name__ == "__main__":
    cli()
