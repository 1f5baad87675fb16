"""``TimedPeriodicWriter``: detectron2's progress lines (losses, ETA) every N iterations *or* every
S seconds, whichever comes first, so a slow CPU run shows its first ETA within the first minute
instead of after 20 iterations of several seconds each. ``LOG.PERIOD`` and
``LOG.PERIOD_SECONDS`` configure it."""
import time
from typing import Callable, Sequence

from detectron2.engine import hooks

__all__ = ["TimedPeriodicWriter", "should_write"]


def should_write(iteration: int, max_iter: int, period: int, seconds_since: float, period_seconds: float) -> bool:
    """Whether the step ``iteration`` (0-based, just finished) writes: every ``period`` steps, the
    last step, or ``period_seconds`` (> 0) after the previous write."""
    if (iteration + 1) % period == 0 or iteration == max_iter - 1:
        return True
    return period_seconds > 0 and seconds_since >= period_seconds


class TimedPeriodicWriter(hooks.PeriodicWriter):
    """``PeriodicWriter`` that also writes ``period_seconds`` after its last write.

    Args:
        clock: seconds (``time.monotonic``; tests pass a fake clock).
    """

    def __init__(
        self, writers: Sequence, period: int = 20, period_seconds: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ):  # fmt: skip
        super().__init__(writers, period=period)
        self._period_seconds = period_seconds
        self._clock = clock
        self._last_write = None

    def before_train(self):
        self._last_write = self._clock()

    def after_step(self):
        now = self._clock()
        since = now - (self._last_write if self._last_write is not None else now)
        if should_write(self.trainer.iter, self.trainer.max_iter, self._period, since, self._period_seconds):
            for writer in self._writers:
                writer.write()
            self._last_write = now
