#!/usr/bin/env python
"""Train and evaluate InsPose with detectron2's command line.

    python tools/train_net.py --config-file configs/InsPose_R_50_36ep.yaml --num-gpus 8
    python tools/train_net.py --config-file CFG --eval-only MODEL.WEIGHTS output/model_final.pth
    python tools/train_net.py --config-file CFG --resume          # continue from last_checkpoint
    python tools/train_net.py --config-file configs/quick_schedules/InsPose_R_18_tiny_cpu.yaml \\
        --num-gpus 2 --dist-url auto                               # two CPU processes (gloo)

Trailing ``KEY VALUE`` pairs override the config (a tuple is written "(30,)"). Without CUDA the run
uses the CPU. A config that cannot be loaded, an unregistered dataset, or ``--eval-only`` without
trained weights (unless ``--allow-untrained``) stops the tool with one line and exit code 2. The
logic is ``inspose.engine.run``; this file is the command line.
"""
import argparse
import logging
import os
import sys

logger = logging.getLogger("inspose")
TOOL = "train_net"


def build_parser() -> argparse.ArgumentParser:
    """detectron2's ``default_argument_parser`` flags (built without importing torch) plus
    ``--allow-untrained``."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config-file", default="", metavar="FILE", help="the config (YAML)")
    parser.add_argument("--resume", action="store_true", help="continue from OUTPUT_DIR's last checkpoint")
    parser.add_argument("--eval-only", action="store_true", help="evaluate MODEL.WEIGHTS, do not train")
    parser.add_argument(
        "--allow-untrained", action="store_true",
        help="with --eval-only: evaluate even when MODEL.WEIGHTS holds no trained InsPose heads",
    )  # fmt: skip
    parser.add_argument("--num-gpus", type=int, default=1, help="processes per machine (GPUs, or CPU processes)")
    parser.add_argument("--num-machines", type=int, default=1, help="total number of machines")
    parser.add_argument("--machine-rank", type=int, default=0, help="the rank of this machine")
    port = 2**15 + 2**14 + hash(os.getuid() if sys.platform != "win32" else 1) % 2**14
    parser.add_argument(
        "--dist-url", default=f"tcp://127.0.0.1:{port}",
        help="torch.distributed init URL of machine 0 ('auto': a free local port)",
    )  # fmt: skip
    parser.add_argument("opts", nargs=argparse.REMAINDER, default=None, help="KEY VALUE config overrides")
    return parser


def parse_args(argv=None) -> argparse.Namespace:
    args = build_parser().parse_args(argv)
    if not args.config_file:
        print(
            f"{TOOL}: error: --config-file is required, e.g. python tools/train_net.py "
            "--config-file configs/quick_schedules/InsPose_R_18_tiny_cpu.yaml",
            file=sys.stderr,
        )
        raise SystemExit(2)
    return args


def main(args):
    """One process's run (``launch`` calls it in every process)."""
    import inspose  # noqa: F401  (first: makes detectron2 importable, registers model and datasets)
    from inspose.engine import setup_cfg
    from inspose.engine.run import train_or_evaluate

    cfg = setup_cfg(args)
    return train_or_evaluate(cfg, eval_only=args.eval_only, resume=args.resume)


def check_before_launch(args) -> None:
    """Load the config, check its datasets and (``--eval-only``) the weights, in this process."""
    from inspose.engine import setup_cfg
    from inspose.engine.weights import check_trained_weights

    cfg = setup_cfg(args, default_setup_fn=None)
    if args.eval_only and not args.resume and not args.allow_untrained:
        check_trained_weights(cfg.MODEL.WEIGHTS)


def cli(argv=None):
    args = parse_args(argv)
    import inspose  # noqa: F401  (first: makes detectron2 importable, registers model and datasets)
    from inspose.engine.launch import launch
    from inspose.engine.user_errors import exit_on_user_error

    exit_on_user_error(TOOL, lambda: check_before_launch(args))
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
