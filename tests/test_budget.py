"""The quick-start's time budget (``inspose.engine.budget``): the end of training re-estimated from
the pace while training, the learning-rate steps following it; a fake clock, no timed test."""
from types import SimpleNamespace

import pytest
import torch
from detectron2.engine import hooks

from inspose.engine.budget import BudgetHook, fit_schedule, iterations_that_fit
from inspose.engine.trainer import Trainer

from .model_utils import tiny_cfg


def test_iterations_that_fit():
    assert iterations_that_fit(200, 90.0, 0.45, 300.0, 10_000) == 200 + 466
    assert iterations_that_fit(200, 90.0, 0.1, 300.0, 1000) == 1000  # the config's MAX_ITER caps it
    assert iterations_that_fit(200, 400.0, 0.45, 300.0, 1000) == 201  # over budget: stop next step


class Clock:
    now = 0.0

    def __call__(self):
        return self.now


def _trainer(cfg, planned):
    """What BudgetHook and move_schedule_end use of a trainer: iter, max_iter, optimizer, hooks."""
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=cfg.SOLVER.BASE_LR)
    scheduler = Trainer.build_lr_scheduler(fit_schedule(cfg, planned), optimizer)
    printer = SimpleNamespace(_max_iter=planned)
    writer = SimpleNamespace(_writers=[printer])
    trainer = SimpleNamespace(iter=0, max_iter=planned, optimizer=optimizer, scheduler=scheduler)
    trainer._hooks = [hooks.LRScheduler(optimizer, scheduler), writer]
    return trainer, printer


def _simulate(pace_of, budget=300.0, planned=1000, every=200):
    """Run a BudgetHook over a simulated training loop whose step ``i`` takes ``pace_of(i)`` s."""
    cfg = tiny_cfg("SOLVER.MAX_ITER", 2000, "SOLVER.STEPS", "(1500,)", "SOLVER.WARMUP_ITERS", 10)
    clock = Clock()
    trainer, printer = _trainer(cfg, planned)
    hook = BudgetHook(cfg, budget, limit=cfg.SOLVER.MAX_ITER, every=every, clock=clock)
    hook.trainer = trainer
    hook.before_train()
    while trainer.iter < trainer.max_iter:
        clock.now += pace_of(trainer.iter)
        hook.after_step()
        trainer.iter += 1
    return trainer, printer, clock.now


def test_a_slower_machine_ends_training_within_the_budget():
    trainer, printer, seconds = _simulate(lambda i: 0.45)  # planned 0.3 s per iteration
    assert trainer.max_iter == 666 and seconds <= 300.0 * 1.1
    assert printer._max_iter == 666  # the progress lines' ETA follows
    scheduler = trainer.scheduler
    assert scheduler._max_iter == 666
    assert scheduler._multiplier(498 / 666) == pytest.approx(1.0)  # STEPS scaled: 1500/2000 * 666 = 499
    assert scheduler._multiplier(500 / 666) == pytest.approx(0.1)
    assert trainer._hooks[0].scheduler is scheduler


def test_a_pace_that_changes_while_training_is_followed():
    trainer, _, seconds = _simulate(lambda i: 0.3 if i < 400 else 0.6)
    assert 300.0 * 0.9 <= seconds <= 300.0 * 1.1


def test_a_faster_machine_trains_longer_up_to_the_config():
    trainer, _, seconds = _simulate(lambda i: 0.1)
    assert trainer.max_iter == 2000 and seconds < 300.0


def test_the_learning_rate_continues_from_the_current_iteration():
    cfg = tiny_cfg("SOLVER.MAX_ITER", 1000, "SOLVER.STEPS", "(500,)", "SOLVER.WARMUP_ITERS", 1)
    trainer, _ = _trainer(cfg, 1000)
    trainer.iter = 300
    from inspose.engine.budget import move_schedule_end

    move_schedule_end(trainer, fit_schedule(cfg, 400))  # new step at 200: already passed
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(cfg.SOLVER.BASE_LR * 0.1)
