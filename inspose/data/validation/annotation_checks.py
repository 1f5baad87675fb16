"""Checks and repairs of annotation records: identifying fields, person keypoints (vectorised),
missing boxes, boxes and areas; ``_Context`` holds what they need from the rest of the file."""
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np

from .report import ValidationReport, _Errors
from .values import _is_finite_number, _is_int, _number_rows


def _ann_record(ann: dict) -> str:
    """'annotation id=.. (image id=..)' naming an annotation record."""
    return f"annotation id={ann.get('id')!r} (image id={ann.get('image_id')!r})"


@dataclass
class _Context:
    """What annotation checks need from the rest of the file."""

    images: Dict[int, dict]
    category_ids: set
    keypoint_categories: set
    num_keypoints: int
    errors: _Errors
    report: ValidationReport
    failed: set = field(default_factory=set)  # ids of annotations with an error

    def fail(self, ann: dict, problem: str) -> None:
        self.errors.add(_ann_record(ann), problem)
        self.failed.add(ann["id"])


def _check_annotations(annotations: list, ctx: _Context) -> None:
    """Record checks, then vectorised keypoint checks, then boxes and areas; repairs in place."""
    valid = _check_records(annotations, ctx)
    people = [ann for ann in valid if _is_person(ann, ctx)]
    people = _check_keypoint_lists(people, ctx)
    _check_keypoint_values(people, ctx)
    _fill_missing_boxes(valid, ctx)
    _check_boxes_and_areas([ann for ann in valid if ann["id"] not in ctx.failed], ctx)


def _is_person(ann: dict, ctx: _Context) -> bool:
    return ann["category_id"] in ctx.keypoint_categories or "keypoints" in ann


def _check_records(annotations: list, ctx: _Context) -> List[dict]:
    """Annotations whose id, image_id, category_id and iscrowd are usable (iscrowd repaired)."""
    valid, seen, missing_crowd = [], set(), []
    for position, ann in enumerate(annotations):
        if not isinstance(ann, dict):
            found = type(ann).__name__
            ctx.errors.add(f"annotations[{position}]", f"must be an object, found {found}")
            continue
        problem = _record_problem(ann, seen, ctx)
        if problem:
            ctx.errors.add(_ann_record(ann), problem)
            continue
        seen.add(ann["id"])
        if "iscrowd" not in ann:
            ann["iscrowd"] = 0
            missing_crowd.append(ann["id"])
        valid.append(ann)
    ctx.report.add_repair("iscrowd_set", missing_crowd)
    return valid


def _record_problem(ann: dict, seen: set, ctx: _Context) -> Optional[str]:
    """What is wrong with an annotation's identifying fields, or None."""
    if not _is_int(ann.get("id")):
        return "'id' must be an int"
    if ann["id"] in seen:
        return "duplicate annotation id"
    if ann.get("image_id") not in ctx.images:
        return "'image_id' refers to no image in the file"
    if "category_id" not in ann:
        return "'category_id' is missing"
    if ann["category_id"] not in ctx.category_ids:
        return f"'category_id' {ann['category_id']!r} is not a category of the file"
    if "iscrowd" in ann and ann["iscrowd"] not in (0, 1):
        return f"'iscrowd' must be 0 or 1, found {ann['iscrowd']!r}"
    return None


def _check_keypoint_lists(people: List[dict], ctx: _Context) -> List[dict]:
    """Person annotations whose ``keypoints`` has 3K entries (crowd ones without get zeros)."""
    expected = 3 * ctx.num_keypoints
    what = f"3 x {ctx.num_keypoints} keypoints"
    kept, zeroed = [], []
    for ann in people:
        keypoints = ann.get("keypoints")
        if keypoints is None and ann["iscrowd"] == 1:
            ann["keypoints"] = [0] * expected
            zeroed.append(ann["id"])
        elif not isinstance(keypoints, list):
            ctx.fail(ann, f"'keypoints' missing: expected {expected} values ({what})")
            continue
        elif len(keypoints) != expected:
            ctx.fail(ann, f"'keypoints' has {len(keypoints)} values, expected {expected} ({what})")
            continue
        kept.append(ann)
    ctx.report.add_repair("crowd_keypoints_zeroed", zeroed)
    return kept


def _keypoint_array(people: List[dict], ctx: _Context) -> Tuple[np.ndarray, np.ndarray]:
    """(N, K, 3) float64 keypoints and (N,) bool usable rows; bad values go to ``ctx.errors``."""
    rows, finite = _number_rows([ann["keypoints"] for ann in people], 3 * ctx.num_keypoints)
    array = rows.reshape(len(people), ctx.num_keypoints, 3)
    for row in np.flatnonzero(~finite):
        ctx.fail(people[row], "'keypoints' contains NaN, inf or a non-number")
    flags = array[:, :, 2]
    bad_flags = finite & ~np.isin(flags, (0.0, 1.0, 2.0)).all(axis=1)
    for row in np.flatnonzero(bad_flags):
        found = sorted({float(v) for v in flags[row] if v not in (0.0, 1.0, 2.0)})
        ctx.fail(people[row], f"visibility flags must be 0, 1 or 2, found {found}")
    return array, finite & ~bad_flags


def _check_keypoint_values(people: List[dict], ctx: _Context) -> None:
    """Vectorised checks of x, y, v and num_keypoints over all person annotations."""
    array, usable = _keypoint_array(people, ctx)
    array[~usable] = 0.0  # unusable rows are errors already: keep them out of the repairs
    xy, flags = array[:, :, :2], array[:, :, 2]
    stray = (flags == 0) & (xy != 0).any(axis=2)  # (N, K)
    repaired = np.flatnonzero(stray.any(axis=1))
    for row in repaired:  # rare: repaired row by row, keeping the other values as they are
        keypoints = list(people[row]["keypoints"])
        for k in np.flatnonzero(stray[row]):
            keypoints[3 * k] = keypoints[3 * k + 1] = 0
        people[row]["keypoints"] = keypoints
    ctx.report.add_repair("unlabelled_xy_zeroed", [people[r]["id"] for r in repaired])
    _repair_num_keypoints(people, (flags > 0).sum(axis=1), usable, ctx)
    _warn_outside_image(people, xy, flags > 0, ctx)


def _repair_num_keypoints(
    people: List[dict], counts: np.ndarray, usable: np.ndarray, ctx: _Context
) -> None:
    """Set ``num_keypoints`` to ``counts`` (N,) where missing or different, on usable rows."""
    missing, recounted = [], []
    for ann, count, ok in zip(people, counts.tolist(), usable.tolist()):
        if not ok or ann.get("num_keypoints") == count:
            continue
        (recounted if "num_keypoints" in ann else missing).append(ann["id"])
        ann["num_keypoints"] = count
    ctx.report.add_repair("num_keypoints_set", missing)
    ctx.report.add_repair("num_keypoints_recounted", recounted)


def _warn_outside_image(
    people: List[dict], xy: np.ndarray, labelled: np.ndarray, ctx: _Context
) -> None:
    """Warn about rows with a labelled point outside the image; xy (N, K, 2), labelled (N, K)."""
    size_of = {i: (image["width"], image["height"]) for i, image in ctx.images.items()}
    sizes = np.array([size_of[ann["image_id"]] for ann in people], dtype=np.float64)
    sizes = sizes.reshape(len(people), 1, 2)
    outside = labelled & ((xy < 0) | (xy > sizes)).any(axis=2)
    rows = np.flatnonzero(outside.any(axis=1))
    ctx.report.add_warning("keypoints_outside_image", [people[r]["id"] for r in rows])


def _fill_missing_boxes(annotations: List[dict], ctx: _Context) -> None:
    """Give annotations without ``bbox`` the box of their labelled keypoints (error if none)."""
    repaired = []
    for ann in annotations:
        if "bbox" in ann or ann["id"] in ctx.failed:
            continue
        box = _labelled_box(ann.get("keypoints"))
        if box is None:
            ctx.fail(ann, "no 'bbox' and no labelled keypoints to derive one from")
            continue
        ann["bbox"] = box
        repaired.append(ann["id"])
    ctx.report.add_repair("bbox_from_keypoints", repaired)


def _labelled_box(keypoints) -> Optional[List[float]]:
    """[x, y, w, h] enclosing the keypoints with v > 0, or None when there are none."""
    if not isinstance(keypoints, list) or len(keypoints) % 3:
        return None
    triples = (keypoints[i : i + 3] for i in range(0, len(keypoints), 3))
    points = [(x, y) for x, y, v in triples if v > 0]
    if not points:
        return None
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    return [float(min(xs)), float(min(ys)), float(max(xs) - min(xs)), float(max(ys) - min(ys))]


def _check_boxes_and_areas(annotations: List[dict], ctx: _Context) -> None:
    """Vectorised ``bbox`` checks; a missing ``area`` becomes the box's width * height."""
    boxes, finite = _number_rows([ann["bbox"] for ann in annotations], 4)
    negative = finite & (boxes[:, 2:] < 0).any(axis=1)
    for row in np.flatnonzero(~finite | negative):
        box = annotations[row]["bbox"]
        if finite[row]:
            ctx.fail(annotations[row], f"'bbox' has a negative width or height: {box}")
        else:
            problem = f"'bbox' must be 4 finite numbers [x, y, w, h], found {box!r}"
            ctx.fail(annotations[row], problem)
    zero = finite & ~negative & (boxes[:, 2:] == 0).any(axis=1)
    ctx.report.add_warning("zero_size_box", [annotations[r]["id"] for r in np.flatnonzero(zero)])
    good = (finite & ~negative).tolist()
    repaired = []
    for ann, box, ok in zip(annotations, boxes.tolist(), good):
        if not ok:
            continue
        if "area" not in ann:
            ann["area"] = box[2] * box[3]
            repaired.append(ann["id"])
        elif not (_is_finite_number(ann["area"]) and ann["area"] >= 0):
            ctx.fail(ann, f"'area' must be a finite number >= 0, found {ann['area']!r}")
    ctx.report.add_repair("area_from_bbox", repaired)
