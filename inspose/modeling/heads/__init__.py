"""InsPose's heads: the shared instance head, the keypoint regression and the P3 branches."""
from .fine_keypoint_branch import FineKeypointBranch, FineKeypointMaps, build_heatmap_branch, heatmap_maps
from .instance_head import InstanceHead
from .keypoint_regression import KeypointRegressionBranch
from .p3_branches import DiskOffsetBranch, HeatmapBranch, KeypointFeatureBranch, resample_to
from .star_conv import StarConv, star_offsets
from .star_keypoints import star_keypoint_indices

__all__ = [
    "InstanceHead",
    "KeypointFeatureBranch",
    "KeypointRegressionBranch",
    "DiskOffsetBranch",
    "HeatmapBranch",
    "FineKeypointBranch",
    "FineKeypointMaps",
    "build_heatmap_branch",
    "heatmap_maps",
    "StarConv",
    "resample_to",
    "star_keypoint_indices",
    "star_offsets",
]
