"""Checking COCO keypoint results before they are written for the evaluation server.

A record must be exactly ``{"image_id": int, "category_id": int, "keypoints": [3K finite numbers],
"score": finite number}``: no ``bbox`` (pycocotools' ``loadRes`` would then treat the file as box
results and take the person area from the box), no ``segmentation``, nothing missing, no NaN, and
an ``image_id`` from the image list. The first bad record is named by its index and content.
"""
import json
import math
from typing import Iterable, Optional, Sequence

__all__ = ["SubmissionError", "validate_submission", "RESULT_FIELDS"]

RESULT_FIELDS = ("image_id", "category_id", "keypoints", "score")
SHOWN_CHARACTERS = 300


class SubmissionError(ValueError):
    """Results that must not be submitted, or a submission that cannot be made."""


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_finite_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _show(record) -> str:
    try:
        text = json.dumps(record, default=repr)
    except (TypeError, ValueError):
        text = repr(record)
    return text if len(text) <= SHOWN_CHARACTERS else text[:SHOWN_CHARACTERS] + "..."


def _keypoints_problem(keypoints, num_keypoints: int) -> Optional[str]:
    if not isinstance(keypoints, (list, tuple)):
        return f"has keypoints of type {type(keypoints).__name__}, not a list"
    if len(keypoints) != 3 * num_keypoints:
        return f"has {len(keypoints)} keypoint values, expected 3 x {num_keypoints} = {3 * num_keypoints}"
    for position, value in enumerate(keypoints):
        if not _is_finite_number(value):
            return f"has keypoint value {value!r} at position {position}, not a finite number"
    return None


def _record_problem(record, image_ids: set, num_keypoints: int) -> Optional[str]:
    """What is wrong with one record, or None."""
    if not isinstance(record, dict):
        return f"is a {type(record).__name__}, not a JSON object"
    missing = [f for f in RESULT_FIELDS if f not in record]
    if missing:
        return f"lacks field(s) {', '.join(missing)}"
    if "bbox" in record:
        return "has a 'bbox' field (keypoint results must not: pycocotools would read them as boxes)"
    extra = sorted(str(k) for k in record if k not in RESULT_FIELDS)
    if extra:
        return f"has unexpected field(s) {', '.join(extra)}"
    if not _is_int(record["image_id"]):
        return f"has image_id {record['image_id']!r}, not an integer"
    if record["image_id"] not in image_ids:
        return f"has image_id {record['image_id']}, which is not in the image list"
    if not _is_int(record["category_id"]):
        return f"has category_id {record['category_id']!r}, not an integer"
    if not _is_finite_number(record["score"]):
        return f"has score {record['score']!r}, not a finite float"
    return _keypoints_problem(record["keypoints"], num_keypoints)


def validate_submission(results: Sequence[dict], image_ids: Iterable[int], num_keypoints: int) -> None:
    """Raise ``SubmissionError`` naming the first bad record (index and content).

    Args:
        results: COCO keypoint results records.
        image_ids: the ids of the listed images (the image-info file).
        num_keypoints: K; every record has 3K keypoint values.
    """
    if not isinstance(results, list):
        raise SubmissionError(f"results must be a list of records, got {type(results).__name__}")
    known = set(image_ids)
    for index, record in enumerate(results):
        problem = _record_problem(record, known, num_keypoints)
        if problem is not None:
            raise SubmissionError(f"result {index} {problem}: {_show(record)}")
