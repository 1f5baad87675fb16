"""``InsPoseDatasetMapper``: a dataset record -> the model's input dict.

Image + annotations -> resize / flip (keypoint flip pairs from the dataset's metadata) ->
``Instances`` with detectron2's standard fields (gt_boxes, gt_classes, gt_keypoints) for every
non-crowd person, persons without keypoints included (the model decides what to do with them),
plus ``gt_areas`` (the annotations' ``area``, in pixels^2 of the transformed image) when every
person has one (InsPose's registered datasets keep it; the varifocal targets read it);
crowd regions travel beside them as ``dataset_dict["crowd_boxes"]`` (a ``Boxes``, maybe empty).
Nothing is dropped: a record whose keypoints do not match the dataset's K raises an error naming
the file and the annotation.
"""
import copy
import logging
from typing import List, Optional

import numpy as np
import torch
from detectron2.config import configurable
from detectron2.data import detection_utils as utils
from detectron2.data import transforms as T
from detectron2.structures import Boxes, BoxMode, Keypoints

from .image_io import ImageReadError, SkippedImages, read_dataset_image

__all__ = ["InsPoseDatasetMapper", "KeypointCountError"]

logger = logging.getLogger(__name__)


class KeypointCountError(ValueError):
    """An annotation whose keypoint list does not have 3 * K values."""


def _area_scale(transforms) -> float:
    """The factor by which ``transforms`` multiply areas: exact for resizes, flips and crops
    (the unit square's transformed box)."""
    x0, y0, x1, y1 = transforms.apply_box(np.array([[0.0, 0.0, 1.0, 1.0]]))[0]
    return float((x1 - x0) * (y1 - y0))


def _flip_indices(dataset_names: List[str]) -> Optional[np.ndarray]:
    if not dataset_names:
        return None
    return utils.create_keypoint_hflip_indices(list(dataset_names))


class InsPoseDatasetMapper:
    """Maps a detectron2 dataset dict to InsPose's inputs (see the module docstring)."""

    @configurable
    def __init__(
        self,
        is_train: bool,
        *,
        augmentations: List,
        image_format: str,
        num_keypoints: int,
        keypoint_hflip_indices: Optional[np.ndarray] = None,
    ):
        self.is_train = is_train
        self.augmentations = T.AugmentationList(augmentations)
        self.image_format = image_format
        self.num_keypoints = num_keypoints
        self.keypoint_hflip_indices = keypoint_hflip_indices
        logger.info("[InsPoseDatasetMapper] %s augmentations: %s", "train" if is_train else "test", augmentations)

    @classmethod
    def from_config(cls, cfg, is_train: bool = True, dataset_names: Optional[List[str]] = None):
        names = list(dataset_names) if dataset_names is not None else list(cfg.DATASETS.TRAIN)
        flips = _flip_indices(names) if is_train and cfg.INPUT.RANDOM_FLIP != "none" else None
        if flips is not None and len(flips) != cfg.MODEL.INSPOSE.NUM_KEYPOINTS:
            raise KeypointCountError(
                f"datasets {names} have {len(flips)} keypoints in their metadata but "
                f"MODEL.INSPOSE.NUM_KEYPOINTS is {cfg.MODEL.INSPOSE.NUM_KEYPOINTS}"
            )
        return {
            "is_train": is_train,
            "augmentations": utils.build_augmentation(cfg, is_train),
            "image_format": cfg.INPUT.FORMAT,
            "num_keypoints": cfg.MODEL.INSPOSE.NUM_KEYPOINTS,
            "keypoint_hflip_indices": flips,
        }

    def __call__(self, dataset_dict: dict) -> Optional[dict]:
        """Returns None for an unreadable training image (detectron2's loader then takes another)."""
        dataset_dict = copy.deepcopy(dataset_dict)
        try:
            image = read_dataset_image(dataset_dict, self.image_format)
        except ImageReadError as error:
            if not self.is_train:
                raise
            SkippedImages.skip(error)
            return None
        aug_input = T.AugInput(image)
        transforms = self.augmentations(aug_input)
        image = aug_input.image
        dataset_dict["image"] = torch.as_tensor(np.ascontiguousarray(image.transpose(2, 0, 1)))
        annotations = dataset_dict.pop("annotations", None)
        if not self.is_train or annotations is None:
            return dataset_dict
        self._add_targets(dataset_dict, annotations, transforms, image.shape[:2])
        return dataset_dict

    def _check_keypoints(self, dataset_dict: dict, annotation: dict) -> None:
        keypoints = annotation.get("keypoints")
        if keypoints is None or len(keypoints) != 3 * self.num_keypoints:
            found = "no keypoints" if keypoints is None else f"{len(keypoints)} keypoint values"
            raise KeypointCountError(
                f"{dataset_dict.get('file_name')}: annotation {annotation.get('id', '?')} has {found}, "
                f"expected {3 * self.num_keypoints} (K = {self.num_keypoints} from the config)"
            )

    def _add_targets(self, dataset_dict: dict, annotations, transforms, image_size) -> None:
        persons, crowd = [], []
        for annotation in annotations:
            if annotation.get("iscrowd", 0):
                box = BoxMode.convert(annotation["bbox"], annotation["bbox_mode"], BoxMode.XYXY_ABS)
                crowd.append(transforms.apply_box(np.array([box]))[0].clip(min=0))
                continue
            self._check_keypoints(dataset_dict, annotation)
            # InsPose uses no masks: without "segmentation" nothing builds or flips polygons, and a
            # keypoint-only person ("segmentation": [], which the loader drops) may sit beside one
            # with a polygon (detectron2 decides from the first person whether all have one).
            annotation = {key: value for key, value in annotation.items() if key != "segmentation"}
            persons.append(
                utils.transform_instance_annotations(
                    annotation, transforms, image_size, keypoint_hflip_indices=self.keypoint_hflip_indices
                )
            )
        instances = utils.annotations_to_instances(persons, image_size)
        if persons and all("area" in p for p in persons):
            areas = torch.tensor([float(p["area"]) for p in persons], dtype=torch.float32)
            instances.gt_areas = areas * _area_scale(transforms)
        if not instances.has("gt_keypoints"):  # left out when the image has nobody
            instances.gt_keypoints = Keypoints(torch.zeros(0, self.num_keypoints, 3))
        dataset_dict["instances"] = instances
        crowd_boxes = torch.as_tensor(np.array(crowd, dtype=np.float32).reshape(-1, 4))
        dataset_dict["crowd_boxes"] = Boxes(crowd_boxes)
