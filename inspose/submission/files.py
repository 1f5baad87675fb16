"""What a COCO keypoint submission holds and how it is written.

A record must be exactly ``{"image_id": int, "category_id": int, "keypoints": [3K finite numbers],
"score": finite number}``: no ``bbox`` (pycocotools' ``loadRes`` would then treat the file as box
results and take the person area from the box), no ``segmentation``, nothing missing, no NaN, and
an ``image_id`` from the image list; ``validate_submission`` names the first bad record by its
index and content. ``write_submission`` writes ``person_keypoints_test-dev2017_<NAME>_results.json``
and a ``.zip`` holding that file at its root, both atomically (no partial file on failure).
"""
import json
import math
import os
import re
import zipfile
from typing import Iterable, List, Optional, Sequence, Tuple

from ..io_utils import write_atomically, write_bytes_atomically

__all__ = ["RESULT_FIELDS", "SubmissionError", "results_file_name", "validate_submission", "write_submission"]

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


# --------------------------------------------------------------------------- writing

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def results_file_name(name: str) -> str:
    """``"InsPose_R_50_36ep"`` -> ``"person_keypoints_test-dev2017_InsPose_R_50_36ep_results.json"``.

    Characters other than letters, digits and ``. _ -`` in ``name`` become ``-``.
    """
    safe = _UNSAFE.sub("-", name).strip("-.")
    if not safe:
        raise ValueError(f"submission name {name!r} has no usable character")
    return f"person_keypoints_test-dev2017_{safe}_results.json"


def _zip_holding(name: str, data: bytes):
    """A writer for ``write_atomically``: a zip archive holding ``data`` as ``name`` at its root."""

    def write(f) -> None:
        with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            archive.writestr(name, data)

    return write


def write_submission(results: List[dict], output_dir: str, name: str) -> Tuple[str, str]:
    """Write the results json and its zip under ``output_dir``; return (json path, zip path).

    Each file is written atomically; the json is serialised first (a NaN raises before anything
    is written), and a failure writing the json removes the zip written just before it.
    """
    data = json.dumps(results, separators=(",", ":"), allow_nan=False).encode()
    os.makedirs(output_dir, exist_ok=True)
    json_path = os.path.join(output_dir, results_file_name(name))
    zip_path = os.path.splitext(json_path)[0] + ".zip"
    write_atomically(zip_path, _zip_holding(os.path.basename(json_path), data))
    try:
        write_bytes_atomically(json_path, data)
    except BaseException:
        os.remove(zip_path)
        raise
    return json_path, zip_path
