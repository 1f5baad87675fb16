"""Running all the runs of a sweep: one after another, or one per GPU at a time.

With ``num_gpus > 1`` up to ``num_gpus`` runs go at once, each with ``CUDA_VISIBLE_DEVICES`` set to
its own device; a device is handed to the next run as soon as its run ends. Devices are numbered
``0..num_gpus-1``, or taken from the sweep's own ``CUDA_VISIBLE_DEVICES`` when that is set.
"""
import os
import queue
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, List, Optional, Sequence

from .grid import GridError
from .naming import SweepRun
from .runner import RunOutcome, SweepPlan, run_one

__all__ = ["device_ids", "run_all"]

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
