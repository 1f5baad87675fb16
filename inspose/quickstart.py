"""The synthetic quick-start behind ``make demo`` (``tools/quickstart.py``): InsPose end to end on
the CPU, on data the project makes itself.

``run_quickstart`` (1) generates the synthetic dataset under $DETECTRON2_DATASETS/synthetic if it is
absent (gentle default settings), (2) trains the small CPU InsPose from scratch within a time
budget, (3) evaluates on synthetic val with pycocotools (OKS AP / AR table) and (4) draws the
predictions on a few val images into OUTPUT_DIR/examples/.

The schedule: a few timed training steps measure this machine's seconds per iteration; MAX_ITER is
then what fits in the budget (never more than the config's MAX_ITER) and the learning-rate steps
and warm-up scale with it, so a faster machine trains longer within the same minutes. While
training, the pace of every 200 iterations re-estimates the end (``inspose.engine.budget``), so a
machine that runs slower than the first steps still ends training within the budget.
"""
import logging
import os
import time
from dataclasses import dataclass, field
from typing import List, Sequence

import torch
from detectron2.utils.events import EventStorage

from .data.builtin import SYNTHETIC_SPLITS
from .data.synthetic import GeneratorSettings, generate_dataset
from .engine import Trainer, setup_cfg, setup_loggers
from .engine.budget import BudgetedTrainer, BudgetHook, fit_schedule
from .engine.example_pictures import draw_examples as draw_pictures
from .evaluation import KEYPOINT_METRICS

__all__ = [
    "DEMO_CONFIG",
    "QuickstartOptions",
    "draw_examples",
    "ensure_synthetic_dataset",
    "fit_schedule",
    "run_quickstart",
    "seconds_per_iteration",
    "train_within_budget",
]

DEMO_CONFIG = "configs/synthetic/InsPose_R_18_synthetic_demo.yaml"

logger = logging.getLogger(__name__)


def ensure_synthetic_dataset(folder: str, num_train: int, num_val: int, seed: int) -> None:
    """Generate the synthetic dataset into ``folder`` unless both annotation files exist."""
    files = [os.path.join(folder, "annotations", f"person_keypoints_{s}.json") for s in ("train", "val")]
    if all(os.path.isfile(f) for f in files):
        logger.info("Synthetic dataset found in %s", folder)
        return
    logger.info("Generating the synthetic dataset in %s (%d train, %d val, seed %d) ...", folder, num_train, num_val, seed)
    start = time.time()
    generate_dataset(folder, num_train, num_val, seed=seed, settings=GeneratorSettings())
    logger.info("Synthetic dataset generated in %.1f s", time.time() - start)


def seconds_per_iteration(cfg, steps: int = 10, warmup: int = 5) -> float:
    """Mean wall time of a training step (loading, forward, backward, optimizer) on this config's data.

    The first steps are slower (allocator, caches) and are left out.
    """
    torch.manual_seed(0)
    model = Trainer.build_model(cfg)
    optimizer = Trainer.build_optimizer(cfg, model)
    data = iter(Trainer.build_train_loader(cfg))
    times = []
    with EventStorage():
        for step in range(warmup + steps):
            start = time.perf_counter()
            batch = next(data)
            loss = sum(model(batch).values())
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if step >= warmup:
                times.append(time.perf_counter() - start)
    return sum(times) / len(times)


def train_within_budget(cfg, budget_seconds: float, safety: float = 0.97, every: int = 200) -> Trainer:
    """Train with as many iterations as fit in ``budget_seconds`` (at most cfg.SOLVER.MAX_ITER),
    the end re-estimated every ``every`` iterations (``BudgetHook``)."""
    start = time.time()
    per_iteration = seconds_per_iteration(cfg)
    remaining = budget_seconds * safety - (time.time() - start)
    iterations = int(min(cfg.SOLVER.MAX_ITER, max(20, remaining / per_iteration)))
    logger.info(
        "Training budget %.1f min, %.2f s per iteration here: %d iterations (config allows %d)",
        budget_seconds / 60, per_iteration, iterations, cfg.SOLVER.MAX_ITER,
    )
    trainer = BudgetedTrainer(fit_schedule(cfg, iterations))
    trainer.resume_or_load(resume=False)
    left = budget_seconds * safety - (time.time() - start)
    trainer.register_hooks([BudgetHook(cfg, left, cfg.SOLVER.MAX_ITER, every)])
    trainer.train()
    return trainer


def draw_examples(cfg, model, dataset_name: str, count: int) -> List[str]:
    """Draw the model's predictions on the first ``count`` images of a dataset into
    OUTPUT_DIR/examples/; return the paths."""
    folder = os.path.join(cfg.OUTPUT_DIR, "examples")
    return draw_pictures(model, Trainer.build_test_loader(cfg, dataset_name), dataset_name, count, folder)


@dataclass
class QuickstartOptions:
    """What ``tools/quickstart.py`` takes: the config and its ``KEY VALUE`` overrides (``opts``),
    the training budget, the dataset's size and seed, and how many val pictures to draw."""

    config_file: str = DEMO_CONFIG
    budget_minutes: float = 15.0
    num_train: int = 2000
    num_val: int = 200
    seed: int = 0
    num_examples: int = 6
    opts: Sequence[str] = field(default_factory=list)


def _print_metrics(results: dict) -> None:
    """The keypoint metrics as a one-row markdown table."""
    print("| " + " | ".join(KEYPOINT_METRICS) + " |")
    print("|" + "---|" * len(KEYPOINT_METRICS))
    print("| " + " | ".join(f"{results[m]:.1f}" for m in KEYPOINT_METRICS) + " |")


def run_quickstart(options: QuickstartOptions) -> dict:
    """Data, training within the budget, evaluation, pictures; prints the metrics and a summary.

    Returns:
        the synthetic val keypoint metrics ({"AP": ..., ...}).
    """
    setup_loggers(names=("detectron2", "inspose"))
    root = os.path.expanduser(os.getenv("DETECTRON2_DATASETS", "datasets"))
    started = time.time()
    folder = os.path.join(root, "synthetic")
    ensure_synthetic_dataset(folder, options.num_train, options.num_val, options.seed)
    cfg = setup_cfg(options, default_setup_fn=None)
    os.makedirs(cfg.OUTPUT_DIR, exist_ok=True)
    trainer = train_within_budget(cfg, options.budget_minutes * 60)
    trained = time.time()
    # detectron2's EvalHook has evaluated the final model on DATASETS.TEST already
    results = getattr(trainer, "_last_eval_results", None) or Trainer.test(cfg, trainer.model)
    results = results["keypoints"]
    pictures = draw_examples(cfg, trainer.model, list(SYNTHETIC_SPLITS)[1], options.num_examples)
    done = time.time()
    logger.info("Synthetic val OKS keypoint metrics (%d val images):", options.num_val)
    _print_metrics(results)
    print(
        f"make demo: {trainer.max_iter} iterations, {(trained - started) / 60:.1f} min for data, "
        f"training and evaluation, {(done - trained) / 60:.1f} min for pictures; "
        f"AP {results['AP']:.1f}. Pictures: {', '.join(pictures[:2])} ..."
    )
    return results
