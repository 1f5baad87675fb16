"""What InsPose's heads produce for a padded batch, read by the criterion, the predictor and TTA."""
from dataclasses import dataclass
from typing import List, Optional, Tuple

import torch

__all__ = ["HeadOutputs"]


@dataclass
class HeadOutputs:
    """Every head's output for a batch of B padded images.

    Attributes:
        logits: per FPN level (B, 1, H_i, W_i) person classification logits.
        params: per FPN level (B, C_f, H_i, W_i) generated KP-Net parameters.
        boxes: per FPN level (B, 4, H_i, W_i) distances (l, t, r, b) in pixels, or None without
            the box head.
        kp_features: (B, C_kp, H_o, W_o) keypoint features F_kp at the output stride.
        offsets: (B, 2K, H_o, W_o) disk offsets in output cells, (dx_k, dy_k) in channels
            (2k, 2k + 1), or None with DISK_OFFSET_ON off; with HEATMAP_OFFSETS_ON the heatmap
            branch's, on its map of HEATMAP_STRIDE (the decode map), in cells of that stride.
        heatmaps: (B, K, H_h, W_h) auxiliary heatmap logits on the map of HEATMAP_STRIDE (P3 by
            default), in training with HEATMAP_ON; else None.
        level_sizes: (H_i, W_i) of each FPN level, P3 first.
        keypoint_regression: per FPN level (B, 2K, H_i, W_i) regressed keypoints relative to each
            location in units of the level's stride, (dx_k, dy_k) in channels (2k, 2k + 1)
            (``InsPoseCodec.decode_regression``); None with KEYPOINT_REGRESSION_ON off, and at test
            time when nothing reads it (no star convs, NMS_BOXES not "regression", KP-Nets before NMS).
        heatmap_tags: (B, K, H_h, W_h) associative-embedding tags of the heatmap branch, in
            training with AE_TAGS_ON; else None.
    """

    logits: List[torch.Tensor]
    params: List[torch.Tensor]
    boxes: Optional[List[torch.Tensor]]
    kp_features: torch.Tensor
    offsets: Optional[torch.Tensor]
    heatmaps: Optional[torch.Tensor]
    level_sizes: List[Tuple[int, int]]
    keypoint_regression: Optional[List[torch.Tensor]] = None
    heatmap_tags: Optional[torch.Tensor] = None

    @property
    def map_size(self) -> Tuple[int, int]:
        """(H_o, W_o) of the keypoint and offset maps."""
        return tuple(self.kp_features.shape[-2:])
