"""Timers for CPU and CUDA: each timed call is bracketed by device synchronisation.

Summaries are the median with the quartiles (spread = inter-quartile range, p75 - p25) and the
minimum and maximum over the timed runs, all in milliseconds.
"""
import os
import time
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Callable, Dict, Iterator, List, Sequence

import numpy as np
import torch

__all__ = [
    "Timing",
    "synchronize",
    "time_call",
    "measure",
    "measure_alternating",
    "summarize",
    "StageClock",
    "replace_method",
    "describe_device",
]


@dataclass
class Timing:
    """Summary of ``runs`` timed calls, in milliseconds."""

    median_ms: float
    p25_ms: float
    p75_ms: float
    min_ms: float
    max_ms: float
    runs: int

    @property
    def spread_ms(self) -> float:
        """Inter-quartile range p75 - p25."""
        return self.p75_ms - self.p25_ms

    def as_dict(self) -> Dict[str, float]:
        return {**asdict(self), "spread_ms": self.spread_ms}


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (a no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_call(fn: Callable[[], object], device: torch.device) -> float:
    """Milliseconds of one call of ``fn``, synchronised before and after."""
    synchronize(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    return (time.perf_counter() - start) * 1e3


def summarize(samples_ms: Sequence[float]) -> Timing:
    """(runs,) milliseconds -> Timing (linear-interpolated quartiles)."""
    values = np.asarray(samples_ms, dtype=np.float64)
    p25, median, p75 = np.percentile(values, [25, 50, 75])
    return Timing(
        float(median), float(p25), float(p75), float(values.min()), float(values.max()), len(values)
    )


def measure(fn: Callable[[], object], device: torch.device, runs: int, warmup: int) -> Timing:
    """``warmup`` untimed calls, then ``runs`` timed calls of ``fn``."""
    for _ in range(warmup):
        fn()
    synchronize(device)
    return summarize([time_call(fn, device) for _ in range(max(1, runs))])


def measure_alternating(
    fns: Dict[str, Callable[[], object]], device: torch.device, runs: int, warmup: int
) -> Dict[str, Timing]:
    """Like ``measure`` for several functions, called in turn within each run (a b a b ...), so
    a slow drift of the machine (other load, clocks) reaches every function alike."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    samples: Dict[str, List[float]] = {name: [] for name in fns}
    for _ in range(max(1, runs)):
        for name, fn in fns.items():
            samples[name].append(time_call(fn, device))
    return {name: summarize(values) for name, values in samples.items()}


class StageClock:
    """Accumulates the synchronised wall time spent inside named stages of one forward pass."""

    def __init__(self, device: torch.device):
        self.device = device
        self.totals_ms: Dict[str, float] = defaultdict(float)

    def timed(self, stage: str, fn: Callable) -> Callable:
        """``fn`` wrapped so each call adds its duration to ``totals_ms[stage]``."""

        def run(*args, **kwargs):
            synchronize(self.device)
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                synchronize(self.device)
                self.totals_ms[stage] += (time.perf_counter() - start) * 1e3

        return run


@contextmanager
def replace_method(obj: object, name: str, make: Callable[[Callable], Callable]) -> Iterator[None]:
    """Temporarily replace ``obj.name`` by ``make(original)`` on this instance only.

    Works for methods called as ``self.name(...)`` (also ``nn.Module.forward``), not for special
    methods such as ``__call__``, which Python looks up on the type.
    """
    had_own = name in vars(obj)
    own = vars(obj).get(name)
    setattr(obj, name, make(getattr(obj, name)))
    try:
        yield
    finally:
        if had_own:
            setattr(obj, name, own)
        else:
            delattr(obj, name)


def _cpu_model_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine()


def describe_device(device: torch.device) -> Dict[str, object]:
    """Name of the device the benchmark ran on, with the library versions."""
    import detectron2

    info: Dict[str, object] = {
        "type": device.type,
        "torch": torch.__version__,
        "detectron2": detectron2.__version__,
        "torch_threads": torch.get_num_threads(),
        "cpu": _cpu_model_name(),
        "logical_cpus": os.cpu_count(),
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info["name"] = torch.cuda.get_device_name(device)
        info["cuda_memory_gib"] = round(props.total_memory / 2**30, 1)
        info["cuda"] = torch.version.cuda
    else:
        threads = info["torch_threads"]
        info["name"] = f"{info['cpu']} ({threads} thread{'s' if threads != 1 else ''})"
    return info

