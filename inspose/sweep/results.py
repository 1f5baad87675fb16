"""A sweep's results: each run's ``final_metrics.json``, the run statuses, the result tables.

``final_metrics.json`` holds the 10 COCO keypoint metrics of a finished run's ``model_final.pth``::

    {"AP": 61.2, "AP50": ..., "ARl": ..., "dataset": "keypoints_coco_2017_val",
     "weights": ".../model_final.pth"}

Metrics are on COCO's 0-100 scale; one that COCOeval cannot compute (NaN, e.g. APl without large
persons) is written as ``null`` so the file is strict JSON. The file is written atomically: a run
that has it has finished.

``results.md`` and ``results.csv`` have one row per run. Columns: ``variant`` (only in a sweep with
``--variants``), the varied grid keys (full names), then AP, AP50, AP75, APm, APl, AR. A run that
failed has ``failed`` in its metric cells, one that never ran ``not run``; the markdown file lists
the failed runs with their logs below the table.

With a ``SEED`` grid axis, ``results.md`` adds a table with one row per variant and setting of the
other keys (``seeds.py``): the number of finished seeds, then per metric the mean over the finished
seeds and each seed's value, ``63.1 (62.8, 63.4)`` (a seed that did not finish shows its status);
``results_seeds.csv`` has the same rows, a mean column and one column per seed for each metric.
"""
import csv
import json
import logging
import math
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Dict, List, Optional, Sequence

from ..evaluation.keypoint_evaluator import KEYPOINT_METRICS
from ..io_utils import write_bytes_atomically
from .seeds import SEED_KEY, SeedGroup, group_by_seed, has_seed_axis

if TYPE_CHECKING:  # plan.py imports this module
    from .plan import SweepRun

__all__ = [
    "FAILED",
    "FINAL_METRICS_FILE",
    "FINISHED",
    "NOT_RUN",
    "SKIPPED",
    "TABLE_METRICS",
    "MetricsFileError",
    "ResultRow",
    "collect_rows",
    "keypoint_metrics_of",
    "markdown_table",
    "read_final_metrics",
    "seed_markdown_table",
    "write_final_metrics",
    "write_tables",
]

logger = logging.getLogger("inspose.sweep")

# What became of a run: finished now, finished earlier (skipped), failed, or never started.
FINISHED, SKIPPED, FAILED, NOT_RUN = "finished", "skipped", "failed", "not run"

# --------------------------------------------------------------------------- final_metrics.json

FINAL_METRICS_FILE = "final_metrics.json"


class MetricsFileError(ValueError):
    """A ``final_metrics.json`` that cannot be read or lacks a metric."""


def _to_json_number(value) -> Optional[float]:
    value = float(value)
    return None if math.isnan(value) else value


def write_final_metrics(path: str, metrics: Dict[str, float], **info) -> None:
    """Write the 10 keypoint metrics of ``metrics`` (and ``info``) to ``path`` atomically.

    Raises:
        MetricsFileError: when a metric is missing from ``metrics``.
    """
    missing = [m for m in KEYPOINT_METRICS if m not in metrics]
    if missing:
        raise MetricsFileError(f"{path}: metrics {missing} missing from the evaluation results")
    record = {m: _to_json_number(metrics[m]) for m in KEYPOINT_METRICS}
    record.update(info)
    write_bytes_atomically(path, json.dumps(record, indent=2, allow_nan=False).encode())


def read_final_metrics(path: str) -> Optional[Dict[str, float]]:
    """{metric: value (NaN for null)} of the 10 metrics, or None when ``path`` does not exist.

    Raises:
        MetricsFileError: naming the file when it is not JSON or lacks a metric.
    """
    if not os.path.exists(path):
        return None
    try:
        with open(path) as f:
            record = json.load(f)
    except (OSError, ValueError) as error:
        raise MetricsFileError(f"{path} cannot be read: {error}") from None
    if not isinstance(record, dict):
        raise MetricsFileError(f"{path} does not hold a JSON object")
    missing = [m for m in KEYPOINT_METRICS if m not in record]
    if missing:
        raise MetricsFileError(f"{path} lacks metrics {missing}")
    return {m: math.nan if record[m] is None else float(record[m]) for m in KEYPOINT_METRICS}


def keypoint_metrics_of(results, test_datasets) -> dict:
    """The ``{"AP": ...}`` dict of the first test dataset in ``Trainer.test``'s results.

    ``Trainer.test`` returns ``{"keypoints": {...}}`` for one dataset and
    ``{dataset: {"keypoints": {...}}}`` for several.
    """
    if not test_datasets:
        raise ValueError("DATASETS.TEST is empty: there is nothing to evaluate on")
    if len(test_datasets) > 1:
        first = test_datasets[0]
        logger.warning("%d test datasets: final metrics are those of %s", len(test_datasets), first)
        results = results.get(test_datasets[0], {})
    if "keypoints" not in results:
        raise ValueError(f"evaluation on {test_datasets[0]} returned no keypoint metrics: {dict(results)}")
    return results["keypoints"]


# --------------------------------------------------------------------------- tables

TABLE_METRICS = ("AP", "AP50", "AP75", "APm", "APl", "AR")


@dataclass
class ResultRow:
    """A run, its status (FINISHED, FAILED or NOT_RUN) and its metrics when finished."""

    run: "SweepRun"
    status: str
    metrics: Optional[Dict[str, float]] = None


def collect_rows(output_root: str, runs: Sequence["SweepRun"], failed: Sequence[str] = ()) -> List[ResultRow]:
    """Rows from the runs' ``final_metrics.json`` files; ``failed``: names of runs that failed."""
    rows = []
    for run in runs:
        try:
            metrics = read_final_metrics(os.path.join(output_root, run.name, FINAL_METRICS_FILE))
        except MetricsFileError:
            metrics = None
        if metrics is not None:
            rows.append(ResultRow(run, FINISHED, metrics))
        else:
            rows.append(ResultRow(run, FAILED if run.name in failed else NOT_RUN))
    return rows


def _metric_cells(row: ResultRow, digits: int) -> List[str]:
    if row.status != FINISHED:
        return [row.status] * len(TABLE_METRICS)
    return ["nan" if math.isnan(row.metrics[m]) else f"{row.metrics[m]:.{digits}f}" for m in TABLE_METRICS]


def _has_variants(rows: Sequence[ResultRow]) -> bool:
    return any(row.run.variant for row in rows)


def _keys(rows: Sequence[ResultRow]) -> List[str]:
    """The setting columns: ``variant`` (with variants), then the grid keys."""
    keys = [key for key, _ in rows[0].run.overrides] if rows else []
    return (["variant"] if _has_variants(rows) else []) + keys


def _setting_cells(row: ResultRow, with_variant: bool) -> List[str]:
    return ([row.run.variant] if with_variant else []) + [v for _, v in row.run.overrides]


def _markdown_cell(text: str) -> str:
    return text.replace("|", "\\|")


def markdown_table(rows: Sequence[ResultRow], output_root: str = "") -> str:
    header = _keys(rows) + list(TABLE_METRICS)
    lines = [_markdown_row(header), "|" + "---|" * len(header)]
    for row in rows:
        lines.append(_markdown_row(_setting_cells(row, _has_variants(rows)) + _metric_cells(row, 2)))
    failed = [row.run.name for row in rows if row.status == FAILED]
    if failed:
        lines.append("")
        lines.append("Failed runs (see their log.txt):")
        lines.extend(f"- {name}: {os.path.join(output_root, name, 'log.txt')}" for name in failed)
    return "\n".join(lines) + "\n"


def _markdown_row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(_markdown_cell(c) for c in cells) + " |"


# --------------------------------------------------------------------------- seeds


def _number(value: float, digits: int) -> str:
    return "nan" if math.isnan(value) else f"{value:.{digits}f}"


def _group_settings(group: SeedGroup, with_variant: bool) -> List[str]:
    cells = [group.variant] if with_variant else []
    return cells + [v for _, v in group.overrides] + [f"{group.finished()} of {len(group.seeds)}"]


def _seed_header(rows: Sequence[ResultRow]) -> List[str]:
    keys = [k for k in _keys(rows) if k != SEED_KEY]
    return keys + ["seeds finished"]


def _mean_and_values(group: SeedGroup, metric: str, digits: int) -> List[str]:
    """[mean over the finished seeds ("n/a" if none), each seed's value or its run's status]."""
    values = [
        status if value is None else _number(value, digits)
        for value, status in zip(group.values(metric), group.statuses)
    ]  # fmt: skip
    return [_number(group.mean(metric), digits) if group.finished() else "n/a", *values]


def _mean_cell(group: SeedGroup, metric: str) -> str:
    """``"63.1 (62.8, 63.4)"``."""
    mean, *values = _mean_and_values(group, metric, 1)
    return f"{mean} ({', '.join(values)})"


def seed_markdown_table(rows: Sequence[ResultRow]) -> str:
    """The per-seed summary of ``results.md``: one row per variant and non-seed setting."""
    groups = group_by_seed(rows)
    header = _seed_header(rows) + list(TABLE_METRICS)
    seeds = ", ".join(groups[0].seeds)
    lines = [f"Mean over {SEED_KEY} = {seeds} (then the value of each seed):", "", _markdown_row(header)]
    lines.append("|" + "---|" * len(header))
    for group in groups:
        metrics = [_mean_cell(group, m) for m in TABLE_METRICS]
        lines.append(_markdown_row(_group_settings(group, _has_variants(rows)) + metrics))
    return "\n".join(lines) + "\n"


def _write_seed_csv(path: str, rows: Sequence[ResultRow]) -> None:
    groups = group_by_seed(rows)
    seeds = groups[0].seeds
    header = _seed_header(rows)
    for metric in TABLE_METRICS:
        header += [metric] + [f"{metric} ({SEED_KEY}={s})" for s in seeds]
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for group in groups:
            cells = _group_settings(group, _has_variants(rows))
            for metric in TABLE_METRICS:
                cells += _mean_and_values(group, metric, 4)
            writer.writerow(cells)


def write_tables(output_root: str, rows: Sequence[ResultRow]) -> List[str]:
    """Write ``results.md`` and ``results.csv`` (and, with a SEED axis, ``results_seeds.csv``)
    under ``output_root``; return their paths."""
    md_path = os.path.join(output_root, "results.md")
    csv_path = os.path.join(output_root, "results.csv")
    text = markdown_table(rows, output_root)
    if has_seed_axis(rows):
        text += "\n" + seed_markdown_table(rows)
    with open(md_path, "w") as f:
        f.write(text)
    with open(csv_path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(_keys(rows) + list(TABLE_METRICS))
        for row in rows:
            writer.writerow(_setting_cells(row, _has_variants(rows)) + _metric_cells(row, 4))
    if not has_seed_axis(rows):
        return [md_path, csv_path]
    seeds_path = os.path.join(output_root, "results_seeds.csv")
    _write_seed_csv(seeds_path, rows)
    return [md_path, csv_path, seeds_path]
