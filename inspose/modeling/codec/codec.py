"""``InsPoseCodec``: the one object that encodes ground truth into targets and decodes predictions.

The model calls it with the padded feature sizes (targets depend on them) and post-processing uses
the same object, so training and inference cannot drift apart.
"""
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import torch

from .assignment import (
    LevelLocations,
    assign_locations,
    compute_locations,
    grow_boxes,
    points_in_boxes,
    pseudo_boxes_from_keypoints,
)
from .budget import sample_positives
from .keypoint_targets import DiskOffsets, disk_offset_targets, gaussian_heatmaps, keypoint_cells

__all__ = ["InsPoseCodec", "ImageAssignment"]


@dataclass
class ImageAssignment:
    """Targets of one image's locations.

    Attributes:
        owner: (L,) index of the assigned person in the image's gt Instances, -1 for negatives.
        ignore: (L,) bool, locations the classification loss skips (crowd / unannotated persons).
        trains_keypoints: (P,) bool, persons with at least one labelled keypoint.
        boxes: (P, 4) the boxes the locations were assigned with (pseudo-boxes or annotated).
    """

    owner: torch.Tensor
    ignore: torch.Tensor
    trains_keypoints: torch.Tensor
    boxes: torch.Tensor


class InsPoseCodec:
    """Encoding and decoding of InsPose's targets (see ``inspose/config.py`` for every parameter)."""

    def __init__(
        self,
        *,
        num_keypoints: int,
        fpn_strides: Sequence[int],
        sizes_of_interest: Sequence[float],
        center_sample_radius: float,
        pseudo_box_min_size: float,
        output_stride: int,
        disk_radius: float,
        heatmap_sigma: float,
        heatmap_stride: int = 8,
        assign_with_annotated_boxes: bool = False,
        no_keypoint_persons: str = "ignore",
        ignore_crowd: bool = True,
    ):
        self.num_keypoints = num_keypoints
        self.fpn_strides = list(fpn_strides)
        self.sizes_of_interest = list(sizes_of_interest)
        self.center_sample_radius = center_sample_radius
        self.pseudo_box_min_size = pseudo_box_min_size
        self.output_stride = output_stride
        self.disk_radius = disk_radius
        self.heatmap_sigma = heatmap_sigma
        self.heatmap_stride = heatmap_stride
        self.assign_with_annotated_boxes = assign_with_annotated_boxes
        self.no_keypoint_persons = no_keypoint_persons
        self.ignore_crowd = ignore_crowd

    @classmethod
    def from_config(cls, cfg) -> "InsPoseCodec":
        c = cfg.MODEL.INSPOSE
        return cls(
            num_keypoints=c.NUM_KEYPOINTS,
            fpn_strides=c.FPN_STRIDES,
            sizes_of_interest=c.SIZES_OF_INTEREST,
            center_sample_radius=c.CENTER_SAMPLE_RADIUS,
            pseudo_box_min_size=c.PSEUDO_BOX_MIN_SIZE,
            output_stride=c.OUTPUT_STRIDE,
            disk_radius=c.DISK_RADIUS,
            heatmap_sigma=c.HEATMAP_SIGMA,
            heatmap_stride=c.FPN_STRIDES[0],
            assign_with_annotated_boxes=c.BOX_HEAD_ON,
            no_keypoint_persons=c.NO_KEYPOINT_PERSONS,
            ignore_crowd=c.IGNORE_CROWD,
        )

    # ------------------------------------------------------------------ encoding
    def locations(self, sizes: Sequence[Tuple[int, int]], device) -> LevelLocations:
        """Locations of FPN maps of the given (H_i, W_i), P3 first."""
        return compute_locations(sizes, self.fpn_strides[: len(sizes)], device)

    def output_map_size(self, p3_size: Tuple[int, int]) -> Tuple[int, int]:
        """(H, W) of the keypoint and offset maps for a P3 map of ``p3_size``."""
        scale = self.fpn_strides[0] / self.output_stride
        return int(round(p3_size[0] * scale)), int(round(p3_size[1] * scale))

    def person_boxes(self, keypoints: torch.Tensor, annotated: torch.Tensor) -> torch.Tensor:
        """(P, 4) boxes locations are assigned with: grown pseudo-boxes, or the annotated boxes."""
        if self.assign_with_annotated_boxes:
            return annotated
        pseudo = grow_boxes(pseudo_boxes_from_keypoints(keypoints), self.pseudo_box_min_size)
        has_keypoints = (keypoints[..., 2] > 0).any(dim=1, keepdim=True)
        return torch.where(has_keypoints, pseudo, annotated)

    def assign(
        self,
        locs: LevelLocations,
        keypoints: torch.Tensor,
        annotated_boxes: torch.Tensor,
        crowd_boxes: Optional[torch.Tensor] = None,
    ) -> ImageAssignment:
        """Assign one image's locations to its persons.

        Args:
            keypoints: (P, K, 3) gt keypoints of the image's (non-crowd) persons.
            annotated_boxes: (P, 4) their annotated xyxy boxes.
            crowd_boxes: (Q, 4) crowd regions, or None.
        """
        device = locs.points.device
        trains_keypoints = (keypoints[..., 2] > 0).any(dim=1)
        boxes = self.person_boxes(keypoints, annotated_boxes)
        assigned = trains_keypoints | (self.no_keypoint_persons == "positive")
        owner = torch.full((locs.points.shape[0],), -1, dtype=torch.long, device=device)
        index = assigned.nonzero().squeeze(1)
        sub_owner = assign_locations(
            locs, boxes[index], self.sizes_of_interest, self.center_sample_radius
        )
        if index.numel():
            owner = torch.where(sub_owner >= 0, index[sub_owner.clamp(min=0)], owner)
        ignore_boxes = [annotated_boxes[~assigned]]
        if self.ignore_crowd and crowd_boxes is not None:
            ignore_boxes.append(crowd_boxes.to(device))
        ignore = points_in_boxes(locs.points, torch.cat(ignore_boxes)) & (owner < 0)
        return ImageAssignment(owner, ignore, trains_keypoints, boxes)

    def sample_kpnet_positives(self, owner: torch.Tensor, trains_keypoints, budget: int):
        """(M,) indices of the positive locations whose KP-Nets are trained (see budget.py)."""
        # owner -1 reads the appended False: negatives stay negative, also with no persons.
        with_sentinel = torch.cat([trains_keypoints, trains_keypoints.new_zeros(1)])
        keypoint_owner = torch.where(with_sentinel[owner], owner, torch.full_like(owner, -1))
        return sample_positives(keypoint_owner, budget)

    def keypoint_cells(self, keypoints: torch.Tensor, map_size: Tuple[int, int]):
        """(P, K) one-hot target cells on the output map and (P, K) labelled flags."""
        return keypoint_cells(keypoints, self.output_stride, map_size)

    def disk_offsets(self, keypoints, image_index, map_size) -> DiskOffsets:
        """Sparse offset targets on the output map (see keypoint_targets.disk_offset_targets)."""
        return disk_offset_targets(
            keypoints, image_index, self.output_stride, map_size, self.disk_radius
        )

    def heatmaps(self, keypoints, image_index, batch: int, map_size) -> torch.Tensor:
        """(B, K, H, W) auxiliary heatmap targets on the P3 map."""
        return gaussian_heatmaps(
            keypoints, image_index, batch, self.heatmap_stride, map_size, self.heatmap_sigma
        )

    # ------------------------------------------------------------------ decoding
    @staticmethod
    def gather_offsets(
        offset_map: torch.Tensor, image_index: torch.Tensor, cells: torch.Tensor
    ) -> torch.Tensor:
        """Offsets at each instance's keypoint cells.

        Args:
            offset_map: (B, 2K, H, W) with (dx_k, dy_k) in channels (2k, 2k + 1).
            image_index: (N,) batch index of each instance.
            cells: (N, K) flat cell index per keypoint.
        Returns:
            (N, K, 2) offsets in cells.
        """
        batch, channels, height, width = offset_map.shape
        per_kind = offset_map.view(batch, channels // 2, 2, height * width)
        kinds = torch.arange(channels // 2, device=cells.device)
        picked = per_kind[image_index[:, None], kinds[None, :], :, cells]  # (N, K, 2)
        return picked

    def decode(
        self, cells: torch.Tensor, map_width: int, offsets: Optional[torch.Tensor] = None
    ) -> torch.Tensor:
        """Keypoint positions in (padded) input-image coordinates.

        ((x + dx) * s, (y + dy) * s) with offsets, ((x + 0.5) * s, (y + 0.5) * s) without.

        Args:
            cells: (N, K) flat argmax cells of the keypoint maps.
            offsets: (N, K, 2) offsets at those cells, or None.
        Returns:
            (N, K, 2) x, y.
        """
        grid = torch.stack([cells % map_width, cells // map_width], dim=-1).float()
        shift = offsets if offsets is not None else torch.full_like(grid, 0.5)
        return (grid + shift) * self.output_stride
