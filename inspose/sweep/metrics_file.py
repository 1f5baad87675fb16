"""``final_metrics.json``: the 10 COCO keypoint metrics of a finished sweep run.

    {"AP": 61.2, "AP50": ..., "ARl": ..., "dataset": "keypoints_coco_2017_val",
     "weights": ".../model_final.pth"}

Metrics are on COCO's 0-100 scale; one that COCOeval cannot compute (NaN, e.g. APl without large
persons) is written as ``null`` so the file is strict JSON. The file is written atomically: a run
that has it has finished.
"""
import json
import math
import os
from typing import Dict, Optional

from ..evaluation.keypoint_evaluator import KEYPOINT_METRICS

__all__ = ["FINAL_METRICS_FILE", "MetricsFileError", "write_final_metrics", "read_final_metrics"]

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
    partial = f"{path}.{os.getpid()}.partial"
    with open(partial, "w") as f:
        json.dump(record, f, indent=2, allow_nan=False)
    os.replace(partial, path)


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
