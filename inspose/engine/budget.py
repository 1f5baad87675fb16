"""Training within a time budget (``make demo``): the pace is re-estimated while training and the
schedule's end moves to what still fits, with the learning-rate steps following the new end.

A few timed steps before training give a first pace, but a machine often runs slower once
training is under way (data loading, other load, a warm CPU): ``BudgetHook`` measures the pace of
the last ``every`` iterations, and ``BudgetedTrainer`` loops until the (moving) ``max_iter``.
"""
import logging
import time
from typing import Callable

from detectron2.engine import HookBase, hooks
from detectron2.solver.lr_scheduler import LRMultiplier
from detectron2.utils.events import EventStorage

from .trainer import Trainer

__all__ = ["BudgetHook", "BudgetedTrainer", "fit_schedule", "iterations_that_fit"]

logger = logging.getLogger(__name__)


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


def iterations_that_fit(done: int, elapsed: float, seconds_per_iteration: float, budget: float, limit: int) -> int:
    """The total iterations that end training within ``budget`` seconds: ``done`` after ``elapsed``
    seconds, then ``seconds_per_iteration`` each; at least ``done + 1``, at most ``limit``."""
    more = max(0.0, budget - elapsed) / max(seconds_per_iteration, 1e-9)
    return int(min(limit, max(done + 1, done + int(more))))


class BudgetHook(HookBase):
    """Every ``every`` iterations, moves ``trainer.max_iter`` to what fits in ``budget_seconds``
    (counted from ``before_train``) at the pace of those iterations (``refit``).

    Args:
        base_cfg: the config whose schedule (STEPS, warm-up) is rescaled to each new end.
        limit: the most iterations allowed (the config's MAX_ITER).
        clock: seconds (``time.monotonic``; tests pass a fake clock).
    """

    def __init__(
        self, base_cfg, budget_seconds: float, limit: int, every: int = 200,
        clock: Callable[[], float] = time.monotonic,
    ):  # fmt: skip
        self.base_cfg, self.budget, self.limit, self.every, self.clock = base_cfg, budget_seconds, limit, every, clock
        self.start = self.window_start = None
        self.window_iter = 0

    def before_train(self):
        self.start = self.window_start = self.clock()
        self.window_iter = self.trainer.iter

    def after_step(self):
        done = self.trainer.iter + 1
        if done - self.window_iter < self.every or done >= self.trainer.max_iter:
            return
        now = self.clock()
        pace = (now - self.window_start) / (done - self.window_iter)
        self.window_start, self.window_iter = now, done
        total = iterations_that_fit(done, now - self.start, pace, self.budget, self.limit)
        if total != self.trainer.max_iter:
            logger.info(
                "Budget: %.2f s per iteration over the last %d, %.1f of %.1f min used: ending at "
                "iteration %d instead of %d", pace, self.every, (now - self.start) / 60, self.budget / 60,
                total, self.trainer.max_iter,
            )  # fmt: skip
            move_schedule_end(self.trainer, fit_schedule(self.base_cfg, total))


def move_schedule_end(trainer, cfg) -> None:
    """End ``trainer`` at ``cfg.SOLVER.MAX_ITER``: the learning-rate schedule of ``cfg`` continues
    from the current iteration; the final checkpoint and the ETA of the progress lines follow."""
    new_end = cfg.SOLVER.MAX_ITER
    multiplier = Trainer.build_lr_scheduler(cfg, trainer.optimizer)._multiplier
    scheduler = LRMultiplier(trainer.optimizer, multiplier, new_end, last_iter=trainer.iter)
    trainer.scheduler, trainer.max_iter = scheduler, new_end
    for hook in trainer._hooks:
        if isinstance(hook, hooks.LRScheduler):
            hook._scheduler = scheduler
        if isinstance(hook, hooks.PeriodicCheckpointer):
            hook.max_iter = new_end
        for writer in getattr(hook, "_writers", []):
            if hasattr(writer, "_max_iter"):
                writer._max_iter = new_end


class BudgetedTrainer(Trainer):
    """``Trainer`` whose loop runs until ``self.max_iter`` as it is at each step (a ``BudgetHook``
    moves it), not until the value it had at the start."""

    def train(self):
        logger.info("Starting training from iteration %d", self.start_iter)
        self.iter = self.start_iter
        with EventStorage(self.start_iter) as self.storage:
            try:
                self.before_train()
                while self.iter < self.max_iter:
                    self.before_step()
                    self.run_step()
                    self.after_step()
                    self.iter += 1
            finally:
                self.after_train()
        return getattr(self, "_last_eval_results", None)
