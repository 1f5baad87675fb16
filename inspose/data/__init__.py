"""Datasets, keypoint metadata and the dataset mapper; importing registers InsPose's datasets."""
from . import builtin  # noqa: F401  (registers test-dev, synthetic, and COCO's OKS sigmas)
from .image_io import ImageReadError, SkippedImages
from .keypoint_spec import COCO_PERSON, KeypointSpec, spec_from_metadata
from .mapper import InsPoseDatasetMapper, KeypointCountError
from .register import (
    evaluation_json_file,
    load_image_list,
    register_image_list,
    register_keypoint_dataset,
    validated_json_file,
)
from .validation import AnnotationError

__all__ = [
    "AnnotationError",
    "COCO_PERSON",
    "ImageReadError",
    "InsPoseDatasetMapper",
    "KeypointCountError",
    "KeypointSpec",
    "SkippedImages",
    "evaluation_json_file",
    "load_image_list",
    "register_image_list",
    "register_keypoint_dataset",
    "spec_from_metadata",
    "validated_json_file",
]
