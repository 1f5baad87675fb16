"""Evaluate one sweep run's ``model_final.pth`` and write its ``final_metrics.json``.

    python -m inspose.sweep.evaluate_run --config-file CFG --output DIR/RUN/final_metrics.json \
        OUTPUT_DIR DIR/RUN MODEL.WEIGHTS DIR/RUN/model_final.pth KEY VALUE ...

What ``tools/train_net.py --eval-only`` does, plus writing the metrics to a file instead of only
logging them. It logs to ``OUTPUT_DIR/log.txt`` after the training log and leaves the training's
``config.yaml`` alone. With several test datasets the first one's metrics are written.
"""
import argparse
import logging
import sys

import inspose  # noqa: F401  (first: compat shim, registrations)
from detectron2.utils.logger import setup_logger

from ..checkpoint import InsPoseCheckpointer
from ..engine import Trainer
from ..engine.setup import setup_cfg
from .metrics_file import FINAL_METRICS_FILE, write_final_metrics

__all__ = ["evaluate_run", "keypoint_metrics_of", "main"]

logger = logging.getLogger("inspose.sweep")


def keypoint_metrics_of(results, test_datasets) -> dict:
    """The ``{"AP": ...}`` dict of the first test dataset in ``Trainer.test``'s results.

    ``Trainer.test`` returns ``{"keypoints": {...}}`` for one dataset and
    ``{dataset: {"keypoints": {...}}}`` for several.
    """
    if not test_datasets:
        raise ValueError("DATASETS.TEST is empty: there is nothing to evaluate on")
    if len(test_datasets) > 1:
        first = test_datasets[0]
        logger.warning("%d test datasets: final metrics are those of %s", len(test_datasets), first)
        results = results.get(test_datasets[0], {})
    if "keypoints" not in results:
        raise ValueError(f"evaluation on {test_datasets[0]} returned no keypoint metrics: {dict(results)}")
    return results["keypoints"]


def evaluate_run(args) -> dict:
    """Load ``MODEL.WEIGHTS``, evaluate on DATASETS.TEST and write ``args.output``."""
    cfg = setup_cfg(args, default_setup_fn=None)
    for name in ("detectron2", "fvcore", "inspose"):
        setup_logger(cfg.OUTPUT_DIR, name=name)
    model = Trainer.build_model(cfg)
    checkpointer = InsPoseCheckpointer(model, save_dir=cfg.OUTPUT_DIR, cfg=cfg)
    checkpointer.resume_or_load(cfg.MODEL.WEIGHTS, resume=False)
    results = Trainer.test(cfg, model)
    dataset = cfg.DATASETS.TEST[0] if cfg.DATASETS.TEST else None
    metrics = keypoint_metrics_of(results, list(cfg.DATASETS.TEST))
    write_final_metrics(args.output, metrics, dataset=dataset, weights=cfg.MODEL.WEIGHTS)
    logger.info("wrote %s", args.output)
    return metrics


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config-file", required=True)
    parser.add_argument("--output", required=True, help=f"the {FINAL_METRICS_FILE} to write")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE config overrides")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    evaluate_run(parse_args(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
