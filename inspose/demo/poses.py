"""What the demo draws and writes, from either backend: ``Poses`` (keypoints, scores, boxes) kept
by the final instance score the user sees."""
from typing import Dict, List

import numpy as np

from ..deploy.runtime import Poses
from ..evaluation.results import keypoints_to_results

__all__ = ["ConfidentPoses", "as_poses", "keep_confident", "pose_records"]


def as_poses(output) -> Poses:
    """``Poses`` of a backend's output: a detectron2 model's ``{"instances": ...}`` or ``Poses``."""
    if isinstance(output, Poses):
        return output
    instances = output["instances"].to("cpu")
    boxes = instances.pred_boxes.tensor.numpy() if instances.has("pred_boxes") else np.zeros((len(instances), 4))
    return Poses(instances.pred_keypoints.numpy(), instances.scores.numpy(), boxes)


def keep_confident(poses: Poses, threshold: float) -> Poses:
    """The poses whose score (the final instance score, as drawn and written) is >= ``threshold``."""
    keep = np.asarray(poses.scores) >= threshold
    return Poses(np.asarray(poses.keypoints)[keep], np.asarray(poses.scores)[keep], np.asarray(poses.boxes)[keep])


def pose_records(poses: Poses, image_id: int) -> List[Dict]:
    """COCO keypoint results records of ``poses``."""
    if len(poses.scores) == 0:
        return []
    return keypoints_to_results(poses.keypoints, poses.scores, image_id)


class ConfidentPoses:
    """A backend (BGR image -> model output) whose calls return the ``Poses`` scoring at least
    ``threshold``."""

    def __init__(self, backend, threshold: float):
        self.backend = backend
        self.threshold = threshold

    def __call__(self, image_bgr: np.ndarray) -> Poses:
        return keep_confident(as_poses(self.backend(image_bgr)), self.threshold)
