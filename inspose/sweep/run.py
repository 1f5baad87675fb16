"""Running a sweep: each run trains in a subprocess, then evaluates in another.

Folder ``ROOT/<run>/``:

* ``final_metrics.json`` there: the run finished earlier and is skipped;
* ``model_final.pth`` there (training finished, evaluation did not): evaluation only;
* otherwise ``tools/train_net.py --resume`` (continues from ``last_checkpoint`` after an interrupt);
  with ``TEST.EVAL_PERIOD 0`` it trains without a test set (``plan.training_only_opts``).

Then ``tools/evaluate_run.py`` (``evaluate_run`` here) evaluates ``model_final.pth`` and writes
``final_metrics.json``: the metrics of exactly the final weights, written by the code that computed
them (nothing parsed from logs). Both subprocesses print to ``console.txt``; detectron2 logs to
``log.txt``, and when a step fails the sweep appends its exit code, command and the end of its
console output to ``log.txt``.

Runs go one after another, or with ``num_gpus > 1`` up to ``num_gpus`` at once, each with
``CUDA_VISIBLE_DEVICES`` set to its own device; a device is handed to the next run as soon as its
run ends. Devices are numbered ``0..num_gpus-1``, or taken from the sweep's own
``CUDA_VISIBLE_DEVICES`` when that is set. At the end (also after Ctrl-C) ``results.md`` and
``results.csv`` list every run.
"""
import contextlib
import json
import logging
import os
import queue
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence

from ..engine import Trainer, build_model_with_weights, setup_loggers
from .plan import GridError, SweepPlan, SweepRun
from .results import (
    FAILED,
    FINAL_METRICS_FILE,
    FINISHED,
    SKIPPED,
    MetricsFileError,
    collect_rows,
    keypoint_metrics_of,
    read_final_metrics,
    write_final_metrics,
    write_tables,
)

__all__ = ["RunOutcome", "device_ids", "evaluate_run", "run_all", "run_one", "run_sweep", "sweep_logging"]

logger = logging.getLogger("inspose.sweep")
FAILURE_TAIL_LINES = 60
SWEEP_LOG = "sweep_log.txt"

# --------------------------------------------------------------------------- one run

@dataclass
class RunOutcome:
    """What became of a run: FINISHED, SKIPPED (finished earlier), FAILED or NOT_RUN."""

    run: SweepRun
    status: str
    metrics: Optional[Dict[str, float]] = None
    message: str = ""


def _settings(plan: SweepPlan, run: SweepRun) -> dict:
    """What ``sweep_run.json`` records (``overrides``: the variant's, then the grid's)."""
    settings = {"config_file": plan.config_file, "overrides": run.opts(), "extra_opts": list(plan.extra_opts)}
    if run.variant:
        settings["variant"] = run.variant
    return settings


def _record_settings(plan: SweepPlan, run: SweepRun) -> None:
    with open(os.path.join(plan.folder(run), "sweep_run.json"), "w") as f:
        json.dump(_settings(plan, run), f, indent=2)


def _warn_if_settings_changed(plan: SweepPlan, run: SweepRun) -> None:
    path = os.path.join(plan.folder(run), "sweep_run.json")
    try:
        with open(path) as f:
            before = json.load(f)
    except (OSError, ValueError):
        return
    now = _settings(plan, run)
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


def evaluate_run(cfg, output: str) -> dict:
    """The evaluation step of a run: evaluate ``cfg.MODEL.WEIGHTS`` on DATASETS.TEST, write the
    first test dataset's keypoint metrics to ``output`` (``final_metrics.json``), return them.

    Logs to ``cfg.OUTPUT_DIR/log.txt`` after the training log; leaves the training's
    ``config.yaml`` alone.
    """
    setup_loggers(cfg.OUTPUT_DIR)
    model = build_model_with_weights(cfg)
    results = Trainer.test(cfg, model)
    dataset = cfg.DATASETS.TEST[0] if cfg.DATASETS.TEST else None
    metrics = keypoint_metrics_of(results, list(cfg.DATASETS.TEST))
    write_final_metrics(output, metrics, dataset=dataset, weights=cfg.MODEL.WEIGHTS)
    logger.info("wrote %s", output)
    return metrics


# --------------------------------------------------------------------------- all runs

RunFn = Callable[[SweepPlan, SweepRun, Optional[str]], RunOutcome]


def device_ids(num_gpus: int, visible: Optional[str] = None) -> List[str]:
    """The ``num_gpus`` device ids the runs are pinned to (``visible``: CUDA_VISIBLE_DEVICES)."""
    if visible is None:
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None or visible.strip() == "":
        return [str(i) for i in range(num_gpus)]
    devices = [d.strip() for d in visible.split(",") if d.strip()]
    if len(devices) < num_gpus:
        raise GridError(
            f"--num-gpus {num_gpus} but CUDA_VISIBLE_DEVICES={visible} lists {len(devices)} device(s)"
        )
    return devices[:num_gpus]


def _run_sequentially(plan: SweepPlan, runs: Sequence[SweepRun], run_fn: RunFn) -> List[RunOutcome]:
    return [run_fn(plan, run, None) for run in runs]


def _run_on_devices(plan: SweepPlan, runs: Sequence[SweepRun], devices: List[str], run_fn: RunFn):
    free = queue.Queue()
    for device in devices:
        free.put(device)

    def pinned(run: SweepRun) -> RunOutcome:
        device = free.get()
        try:
            return run_fn(plan, run, device)
        finally:
            free.put(device)

    with ThreadPoolExecutor(max_workers=len(devices), thread_name_prefix="sweep") as pool:
        return list(pool.map(pinned, runs))


def run_all(
    plan: SweepPlan, runs: Sequence[SweepRun], num_gpus: int = 1, run_fn: RunFn = run_one
) -> List[RunOutcome]:
    """Outcomes of ``runs`` in grid order (``run_fn`` never raises for a failing run)."""
    if num_gpus <= 1:
        return _run_sequentially(plan, runs, run_fn)
    return _run_on_devices(plan, runs, device_ids(num_gpus), run_fn)


@contextlib.contextmanager
def sweep_logging(output_root: str):
    """The sweep's own log lines on stderr and, given ``output_root``, in its ``sweep_log.txt``."""
    handlers: List[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if output_root:
        os.makedirs(output_root, exist_ok=True)
        handlers.append(logging.FileHandler(os.path.join(output_root, SWEEP_LOG)))
    formatter = logging.Formatter("[%(asctime)s sweep] %(levelname)s %(message)s", "%m/%d %H:%M:%S")
    for handler in handlers:
        handler.setFormatter(formatter)
        logger.addHandler(handler)
    level, propagate = logger.level, logger.propagate
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield
    finally:
        for handler in handlers:
            logger.removeHandler(handler)
            handler.close()
        logger.setLevel(level)
        logger.propagate = propagate


def run_sweep(plan: SweepPlan, runs: Sequence[SweepRun], num_gpus: int) -> int:
    """Run every run, write the tables (also when interrupted); 0 if none failed, else 1."""
    logger.info("%d runs in %s (%s)", len(runs), plan.output_root, ", ".join(r.name for r in runs))
    outcomes = []
    try:
        outcomes = run_all(plan, runs, num_gpus)
    finally:
        failed = [o.run.name for o in outcomes if o.status == FAILED]
        rows = collect_rows(plan.output_root, runs, failed)
        for path in write_tables(plan.output_root, rows):
            logger.info("wrote %s", path)
    if failed:
        logger.error("%d of %d runs failed: %s", len(failed), len(runs), ", ".join(failed))
        return 1
    logger.info("all %d runs finished", len(runs))
    return 0
