"""Running one sweep run: train in a subprocess, then evaluate in another.

Folder ``ROOT/<run>/``:

* ``final_metrics.json`` there: the run finished earlier and is skipped;
* ``model_final.pth`` there (training finished, evaluation did not): evaluation only;
* otherwise ``tools/train_net.py --resume`` (continues from ``last_checkpoint`` after an interrupt);
  with ``TEST.EVAL_PERIOD 0`` it trains without a test set (``training_only_opts``).

Then ``python -m inspose.sweep.evaluate_run`` evaluates ``model_final.pth`` and writes
``final_metrics.json``: the metrics of exactly the final weights, written by the code that computed
them (nothing parsed from logs). Both subprocesses print to ``console.txt``; detectron2 logs to
``log.txt``, and when a step fails the sweep appends its exit code, command and the end of its
console output to ``log.txt``.
"""
import json
import logging
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from .metrics_file import FINAL_METRICS_FILE, MetricsFileError, read_final_metrics
from .naming import SweepRun

__all__ = [
    "SweepPlan", "RunOutcome", "run_one", "training_only_opts", "FINISHED", "SKIPPED", "FAILED", "NOT_RUN"
]

logger = logging.getLogger("inspose.sweep")

FINISHED, SKIPPED, FAILED, NOT_RUN = "finished", "skipped", "failed", "not run"
TRAIN_NET = Path(__file__).resolve().parents[2] / "tools" / "train_net.py"
FAILURE_TAIL_LINES = 60


def _default_train_command() -> List[str]:
    return [sys.executable, str(TRAIN_NET)]


def _default_eval_command() -> List[str]:
    return [sys.executable, "-m", "inspose.sweep.evaluate_run"]


@dataclass(frozen=True)
class SweepPlan:
    """What every run of a sweep shares.

    Attributes:
        extra_opts: ``KEY VALUE`` overrides of every run, training and evaluation.
        train_opts: overrides of the training step only (see ``training_only_opts``).
        train_command, eval_command: argv prefixes of the two steps (tests substitute fakes).
    """

    config_file: str
    output_root: str
    extra_opts: Sequence[str] = ()
    train_opts: Sequence[str] = ()
    train_command: Sequence[str] = field(default_factory=_default_train_command)
    eval_command: Sequence[str] = field(default_factory=_default_eval_command)

    def folder(self, run: SweepRun) -> str:
        return os.path.join(self.output_root, run.name)

    def train_argv(self, run: SweepRun) -> List[str]:
        folder = self.folder(run)
        opts = ["OUTPUT_DIR", folder, *run.opts(), *self.extra_opts, *self.train_opts]
        return [*self.train_command, "--config-file", self.config_file, "--resume", *opts]

    def eval_argv(self, run: SweepRun) -> List[str]:
        folder = self.folder(run)
        weights = os.path.join(folder, "model_final.pth")
        opts = ["OUTPUT_DIR", folder, *run.opts(), *self.extra_opts, "MODEL.WEIGHTS", weights]
        output = os.path.join(folder, FINAL_METRICS_FILE)
        return [*self.eval_command, "--config-file", self.config_file, "--output", output, *opts]


def training_only_opts(cfg, grid_keys: Sequence[str]) -> List[str]:
    """``DATASETS.TEST ()`` for training when it would only evaluate once, at its end.

    detectron2's trainer always evaluates after its last iteration; with ``TEST.EVAL_PERIOD 0``
    that duplicates the sweep's evaluation step, so the training step is given no test set.
    With periodic evaluation (or ``TEST.EVAL_PERIOD`` varied by the grid) training keeps it.
    """
    if cfg.TEST.EVAL_PERIOD > 0 or "TEST.EVAL_PERIOD" in grid_keys or "DATASETS.TEST" in grid_keys:
        return []
    return ["DATASETS.TEST", "()"]


@dataclass
class RunOutcome:
    """What became of a run: FINISHED, SKIPPED (finished earlier), FAILED or NOT_RUN."""

    run: SweepRun
    status: str
    metrics: Optional[Dict[str, float]] = None
    message: str = ""


def _record_settings(plan: SweepPlan, run: SweepRun) -> None:
    settings = {"config_file": plan.config_file, "overrides": run.opts(), "extra_opts": list(plan.extra_opts)}
    with open(os.path.join(plan.folder(run), "sweep_run.json"), "w") as f:
        json.dump(settings, f, indent=2)


def _warn_if_settings_changed(plan: SweepPlan, run: SweepRun) -> None:
    path = os.path.join(plan.folder(run), "sweep_run.json")
    try:
        with open(path) as f:
            before = json.load(f)
    except (OSError, ValueError):
        return
    now = {"config_file": plan.config_file, "overrides": run.opts(), "extra_opts": list(plan.extra_opts)}
    if before != now:
        logger.warning(
            "run %s finished with other settings (%s), now %s: delete its folder to rerun",
            run.name, before, now,
        )  # fmt: skip


def _finished_metrics(plan: SweepPlan, run: SweepRun) -> Optional[Dict[str, float]]:
    path = os.path.join(plan.folder(run), FINAL_METRICS_FILE)
    try:
        return read_final_metrics(path)
    except MetricsFileError as error:
        logger.warning("run %s: %s; running it again", run.name, error)
        return None


def _tail(path: str, lines: int) -> str:
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return ""


def _run_step(step: str, argv: List[str], folder: str, env: Dict[str, str]) -> Optional[str]:
    """Run one subprocess; None on success, else a message (also appended to ``log.txt``)."""
    console = os.path.join(folder, "console.txt")
    with open(console, "a") as out:
        out.write(f"\n===== sweep {step}: {subprocess.list2cmdline(argv)}\n")
        out.flush()
        code = subprocess.call(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
    if code == 0:
        return None
    message = f"{step} exited with code {code}"
    details = f"command: {subprocess.list2cmdline(argv)}\nlast lines of {console}:\n"
    _append_to_log(folder, message, details + _tail(console, FAILURE_TAIL_LINES))
    return message


def _append_to_log(folder: str, message: str, details: str = "") -> None:
    with open(os.path.join(folder, "log.txt"), "a") as log:
        log.write(f"\n===== sweep: {message}\n{details}")


def _environment(gpu: Optional[str]) -> Dict[str, str]:
    env = dict(os.environ)
    if gpu is not None:
        env["CUDA_VISIBLE_DEVICES"] = gpu
    return env


def _train_and_evaluate(plan: SweepPlan, run: SweepRun, gpu: Optional[str]) -> Optional[str]:
    """None when both steps succeeded, else what failed."""
    folder, env = plan.folder(run), _environment(gpu)
    where = f" on GPU {gpu}" if gpu is not None else ""
    if os.path.exists(os.path.join(folder, "model_final.pth")):
        logger.info("run %s: model_final.pth exists, evaluating only%s", run.name, where)
    else:
        logger.info("run %s: training%s", run.name, where)
        failure = _run_step("training", plan.train_argv(run), folder, env)
        if failure is not None:
            return failure
    logger.info("run %s: evaluating%s", run.name, where)
    return _run_step("evaluation", plan.eval_argv(run), folder, env)


def run_one(plan: SweepPlan, run: SweepRun, gpu: Optional[str] = None) -> RunOutcome:
    """Train (unless done) and evaluate ``run``; never raises for a failing subprocess."""
    folder = plan.folder(run)
    metrics = _finished_metrics(plan, run)
    if metrics is not None:
        logger.info("run %s: finished earlier (%s exists), skipping", run.name, FINAL_METRICS_FILE)
        _warn_if_settings_changed(plan, run)
        return RunOutcome(run, SKIPPED, metrics)
    os.makedirs(folder, exist_ok=True)
    _record_settings(plan, run)
    failure = _train_and_evaluate(plan, run, gpu)
    if failure is None:
        metrics = _finished_metrics(plan, run)
        if metrics is None:
            failure = f"evaluation wrote no readable {FINAL_METRICS_FILE}"
            _append_to_log(folder, failure)
    if failure is not None:
        logger.error("run %s FAILED: %s (log: %s)", run.name, failure, os.path.join(folder, "log.txt"))
        return RunOutcome(run, FAILED, None, failure)
    logger.info("run %s: finished, AP %.2f", run.name, metrics["AP"])
    return RunOutcome(run, FINISHED, metrics)
