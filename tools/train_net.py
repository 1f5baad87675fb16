#!/usr/bin/env python
"""Train and evaluate InsPose with detectron2's command line.

    python tools/train_net.py --config-file configs/InsPose_R_50_36ep.yaml --num-gpus 8
    python tools/train_net.py --config-file CFG --eval-only MODEL.WEIGHTS output/model_final.pth
    python tools/train_net.py --config-file CFG --resume          # continue from last_checkpoint

Trailing ``KEY VALUE`` pairs override the config. Without CUDA the run uses the CPU.
"""
import logging

import inspose  # noqa: F401  (first: makes detectron2 importable, registers model and datasets)
from detectron2.engine import default_argument_parser
from detectron2.evaluation import verify_results
from detectron2.utils import comm

from inspose.checkpoint import InsPoseCheckpointer
from inspose.engine import Trainer, setup_cfg
from inspose.engine.launch import launch

logger = logging.getLogger("inspose")


def main(args):
    cfg = setup_cfg(args)
    if args.eval_only:
        model = Trainer.build_model(cfg)
        InsPoseCheckpointer(model, save_dir=cfg.OUTPUT_DIR, cfg=cfg).resume_or_load(
            cfg.MODEL.WEIGHTS, resume=args.resume
        )
        results = Trainer.test(cfg, model)
        if cfg.TEST.AUG.ENABLED:
            results.update(Trainer.test_with_TTA(cfg, model))
        if comm.is_main_process():
            verify_results(cfg, results)
        return results
    trainer = Trainer(cfg)
    trainer.resume_or_load(resume=args.resume)
    return trainer.train()


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
