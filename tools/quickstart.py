#!/usr/bin/env python
"""`make demo`: InsPose end to end on the CPU, on data the project makes itself.

1. generates the synthetic dataset under $DETECTRON2_DATASETS/synthetic if it is absent
   (datasets/prepare_synthetic.py, gentle default settings, seed 0);
2. trains the small CPU InsPose (configs/synthetic/InsPose_R_18_synthetic_demo.yaml) from scratch,
   stopping early if the training time budget runs out;
3. evaluates on synthetic val with pycocotools (OKS AP / AR table);
4. draws the predictions on a few val images into OUTPUT_DIR/examples/.

    python tools/run_demo.py [--budget-minutes 15] [--num-train 2000] [--num-val 200] [KEY VALUE ...]
"""
import argparse
import logging
import os
import sys
import time

import inspose  # noqa: F401  (first: makes detectron2 importable, registers model and datasets)
from detectron2.utils.logger import setup_logger

from inspose.config import load_config
from inspose.data.builtin import SYNTHETIC_SPLITS
from inspose.demo_run import draw_examples, ensure_synthetic_dataset, train_within_budget
from inspose.engine import Trainer
from inspose.evaluation import KEYPOINT_METRICS

DEMO_CONFIG = "configs/synthetic/InsPose_R_18_synthetic_demo.yaml"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config-file", default=DEMO_CONFIG)
    parser.add_argument("--budget-minutes", type=float, default=15.0, help="training time budget")
    parser.add_argument("--num-train", type=int, default=2000)
    parser.add_argument("--num-val", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0, help="dataset seed")
    parser.add_argument("--num-examples", type=int, default=6, help="val pictures to draw")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE config overrides")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    setup_logger(name="detectron2")
    setup_logger(name="inspose")
    logger = logging.getLogger("inspose")
    root = os.path.expanduser(os.getenv("DETECTRON2_DATASETS", "datasets"))
    started = time.time()
    ensure_synthetic_dataset(os.path.join(root, "synthetic"), args.num_train, args.num_val, args.seed)
    cfg = load_config(args.config_file, args.opts)
    cfg.freeze()
    os.makedirs(cfg.OUTPUT_DIR, exist_ok=True)
    trainer = train_within_budget(cfg, args.budget_minutes * 60)
    trained = time.time()
    # detectron2's EvalHook has evaluated the final model on DATASETS.TEST already
    results = getattr(trainer, "_last_eval_results", None) or Trainer.test(cfg, trainer.model)
    results = results["keypoints"]
    pictures = draw_examples(cfg, trainer.model, list(SYNTHETIC_SPLITS)[1], args.num_examples)
    done = time.time()
    logger.info("Synthetic val OKS keypoint metrics (%d val images):", args.num_val)
    print("| " + " | ".join(KEYPOINT_METRICS) + " |")
    print("|" + "---|" * len(KEYPOINT_METRICS))
    print("| " + " | ".join(f"{results[m]:.1f}" for m in KEYPOINT_METRICS) + " |")
    print(
        f"make demo: {trainer.max_iter} iterations, {(trained - started) / 60:.1f} min for data, "
        f"training and evaluation, {(done - trained) / 60:.1f} min for pictures; "
        f"AP {results['AP']:.1f}. Pictures: {', '.join(pictures[:2])} ..."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
