"""The sweep's result tables: ``results.md`` and ``results.csv``, one row per run.

Columns: the varied keys (full names), then AP, AP50, AP75, APm, APl, AR (COCO's 0-100 scale). A
run that failed has ``failed`` in its metric cells, one that never ran ``not run``; the markdown file
lists the failed runs with their logs below the table.
"""
import csv
import math
import os
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

from .metrics_file import FINAL_METRICS_FILE, MetricsFileError, read_final_metrics
from .naming import SweepRun
from .runner import FAILED, FINISHED, NOT_RUN

__all__ = ["TABLE_METRICS", "ResultRow", "collect_rows", "write_tables"]

TABLE_METRICS = ("AP", "AP50", "AP75", "APm", "APl", "AR")


@dataclass
class ResultRow:
    """A run, its status (FINISHED, FAILED or NOT_RUN) and its metrics when finished."""

    run: SweepRun
    status: str
    metrics: Optional[Dict[str, float]] = None


def collect_rows(output_root: str, runs: Sequence[SweepRun], failed: Sequence[str] = ()) -> List[ResultRow]:
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


def _keys(rows: Sequence[ResultRow]) -> List[str]:
    return [key for key, _ in rows[0].run.overrides] if rows else []


def _markdown_cell(text: str) -> str:
    return text.replace("|", "\\|")


def markdown_table(rows: Sequence[ResultRow], output_root: str = "") -> str:
    header = _keys(rows) + list(TABLE_METRICS)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [v for _, v in row.run.overrides] + _metric_cells(row, 2)
        lines.append("| " + " | ".join(_markdown_cell(c) for c in cells) + " |")
    failed = [row.run.name for row in rows if row.status == FAILED]
    if failed:
        lines.append("")
        lines.append("Failed runs (see their log.txt):")
        lines.extend(f"- {name}: {os.path.join(output_root, name, 'log.txt')}" for name in failed)
    return "\n".join(lines) + "\n"


def write_tables(output_root: str, rows: Sequence[ResultRow]) -> List[str]:
    """Write ``results.md`` and ``results.csv`` under ``output_root``; return their paths."""
    md_path = os.path.join(output_root, "results.md")
    csv_path = os.path.join(output_root, "results.csv")
    with open(md_path, "w") as f:
        f.write(markdown_table(rows, output_root))
    with open(csv_path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(_keys(rows) + list(TABLE_METRICS))
        for row in rows:
            writer.writerow([v for _, v in row.run.overrides] + _metric_cells(row, 4))
    return [md_path, csv_path]
