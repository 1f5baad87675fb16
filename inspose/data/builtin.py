"""Datasets InsPose adds to detectron2's catalog when ``inspose`` is imported.

- OKS sigmas (``keypoint_oks_sigmas``) on detectron2's built-in COCO keypoint datasets.
- ``keypoints_coco_2017_test-dev``: the test-dev image list (image_info_test-dev2017.json).
- ``synthetic_keypoints_train`` / ``synthetic_keypoints_val``: the synthetic dataset made by
  ``datasets/prepare_synthetic.py``.
All under ``$DETECTRON2_DATASETS`` (default ``./datasets``), as detectron2's own datasets.
"""
import os

from detectron2.data import DatasetCatalog, MetadataCatalog

from .keypoint_spec import COCO_PERSON
from .register import register_image_list, register_keypoint_dataset

__all__ = ["register_all", "SYNTHETIC_SPLITS", "COCO_TEST_DEV"]

COCO_TEST_DEV = "keypoints_coco_2017_test-dev"
SYNTHETIC_SPLITS = {
    "synthetic_keypoints_train": ("synthetic/train", "synthetic/annotations/person_keypoints_train.json"),
    "synthetic_keypoints_val": ("synthetic/val", "synthetic/annotations/person_keypoints_val.json"),
}


def _add_sigmas_to_builtin_coco() -> None:
    for name in DatasetCatalog.list():
        if name.startswith("keypoints_coco_"):
            metadata = MetadataCatalog.get(name)
            if not hasattr(metadata, "keypoint_oks_sigmas"):
                metadata.set(keypoint_oks_sigmas=list(COCO_PERSON.oks_sigmas))


def register_all(root: str) -> None:
    """Register InsPose's datasets under ``root`` (idempotent)."""
    _add_sigmas_to_builtin_coco()
    registered = set(DatasetCatalog.list())
    if COCO_TEST_DEV not in registered:
        register_image_list(
            COCO_TEST_DEV,
            os.path.join(root, "coco/annotations/image_info_test-dev2017.json"),
            os.path.join(root, "coco/test2017"),
            COCO_PERSON,
        )
    for name, (image_root, json_file) in SYNTHETIC_SPLITS.items():
        if name not in registered:
            register_keypoint_dataset(
                name, os.path.join(root, json_file), os.path.join(root, image_root), COCO_PERSON
            )


register_all(os.path.expanduser(os.getenv("DETECTRON2_DATASETS", "datasets")))
