"""``InsPoseTargets``: a batch's training targets, as ``InsPoseCodec.encode`` produces them."""
from dataclasses import dataclass
from typing import Optional

import torch

from .adaptive_targets import TagTargets
from .keypoint_targets import DiskOffsets

__all__ = ["InsPoseTargets"]


@dataclass
class InsPoseTargets:
    """Targets of a batch of B images with L locations each (all FPN levels concatenated).

    Attributes:
        labels: (B, L) float, 1 for positive locations.
        valid: (B, L) bool, the locations the classification loss uses.
        kp_image, kp_location: (M,) image and location of each trained KP-Net (the positive
            budget's choice among positives of persons with a labelled keypoint).
        kp_instance: (M,) index of its person in the image's gt ``Instances``.
        kp_keypoints: (M, K, 3) that person's keypoints (x, y, v) in input coordinates.
        kp_cells: (M, K) one-hot target cell of each keypoint on the (H_o, W_o) output map;
            kp_labelled: (M, K) bool, keypoints with v > 0.
        pos_image, pos_location: (Q,) every positive location; pos_boxes: (Q, 4) xyxy box of its
            person (the box it was assigned with).
        pos_instance: (Q,) index of its person in the image's gt ``Instances``; pos_keypoints:
            (Q, K, 3) that person's keypoints (all v = 0 for a weak positive, a person without
            labelled keypoints under NO_KEYPOINT_PERSONS "positive"); pos_areas: (Q,) its area in
            input pixels^2 (``gt_areas``, the annotation's scaled area, else its box's area).
        pos_trained: (Q,) bool, positives with a trained KP-Net: the kp rows are exactly the
            positives with pos_trained, in the same (image, location) order.
        pos_regression: (Q, K, 2) keypoint-regression targets of every positive, its person's
            keypoints relative to the location in units of its stride (0 where unlabelled), and
            pos_regression_labelled: (Q, K) bool, v > 0 (``InsPoseCodec.regression_targets``;
            None with KEYPOINT_REGRESSION_ON off).
        disk_offsets: sparse offset targets on the output map (None with DISK_OFFSET_ON off).
        heatmaps: (B, K, H_h, W_h) heatmap targets on the map of HEATMAP_STRIDE (P3 by default)
            and heatmap_weight: (B, 1, H_h, W_h), 0 inside crowd regions with IGNORE_CROWD (None with HEATMAP_ON off).
        heatmap_offsets: sparse offset targets on that map (HEATMAP_OFFSETS_ON; else None).
        ae_tags: where the associative-embedding tags are read (AE_TAGS_ON; else None).
    """

    labels: torch.Tensor
    valid: torch.Tensor
    kp_image: torch.Tensor
    kp_location: torch.Tensor
    kp_instance: torch.Tensor
    kp_keypoints: torch.Tensor
    kp_cells: torch.Tensor
    kp_labelled: torch.Tensor
    pos_image: torch.Tensor
    pos_location: torch.Tensor
    pos_boxes: torch.Tensor
    pos_instance: torch.Tensor
    pos_keypoints: torch.Tensor
    pos_areas: torch.Tensor
    pos_trained: torch.Tensor
    disk_offsets: Optional[DiskOffsets] = None
    heatmaps: Optional[torch.Tensor] = None
    heatmap_weight: Optional[torch.Tensor] = None
    pos_regression: Optional[torch.Tensor] = None
    pos_regression_labelled: Optional[torch.Tensor] = None
    heatmap_offsets: Optional[DiskOffsets] = None
    ae_tags: Optional[TagTargets] = None
