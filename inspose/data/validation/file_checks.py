"""Checks of a file's top level, images, categories and skeletons, and the image coverage
warnings (images without annotations, crowd-only images)."""
from typing import Dict

from .report import AnnotationError, ValidationReport, _Errors
from .values import _is_finite_number, _is_int


def _check_top_level(coco, json_file: str) -> None:
    if not isinstance(coco, dict):
        found = type(coco).__name__
        raise AnnotationError(f"{json_file}: top level must be a JSON object, found {found}")
    for key in ("images", "categories"):
        if not isinstance(coco.get(key), list):
            found = "nothing" if key not in coco else type(coco[key]).__name__
            raise AnnotationError(f"{json_file}: top-level {key!r} must be a list, found {found}")
    if "annotations" in coco and not isinstance(coco["annotations"], list):
        found = type(coco["annotations"]).__name__
        raise AnnotationError(f"{json_file}: top-level 'annotations' must be a list, found {found}")


def _check_images(images: list, errors: _Errors) -> Dict[int, dict]:
    """Image id -> image record, for the valid images; problems go to ``errors``."""
    by_id: Dict[int, dict] = {}
    for position, image in enumerate(images):
        if not isinstance(image, dict):
            errors.add(f"images[{position}]", f"must be an object, found {type(image).__name__}")
            continue
        image_id = image.get("id")
        record = f"image id={image_id!r} (images[{position}])"
        if not _is_int(image_id):
            errors.add(record, "'id' must be an int")
            continue
        if image_id in by_id:
            errors.add(record, "duplicate image id")
            continue
        by_id[image_id] = image
        name = image.get("file_name")
        if not isinstance(name, str) or not name:
            errors.add(record, f"'file_name' must be a non-empty string, found {name!r}")
        for key in ("width", "height"):
            value = image.get(key)
            if not (_is_finite_number(value) and value > 0):
                errors.add(record, f"{key!r} must be a positive number, found {value!r}")
    return by_id


def _check_categories(categories: list, num_keypoints: int, errors: _Errors,
                      report: ValidationReport) -> set:  # fmt: skip
    """Ids of the categories with a ``keypoints`` name list; drops unusable skeletons."""
    keypoint_ids, seen = set(), set()
    for position, category in enumerate(categories):
        if not isinstance(category, dict):
            found = type(category).__name__
            errors.add(f"categories[{position}]", f"must be an object, found {found}")
            continue
        cat_id = category.get("id")
        record = f"category id={cat_id!r} name={category.get('name')!r}"
        if not _is_int(cat_id) or cat_id in seen:
            errors.add(record, "'id' must be a unique int")
            continue
        seen.add(cat_id)
        if "keypoints" in category:
            names = category["keypoints"]
            if not isinstance(names, list) or len(names) != num_keypoints:
                found = len(names) if isinstance(names, list) else type(names).__name__
                errors.add(record, f"lists {found} keypoint names, expected {num_keypoints}")
                continue
            keypoint_ids.add(cat_id)
        if "skeleton" in category and not _skeleton_fits(category["skeleton"], num_keypoints):
            category["skeleton"] = []
            report.add_repair("skeleton_dropped", [cat_id])
    return keypoint_ids


def _skeleton_fits(skeleton, num_keypoints: int) -> bool:
    """True for a list of 1-based index pairs within 1..K."""
    if not isinstance(skeleton, list):
        return False
    for link in skeleton:
        if not (isinstance(link, (list, tuple)) and len(link) == 2):
            return False
        if not all(_is_int(i) and 1 <= i <= num_keypoints for i in link):
            return False
    return True


def _warn_image_coverage(
    images: Dict[int, dict], annotations: list, report: ValidationReport
) -> None:
    """Warn about images without annotations and images with crowd annotations only."""
    has_person: Dict[int, bool] = {}
    for ann in annotations:
        if isinstance(ann, dict) and ann.get("image_id") in images:
            crowd = ann.get("iscrowd") == 1
            has_person[ann["image_id"]] = has_person.get(ann["image_id"], False) or not crowd
    report.add_warning("image_without_annotations", [i for i in images if i not in has_person])
    report.add_warning("crowd_only_image", [i for i, person in has_person.items() if not person])
