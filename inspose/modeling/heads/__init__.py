"""InsPose's heads: the shared instance head and the P3 branches."""
from .instance_head import InstanceHead
from .p3_branches import DiskOffsetBranch, HeatmapBranch, KeypointFeatureBranch, resample_to

__all__ = ["InstanceHead", "KeypointFeatureBranch", "DiskOffsetBranch", "HeatmapBranch", "resample_to"]
