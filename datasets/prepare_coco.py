#!/usr/bin/env python
"""Check a COCO 2017 person-keypoint download and say exactly what is missing.

    .venv/bin/python datasets/prepare_coco.py [--root DIR] [--splits train,val,test-dev]

DIR (default: $DETECTRON2_DATASETS, else ./datasets) must hold the layout detectron2 expects:

    DIR/coco/annotations/person_keypoints_train2017.json   DIR/coco/train2017/*.jpg
    DIR/coco/annotations/person_keypoints_val2017.json     DIR/coco/val2017/*.jpg
    DIR/coco/annotations/image_info_test-dev2017.json      DIR/coco/test2017/*.jpg

For each split: every missing file or folder is named with the official archive that contains it,
the annotation file is validated (``inspose.data.validation``; its repairs and warnings are
printed), and the images it lists but the image folder lacks are counted (the first few named).
Each missing file or folder, invalid annotation file and split with missing images is one problem.
Exit code 0 and "COCO keypoints: ready" when nothing is missing; 1 and "COCO keypoints: N problems"
otherwise.
"""
import argparse
import os
import sys
from dataclasses import dataclass
from typing import List

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the repo root

from inspose.data.validation import (  # noqa: E402
    AnnotationError,
    read_annotation_json,
    validate_keypoint_json,
)

ANNOTATIONS_URL = "http://images.cocodataset.org/annotations/annotations_trainval2017.zip"
TEST_INFO_URL = "http://images.cocodataset.org/annotations/image_info_test2017.zip"
IMAGES_URL = "http://images.cocodataset.org/zips/{folder}.zip"
COCO_KEYPOINTS = 17
SHOWN_MISSING_IMAGES = 5


@dataclass(frozen=True)
class Split:
    """One split of COCO 2017 keypoints: its annotation file and image folder, with their archives.

    Paths are relative to DIR/coco; every archive unpacks into DIR/coco.
    """

    name: str
    json_file: str
    json_url: str
    image_folder: str

    @property
    def image_url(self) -> str:
        return IMAGES_URL.format(folder=self.image_folder)


SPLITS = {
    split.name: split
    for split in (
        Split("train", "annotations/person_keypoints_train2017.json", ANNOTATIONS_URL, "train2017"),
        Split("val", "annotations/person_keypoints_val2017.json", ANNOTATIONS_URL, "val2017"),
        Split("test-dev", "annotations/image_info_test-dev2017.json", TEST_INFO_URL, "test2017"),
    )
}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    default_root = os.environ.get("DETECTRON2_DATASETS", "datasets")
    parser.add_argument("--root", default=default_root,
                        help=f"folder holding coco/ (default: {default_root})")  # fmt: skip
    parser.add_argument("--splits", default="train,val,test-dev",
                        help="comma-separated, from: " + ", ".join(SPLITS))  # fmt: skip
    args = parser.parse_args(argv)
    args.splits = [s.strip() for s in args.splits.split(",") if s.strip()]
    unknown = [s for s in args.splits if s not in SPLITS]
    if unknown or not args.splits:
        parser.error(f"--splits: unknown {unknown}, choose from {', '.join(SPLITS)}")
    return args


def _missing(path: str, url: str, coco_dir: str) -> str:
    """The problem line for a missing file or folder."""
    return f"missing {path}\n    download {url} and unpack it into {coco_dir}"


def check_annotations(split: Split, coco_dir: str, problems: List[str]):
    """Validate the split's annotation file; its image list, or None when it is unusable."""
    path = os.path.join(coco_dir, split.json_file)
    if not os.path.isfile(path):
        problems.append(_missing(path, split.json_url, coco_dir))
        return None
    try:
        coco, report = validate_keypoint_json(
            read_annotation_json(path), path, COCO_KEYPOINTS, in_place=True
        )
    except AnnotationError as e:
        problems.append(f"invalid annotation file: {e}")
        return None
    count = len(coco.get("annotations", []))
    print(f"[{split.name}] {path}: valid, {len(coco['images'])} images, {count} annotations")
    for line in report.summary():
        print(f"    {line}")
    return coco["images"]


def check_images(split: Split, coco_dir: str, images, problems: List[str]) -> None:
    """Check the image folder exists and holds every image the annotation file lists."""
    folder = os.path.join(coco_dir, split.image_folder)
    if not os.path.isdir(folder):
        problems.append(_missing(folder + os.sep, split.image_url, coco_dir))
        return
    if images is None:
        return  # nothing to compare the folder with
    present = set(os.listdir(folder))
    absent = [
        im["file_name"]
        for im in images
        if im["file_name"] not in present  # a name with sub-folders is looked up on disk:
        and not os.path.isfile(os.path.join(folder, im["file_name"]))
    ]
    if absent:
        more = ", ..." if len(absent) > SHOWN_MISSING_IMAGES else ""
        shown = ", ".join(absent[:SHOWN_MISSING_IMAGES]) + more
        problems.append(
            f"{len(absent)} of {len(images)} images listed in {split.json_file} are missing "
            f"from {folder}: {shown}\n    they are in {split.image_url}"
        )
    else:
        print(f"[{split.name}] {folder}: all {len(images)} listed images present")


def check_split(split: Split, coco_dir: str) -> List[str]:
    """Problems of one split (empty when complete); progress goes to stdout."""
    problems: List[str] = []
    images = check_annotations(split, coco_dir, problems)
    check_images(split, coco_dir, images, problems)
    for problem in problems:
        print(f"[{split.name}] PROBLEM: {problem}")
    return problems


def main(argv=None) -> int:
    args = parse_args(argv)
    coco_dir = os.path.join(os.path.abspath(args.root), "coco")
    print(f"Checking COCO 2017 keypoints in {coco_dir} (splits: {', '.join(args.splits)})")
    problems = [p for name in args.splits for p in check_split(SPLITS[name], coco_dir)]
    if not problems:
        print("COCO keypoints: ready")
        return 0
    print(f"COCO keypoints: {len(problems)} problem{'s' if len(problems) != 1 else ''}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
