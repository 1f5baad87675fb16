"""Encoding of ground truth into InsPose's training targets and decoding of its predictions."""
from .assignment import LevelLocations, compute_locations, pseudo_boxes_from_keypoints
from .codec import ImageAssignment, InsPoseCodec
from .keypoint_targets import DiskOffsets
from .targets import InsPoseTargets

__all__ = [
    "InsPoseCodec",
    "InsPoseTargets",
    "ImageAssignment",
    "LevelLocations",
    "DiskOffsets",
    "compute_locations",
    "pseudo_boxes_from_keypoints",
]
