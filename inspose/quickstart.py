"""The pieces of `make demo` (tools/run_demo.py): data, a schedule that fits a time budget, pictures.

The schedule: a few timed training steps measure this machine's seconds per iteration; MAX_ITER is
then what fits in the budget (never more than the config's MAX_ITER) and the learning-rate steps
and warm-up scale with it, so a faster machine trains longer within the same minutes.
"""
import logging
import os
import time
from typing import List

import cv2
import torch
from detectron2.data import MetadataCatalog

from .data.synthetic import GeneratorSettings, generate_dataset
from .engine import Trainer

__all__ = ["ensure_synthetic_dataset", "seconds_per_iteration", "fit_schedule", "train_within_budget", "draw_examples"]

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
    from detectron2.utils.events import EventStorage

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


def fit_schedule(cfg, iterations: int):
    """A copy of ``cfg`` with MAX_ITER = ``iterations`` and STEPS / warm-up scaled to it."""
    cfg = cfg.clone()
    cfg.defrost()
    scale = iterations / cfg.SOLVER.MAX_ITER
    cfg.SOLVER.STEPS = tuple(max(1, int(s * scale)) for s in cfg.SOLVER.STEPS)
    cfg.SOLVER.WARMUP_ITERS = max(1, int(cfg.SOLVER.WARMUP_ITERS * min(1.0, scale)))
    cfg.SOLVER.MAX_ITER = iterations
    cfg.freeze()
    return cfg


def train_within_budget(cfg, budget_seconds: float, safety: float = 0.95) -> Trainer:
    """Train with as many iterations as fit in ``budget_seconds`` (at most cfg.SOLVER.MAX_ITER)."""
    start = time.time()
    per_iteration = seconds_per_iteration(cfg)
    remaining = budget_seconds * safety - (time.time() - start)
    iterations = int(min(cfg.SOLVER.MAX_ITER, max(20, remaining / per_iteration)))
    logger.info(
        "Training budget %.1f min, %.2f s per iteration here: %d iterations (config allows %d)",
        budget_seconds / 60, per_iteration, iterations, cfg.SOLVER.MAX_ITER,
    )
    trainer = Trainer(fit_schedule(cfg, iterations))
    trainer.resume_or_load(resume=False)
    trainer.train()
    return trainer


def draw_examples(cfg, model, dataset_name: str, count: int) -> List[str]:
    """Draw the model's predictions on the first ``count`` images of a dataset; return the paths."""
    from .visualization import PoseStyle, draw_poses

    folder = os.path.join(cfg.OUTPUT_DIR, "examples")
    os.makedirs(folder, exist_ok=True)
    style = PoseStyle.from_metadata(MetadataCatalog.get(dataset_name))
    loader = Trainer.build_test_loader(cfg, dataset_name)
    model.eval()
    paths = []
    for inputs in loader:
        if len(paths) >= count:
            break
        with torch.no_grad():
            instances = model(inputs)[0]["instances"].to("cpu")
        instances = instances[instances.scores >= 0.3]
        image = cv2.imread(inputs[0]["file_name"])
        drawn = draw_poses(image, instances.pred_keypoints.numpy(), instances.scores.tolist(), style)
        path = os.path.join(folder, os.path.basename(inputs[0]["file_name"]))
        cv2.imwrite(path, drawn)
        paths.append(path)
    return paths
