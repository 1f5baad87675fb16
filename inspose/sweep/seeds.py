"""Seeds of a sweep: runs that differ only in ``SEED`` (a ``--grid SEED=1,2`` axis), grouped.

A group is a variant (``--variants``) and the values of the other grid keys; it holds each seed's
metrics (``None`` for a run that did not finish) in grid order. ``results`` writes one row per
group: the mean over the finished seeds and each seed's value.
"""
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Dict, List, Optional, Sequence, Tuple

if TYPE_CHECKING:  # results.py imports this module
    from .results import ResultRow

__all__ = ["SEED_KEY", "SeedGroup", "group_by_seed", "has_seed_axis"]

SEED_KEY = "SEED"  # detectron2's cfg.SEED

Overrides = Tuple[Tuple[str, str], ...]


@dataclass(frozen=True)
class SeedGroup:
    """The runs of one variant and one setting of the non-seed grid keys, one per seed.

    Attributes:
        variant: the variant's name ("" without ``--variants``).
        overrides: the non-seed grid ``(KEY, VALUE)`` pairs, in grid order.
        seeds: the SEED values, in grid order.
        metrics: per seed, ``{metric: value}`` of a finished run, else None.
        statuses: per seed, the run's status (``results.FINISHED``, ``FAILED``, ``NOT_RUN``).
    """

    variant: str
    overrides: Overrides
    seeds: Tuple[str, ...]
    metrics: Tuple[Optional[Dict[str, float]], ...]
    statuses: Tuple[str, ...]

    def finished(self) -> int:
        return sum(m is not None for m in self.metrics)

    def values(self, metric: str) -> List[Optional[float]]:
        """Each seed's value of ``metric`` (None where the run did not finish)."""
        return [None if m is None else m[metric] for m in self.metrics]

    def mean(self, metric: str) -> float:
        """Mean of ``metric`` over the finished seeds (NaN if a value is NaN or none finished)."""
        done = [v for v in self.values(metric) if v is not None]
        return sum(done) / len(done) if done else math.nan


def has_seed_axis(rows: Sequence["ResultRow"]) -> bool:
    return bool(rows) and any(key == SEED_KEY for key, _ in rows[0].run.overrides)


def _group_key(row: "ResultRow") -> Tuple[str, Overrides]:
    return row.run.variant, tuple((k, v) for k, v in row.run.overrides if k != SEED_KEY)


def group_by_seed(rows: Sequence["ResultRow"]) -> List[SeedGroup]:
    """The rows grouped by (variant, non-seed overrides), groups in order of first appearance."""
    members: Dict[Tuple[str, Overrides], List["ResultRow"]] = {}
    for row in rows:
        members.setdefault(_group_key(row), []).append(row)
    groups = []
    for (variant, overrides), group in members.items():
        seeds = tuple(dict(r.run.overrides)[SEED_KEY] for r in group)
        metrics = tuple(r.metrics for r in group)
        groups.append(SeedGroup(variant, overrides, seeds, metrics, tuple(r.status for r in group)))
    return groups
