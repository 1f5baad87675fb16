"""``InsPoseCodec``: the one object that encodes ground truth into targets and decodes predictions.

- ``encode(locations, gt_instances, crowd_boxes) -> InsPoseTargets``: every training target of a
  batch (classification labels and ignore regions, the KP-Nets to train and their keypoint cells,
  positive boxes, disk offsets, auxiliary heatmaps); the criterion only computes losses from them.
- ``decode(cells, map_size, offset_map, image_index) -> keypoints`` and
  ``decode_boxes(points, distances) -> boxes``: the predictor's argmax cells and box distances back
  to input coordinates; the box loss decodes its distances with the same function.
- ``regression_targets(points, strides, keypoints)`` / ``decode_regression(points, strides,
  deltas)``: keypoints relative to a location in units of its stride (the keypoint-regression
  branch), and back.
- ``relative_coordinates``: the KP-Nets' relative-coordinate input of given locations, the same in
  training and inference.

The model calls it with the padded feature sizes (targets depend on them) and post-processing uses
the same object, so training and inference cannot drift apart. The smaller steps (``assign``,
``sample_kpnet_positives``, ``keypoint_cells``, ``disk_offsets``, ``heatmaps``) are public for tests.
"""
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import torch
from detectron2.structures import Instances

from ..kpnet import relative_coordinate_axes
from ..level_maps import rows_and_cols
from .assignment import (
    LevelLocations,
    assign_locations,
    compute_locations,
    grow_boxes,
    points_in_boxes,
    pseudo_boxes_from_keypoints,
)
from .adaptive_targets import (
    AdaptiveRadius,
    adaptive_gaussian_heatmaps,
    person_radii,
    tag_targets,
    window_offset_targets,
)
from .budget import sample_positives
from .keypoint_targets import (
    DiskOffsets,
    cell_centres,
    disk_offset_targets,
    gaussian_heatmaps,
    keypoint_cells,
)
from .targets import InsPoseTargets

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
    """Encoding and decoding of InsPose's targets (see ``inspose/config/defaults.py`` for every parameter)."""

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
        rel_coord_norms: Sequence[float],
        kpnet_positive_budget: int = 64,
        disk_offsets_on: bool = True,
        heatmaps_on: bool = True,
        heatmap_stride: int = 8,
        assign_with_annotated_boxes: bool = False,
        no_keypoint_persons: str = "ignore",
        ignore_crowd: bool = True,
        keypoint_regression_on: bool = False,
        heatmap_radius: Optional[AdaptiveRadius] = None,
        heatmap_offsets_on: bool = False,
        ae_tags_on: bool = False,
    ):
        self.num_keypoints = num_keypoints
        self.fpn_strides = list(fpn_strides)
        self.sizes_of_interest = list(sizes_of_interest)
        self.center_sample_radius = center_sample_radius
        self.pseudo_box_min_size = pseudo_box_min_size
        self.output_stride = output_stride
        self.disk_radius = disk_radius
        self.heatmap_sigma = heatmap_sigma
        self.rel_coord_norms = [float(n) for n in rel_coord_norms]
        self.kpnet_positive_budget = kpnet_positive_budget
        self.disk_offsets_on = disk_offsets_on
        self.heatmaps_on = heatmaps_on
        self.heatmap_stride = heatmap_stride
        self.assign_with_annotated_boxes = assign_with_annotated_boxes
        self.no_keypoint_persons = no_keypoint_persons
        self.ignore_crowd = ignore_crowd
        self.keypoint_regression_on = keypoint_regression_on
        # The release's heatmap options (None / False: the paper's fixed-sigma P3 heatmaps).
        self.heatmap_radius = heatmap_radius
        self.heatmap_offsets_on = heatmap_offsets_on
        self.ae_tags_on = ae_tags_on

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
            rel_coord_norms=c.REL_COORD_NORMS,
            kpnet_positive_budget=c.MAX_KPNET_POSITIVES_PER_IMAGE,
            disk_offsets_on=c.DISK_OFFSET_ON,
            heatmaps_on=c.HEATMAP_ON,
            heatmap_stride=c.HEATMAP_STRIDE,
            assign_with_annotated_boxes=c.BOX_HEAD_ON,
            no_keypoint_persons=c.NO_KEYPOINT_PERSONS,
            ignore_crowd=c.IGNORE_CROWD,
            keypoint_regression_on=c.KEYPOINT_REGRESSION_ON,
            heatmap_radius=AdaptiveRadius.from_config(c),
            heatmap_offsets_on=c.HEATMAP_OFFSETS_ON,
            ae_tags_on=c.AE_TAGS_ON,
        )

    # ------------------------------------------------------------------ geometry
    def locations(self, sizes: Sequence[Tuple[int, int]], device) -> LevelLocations:
        """Locations of FPN maps of the given (H_i, W_i), P3 first."""
        return compute_locations(sizes, self.fpn_strides[: len(sizes)], device)

    def output_map_size(self, p3_size: Tuple[int, int]) -> Tuple[int, int]:
        """(H, W) of the keypoint and offset maps for a P3 map of ``p3_size``."""
        if self.fpn_strides[0] % self.output_stride == 0:  # 8, 4, 2: integers (exportable sizes)
            factor = self.fpn_strides[0] // self.output_stride
            return p3_size[0] * factor, p3_size[1] * factor
        scale = self.fpn_strides[0] / self.output_stride
        return int(round(p3_size[0] * scale)), int(round(p3_size[1] * scale))

    def heatmap_map_size(self, p3_size: Tuple[int, int]) -> Tuple[int, int]:
        """(H, W) of the heatmap branch's maps (HEATMAP_STRIDE 8: P3's; 4: twice P3's)."""
        factor = self.fpn_strides[0] // self.heatmap_stride
        return p3_size[0] * factor, p3_size[1] * factor

    def relative_coordinates(
        self, locs: LevelLocations, location: torch.Tensor, map_size: Tuple[int, int]
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """The KP-Net coordinate input of N locations: rel_x (N, W), rel_y (N, H).

        Args:
            location: (N,) indices into ``locs``; each is normalised by REL_COORD_NORMS of its level.
        """
        norms = locs.points.new_tensor(self.rel_coord_norms)[locs.levels[location]]
        return relative_coordinate_axes(locs.points[location], norms, map_size, self.output_stride)

    # ------------------------------------------------------------------ encoding
    def encode(
        self,
        locs: LevelLocations,
        gt_instances: List[Instances],
        crowd_boxes: Sequence[Optional[torch.Tensor]],
    ) -> InsPoseTargets:
        """Training targets of a batch.

        Args:
            locs: the L locations of the padded batch (``locations``); P3's size sets the output
                map (``output_map_size``) and the heatmap map.
            gt_instances: per image, ``gt_keypoints`` (P, K, 3) and ``gt_boxes`` (P, 4) of its
                non-crowd persons, optionally ``gt_areas`` (P,) (``person_areas``).
            crowd_boxes: per image (Q, 4) xyxy crowd regions, or None.
        """
        device = locs.points.device
        crowds = [c.to(device) if c is not None else torch.zeros(0, 4, device=device) for c in crowd_boxes]
        images = [self._encode_image(locs, inst, crowd) for inst, crowd in zip(gt_instances, crowds)]
        kp_keypoints = _cat(images, "kp_keypoints")
        kp_cells, kp_labelled = self.keypoint_cells(kp_keypoints, self.output_map_size(locs.sizes[0]))
        targets = InsPoseTargets(
            labels=torch.stack([i.labels for i in images]),
            valid=torch.stack([i.valid for i in images]),
            kp_image=_image_index(images, "kp_location"),
            kp_location=_cat(images, "kp_location"),
            kp_instance=_cat(images, "kp_instance"),
            kp_keypoints=kp_keypoints,
            kp_cells=kp_cells,
            kp_labelled=kp_labelled,
            pos_image=_image_index(images, "pos_location"),
            pos_location=_cat(images, "pos_location"),
            pos_boxes=_cat(images, "pos_boxes"),
            pos_instance=_cat(images, "pos_instance"),
            pos_keypoints=_cat(images, "pos_keypoints"),
            pos_areas=_cat(images, "pos_areas"),
            pos_trained=_cat(images, "pos_trained"),
        )
        if self.keypoint_regression_on:
            targets.pos_regression, targets.pos_regression_labelled = self.regression_targets(
                locs.points[targets.pos_location], locs.strides[targets.pos_location], targets.pos_keypoints
            )
        persons, person_image = _cat(images, "persons"), _image_index(images, "persons")
        if self.disk_offsets_on:
            map_size = self.output_map_size(locs.sizes[0])
            targets.disk_offsets = self.disk_offsets(persons, person_image, map_size)
        if self.heatmaps_on:
            size, radii = self.heatmap_map_size(locs.sizes[0]), self.heatmap_radii(_cat(images, "person_boxes"))
            targets.heatmaps = self.heatmaps(persons, person_image, len(images), size, radii)
            # IGNORE_CROWD False (the release): crowd regions are heatmap negatives too
            ignored = crowds if self.ignore_crowd else [c[:0] for c in crowds]
            targets.heatmap_weight = self.outside_regions(ignored, size)
            if self.heatmap_offsets_on:
                targets.heatmap_offsets = self.heatmap_offsets(persons, person_image, size, radii)
            if self.ae_tags_on:
                targets.ae_tags = tag_targets(persons, person_image, self.heatmap_stride, size)
        return targets

    def _encode_image(self, locs: LevelLocations, inst: Instances, crowd: torch.Tensor) -> "_ImageTargets":
        """One image's share of ``encode``."""
        device = locs.points.device
        keypoints = inst.gt_keypoints.tensor.to(device)
        a = self.assign(locs, keypoints, inst.gt_boxes.tensor.to(device), crowd)
        sampled = self.sample_kpnet_positives(a.owner, a.trains_keypoints, self.kpnet_positive_budget)
        positive = (a.owner >= 0).nonzero().squeeze(1)
        pos_instance = a.owner[positive]
        return _ImageTargets(
            labels=(a.owner >= 0).float(),
            valid=~a.ignore,
            kp_location=sampled,
            kp_instance=a.owner[sampled],
            kp_keypoints=keypoints[a.owner[sampled]],
            pos_location=positive,
            pos_boxes=a.boxes[a.owner[positive]],
            pos_instance=pos_instance,
            pos_keypoints=keypoints[pos_instance],
            pos_areas=self.person_areas(inst).to(device)[pos_instance],
            pos_trained=torch.isin(positive, sampled),  # both sorted: kp rows follow positives
            persons=keypoints[a.trains_keypoints],
            person_boxes=a.boxes[a.trains_keypoints],
        )

    @staticmethod
    def person_areas(inst: Instances) -> torch.Tensor:
        """(P,) area of each person in input pixels^2: ``gt_areas`` (the annotation's area, scaled
        with the image by the dataset mapper) when the Instances have it, else its box's area."""
        if inst.has("gt_areas"):
            return inst.gt_areas.float()
        return inst.gt_boxes.area().float()

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

    def heatmap_radii(self, boxes: torch.Tensor) -> Optional[torch.Tensor]:
        """(P,) long radius in heatmap cells of persons with (P, 4) ``boxes`` in HEATMAP_RADIUS_MODE
        "adaptive"; None in "fixed" mode (HEATMAP_SIGMA, DISK_RADIUS)."""
        if self.heatmap_radius is None:
            return None
        return person_radii(boxes, self.heatmap_stride, self.heatmap_radius)

    def heatmaps(self, keypoints, image_index, batch: int, map_size, radii=None) -> torch.Tensor:
        """(B, K, H, W) auxiliary heatmap targets on the heatmap map (P3's by default): Gaussians
        of the persons' (P,) ``radii`` (``heatmap_radii``), or of HEATMAP_SIGMA with None."""
        stride = self.heatmap_stride
        if radii is None:
            return gaussian_heatmaps(keypoints, image_index, batch, stride, map_size, self.heatmap_sigma)
        return adaptive_gaussian_heatmaps(keypoints, radii, image_index, batch, stride, map_size)

    def heatmap_offsets(self, keypoints, image_index, map_size, radii=None) -> DiskOffsets:
        """Sparse offset targets of the heatmap branch (HEATMAP_OFFSETS_ON) on the heatmap map:
        the square of each person's (P,) ``radii``, or a disk of DISK_RADIUS cells with None."""
        stride = self.heatmap_stride
        if radii is None:
            return disk_offset_targets(keypoints, image_index, stride, map_size, self.disk_radius)
        return window_offset_targets(keypoints, radii, image_index, stride, map_size)

    def outside_regions(self, regions: List[torch.Tensor], map_size) -> torch.Tensor:
        """(B, 1, H, W) 1 where a P3 cell centre lies outside all of its image's (Q_b, 4) boxes."""
        device = regions[0].device if regions else torch.device("cpu")
        centres = cell_centres(map_size, self.heatmap_stride, device)  # (H * W, 2)
        inside = torch.stack([points_in_boxes(centres, boxes) for boxes in regions])
        return (~inside).float().view(len(regions), 1, *map_size)

    @staticmethod
    def regression_targets(
        points: torch.Tensor, strides: torch.Tensor, keypoints: torch.Tensor
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Keypoint-regression targets of Q locations.

        Args:
            points: (Q, 2) locations (x, y); strides: (Q,) their levels' strides.
            keypoints: (Q, K, 3) the keypoints of each location's person.
        Returns:
            (Q, K, 2) (keypoint - location) / stride, 0 where unlabelled, and (Q, K) labelled (v > 0).
        """
        labelled = keypoints[..., 2] > 0
        deltas = (keypoints[..., :2] - points[:, None, :]) / strides[:, None, None]
        return torch.where(labelled[..., None], deltas, torch.zeros_like(deltas)), labelled

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

    def decode_cells(
        self,
        cells: torch.Tensor,
        map_width: int,
        offsets: Optional[torch.Tensor] = None,
        stride: Optional[float] = None,
    ) -> torch.Tensor:
        """(N, K) flat cells (+ (N, K, 2) offsets in cells) -> (N, K, 2) x, y in input coordinates.

        ((x + dx) * s, (y + dy) * s) with offsets, ((x + 0.5) * s, (y + 0.5) * s) without; s: the
        map's ``stride`` (default OUTPUT_STRIDE; OUTPUT_STRIDE / KPNET_UPSAMPLE_FACTOR for upsampled maps).
        """
        rows, cols = rows_and_cols(cells, map_width)
        grid = torch.stack([cols, rows], dim=-1).float()
        shift = offsets if offsets is not None else torch.full_like(grid, 0.5)
        return (grid + shift) * (self.output_stride if stride is None else stride)

    def decode(
        self,
        cells: torch.Tensor,
        map_size: Tuple[int, int],
        offset_map: Optional[torch.Tensor] = None,
        image_index: Optional[torch.Tensor] = None,
        stride: Optional[float] = None,
    ) -> torch.Tensor:
        """Keypoint positions in (padded) input-image coordinates.

        Args:
            cells: (N, K) flat argmax cells of the keypoint maps of size ``map_size`` (H, W).
            offset_map: (B, 2K, H, W) disk offsets (read at the cells), or None (cell centres).
            image_index: (N,) batch index of each instance in ``offset_map`` (default: all 0).
            stride: of the maps (default OUTPUT_STRIDE; upsampled maps: see ``decode_cells``).
        Returns:
            (N, K, 2) x, y.
        """
        offsets = None
        if offset_map is not None:
            if image_index is None:
                image_index = torch.zeros(cells.shape[0], dtype=torch.long, device=cells.device)
            offsets = self.gather_offsets(offset_map, image_index, cells)
        return self.decode_cells(cells, map_size[1], offsets, stride)

    @staticmethod
    def decode_regression(points: torch.Tensor, strides: torch.Tensor, deltas: torch.Tensor) -> torch.Tensor:
        """(n, 2) locations, (n,) strides and (n, 2K) (or (n, K, 2)) regressed (dx_k, dy_k) in
        strides -> (n, K, 2) keypoints x, y in input coordinates (``regression_targets`` inverted)."""
        if deltas.dim() == 2:
            deltas = deltas.view(deltas.shape[0], deltas.shape[1] // 2, 2)
        return points[:, None, :] + deltas * strides[:, None, None]

    @staticmethod
    def decode_boxes(points: torch.Tensor, distances: torch.Tensor) -> torch.Tensor:
        """(N, 2) locations and (N, 4) distances (l, t, r, b) -> (N, 4) xyxy boxes."""
        return torch.cat([points - distances[:, :2], points + distances[:, 2:]], dim=1)


@dataclass
class _ImageTargets:
    """One image's targets before they are batched (see ``InsPoseTargets`` for each field)."""

    labels: torch.Tensor
    valid: torch.Tensor
    kp_location: torch.Tensor
    kp_instance: torch.Tensor
    kp_keypoints: torch.Tensor
    pos_location: torch.Tensor
    pos_boxes: torch.Tensor
    pos_instance: torch.Tensor
    pos_keypoints: torch.Tensor
    pos_areas: torch.Tensor
    pos_trained: torch.Tensor
    persons: torch.Tensor  # (P, K, 3) the image's persons with a labelled keypoint
    person_boxes: torch.Tensor  # (P, 4) their boxes (the ones they are assigned with)


def _cat(images: List[_ImageTargets], field: str) -> torch.Tensor:
    return torch.cat([getattr(i, field) for i in images])


def _image_index(images: List[_ImageTargets], field: str) -> torch.Tensor:
    """(sum of len(field)) batch index of every row of ``field``, image by image."""
    counts = torch.tensor([getattr(i, field).shape[0] for i in images])
    device = getattr(images[0], field).device
    return torch.repeat_interleave(torch.arange(len(images)), counts).to(device)
