"""Targets of the heatmap branch with person-size radii (HEATMAP_RADIUS_MODE "adaptive", the
authors' release) and its associative-embedding tags, on the heatmap map of stride s
(HEATMAP_STRIDE); coordinates and cells as in ``keypoint_targets`` (cell (i, j) covers
[j s, (j + 1) s) x [i s, (i + 1) s), offsets in cells).

Radius (CornerNet / CenterNet, derived here). A person's box has h x w cells. A box whose two
corners each lie within r cells (along each axis) of the true corners overlaps it with IoU >= o
(HEATMAP_MIN_OVERLAP) in the three extreme cases exactly when r <= r_i:

1. both corners shifted by (r, r), same size: IoU = (h - r)(w - r) / (2 h w - (h - r)(w - r)) >= o
   <=> r^2 - (h + w) r + h w (1 - o) / (1 + o) >= 0, so r <= r_1, the smaller root
   ((h + w) - sqrt((h + w)^2 - 4 h w (1 - o) / (1 + o))) / 2;
2. both corners moved inwards by r: IoU = (h - 2r)(w - 2r) / (h w) >= o
   <=> 4 r^2 - 2 (h + w) r + (1 - o) h w >= 0, so r <= r_2, the smaller root
   (2 (h + w) - sqrt(4 (h + w)^2 - 16 (1 - o) h w)) / 8;
3. both corners moved outwards by r: IoU = h w / ((h + 2r)(w + 2r)) >= o
   <=> 4 o r^2 + 2 o (h + w) r - (1 - o) h w <= 0, so r <= r_3, the positive root
   (-2 o (h + w) + sqrt(4 o^2 (h + w)^2 + 16 o (1 - o) h w)) / (8 o).

"exact" (HEATMAP_RADIUS_FORMULA) is min(r_1, r_2, r_3). "cornernet" is the formula of CornerNet's
code, which CenterNet and the authors' release copy: each case's (b + sqrt(b^2 - 4ac)) / 2, i.e.
the larger root of case 1, 4 x the larger root of case 2 and 4o x r_3, of which the last is the
smallest: radii about 3.8x the exact ones at o = 0.9 (a 250 x 100 px person at stride 4: exact
0.91, cornernet 3.49 cells), larger than the condition allows.
The radius of a person is clamp(floor(r), HEATMAP_MIN_RADIUS, HEATMAP_MAX_RADIUS) cells; its
keypoints' Gaussians have sigma = (2 r + 1) / 6 and its offsets are supervised on the same square.

Heatmap values are exp(-d^2 / (2 sigma^2)) with d the distance from the cell centre to the
(continuous) keypoint, on the (2r + 1)^2 cells of the square centred on the keypoint's cell, which
holds exactly 1 (the release's CenterNet drawing uses integer distances from the floored keypoint;
ours is the same continuous convention as the fixed-sigma targets). Everything is vectorised over
the keypoints of the batch (no loop over persons).
"""
from dataclasses import dataclass
from typing import Optional, Tuple

import torch

from .keypoint_targets import DiskOffsets, _nearest_per_cell, keypoint_cells

__all__ = [
    "AdaptiveRadius",
    "gaussian_radius",
    "person_radii",
    "adaptive_gaussian_heatmaps",
    "window_offset_targets",
    "TagTargets",
    "tag_targets",
]

RADIUS_FORMULAS = ("exact", "cornernet")


@dataclass(frozen=True)
class AdaptiveRadius:
    """HEATMAP_MIN_RADIUS, HEATMAP_MAX_RADIUS (cells), HEATMAP_MIN_OVERLAP, HEATMAP_RADIUS_FORMULA."""

    min_radius: int = 0
    max_radius: int = 3
    min_overlap: float = 0.9
    formula: str = "exact"

    @classmethod
    def from_config(cls, c) -> Optional["AdaptiveRadius"]:
        """The radius rule of MODEL.INSPOSE ``c``; None with HEATMAP_RADIUS_MODE "fixed"."""
        if c.HEATMAP_RADIUS_MODE != "adaptive":
            return None
        return cls(c.HEATMAP_MIN_RADIUS, c.HEATMAP_MAX_RADIUS, c.HEATMAP_MIN_OVERLAP, c.HEATMAP_RADIUS_FORMULA)


def gaussian_radius(
    height: torch.Tensor, width: torch.Tensor, min_overlap: float, formula: str = "exact"
) -> torch.Tensor:
    """(P,) box heights and widths (cells) -> (P,) float radius (see the module docstring)."""
    h, w, o = height.float(), width.float(), float(min_overlap)
    b1, c1 = h + w, h * w * (1 - o) / (1 + o)
    sq1 = (b1**2 - 4 * c1).clamp(min=0).sqrt()
    b2, c2 = 2 * (h + w), (1 - o) * h * w
    sq2 = (b2**2 - 16 * c2).clamp(min=0).sqrt()
    b3, c3 = -2 * o * (h + w), (o - 1) * h * w
    sq3 = (b3**2 - 16 * o * c3).clamp(min=0).sqrt()
    if formula == "cornernet":
        r1, r2, r3 = (b1 + sq1) / 2, (b2 + sq2) / 2, (b3 + sq3) / 2
    else:
        r1, r2, r3 = (b1 - sq1) / 2, (b2 - sq2) / 8, (b3 + sq3) / (8 * o)
    return torch.minimum(torch.minimum(r1, r2), r3)


def person_radii(boxes: torch.Tensor, stride: float, spec: AdaptiveRadius) -> torch.Tensor:
    """(P, 4) xyxy boxes in pixels -> (P,) long radius in cells of ``stride``."""
    width = (boxes[:, 2] - boxes[:, 0]).clamp(min=0) / stride
    height = (boxes[:, 3] - boxes[:, 1]).clamp(min=0) / stride
    radius = gaussian_radius(height, width, spec.min_overlap, spec.formula).floor()
    return radius.clamp(spec.min_radius, spec.max_radius).long()


def _square_cells(points: torch.Tensor, radius: torch.Tensor, map_size: Tuple[int, int]):
    """The cells of the square of half-side ``radius`` around each point's cell, inside the map.

    Args:
        points: (N, 2) positions (x, y) in cells; radius: (N,) long.
    Returns:
        point_index (E,), cell (E, 2) integer (col, row), distance (E,) from the cell centre to
        the point, is_peak (E,) bool (the point's own cell).
    """
    height, width = map_size
    reach = int(radius.max()) if radius.numel() else 0
    steps = torch.arange(-reach, reach + 1, device=points.device)
    dy, dx = torch.meshgrid(steps, steps, indexing="ij")
    window = torch.stack([dx.reshape(-1), dy.reshape(-1)], dim=1)  # (M, 2)
    cells = points.floor().long()[:, None, :] + window[None]  # (N, M, 2)
    in_square = window.abs().amax(dim=1)[None, :] <= radius[:, None]
    inside = (cells[..., 0] >= 0) & (cells[..., 0] < width) & (cells[..., 1] >= 0) & (cells[..., 1] < height)
    keep = in_square & inside
    distance = ((cells.float() + 0.5) - points[:, None, :]).norm(dim=2)
    is_peak = (window == 0).all(dim=1)[None, :].expand_as(keep)
    point_index = torch.arange(points.shape[0], device=points.device)[:, None].expand_as(keep)
    return point_index[keep], cells[keep], distance[keep], is_peak[keep]


def _labelled_points(keypoints: torch.Tensor, stride: float):
    """(N,) person and kind of every labelled keypoint of (P, K, 3) and its (N, 2) cell position."""
    person, kind = (keypoints[..., 2] > 0).nonzero(as_tuple=True)
    return person, kind, keypoints[person, kind, :2] / stride


def _flat(image, kind, cells, num_keypoints: int, map_size: Tuple[int, int]) -> torch.Tensor:
    """Flat indices into (B, K, H, W) of (E,) images, kinds and (E, 2) (col, row) cells."""
    height, width = map_size
    return ((image * num_keypoints + kind) * height + cells[:, 1]) * width + cells[:, 0]


def adaptive_gaussian_heatmaps(
    keypoints: torch.Tensor,
    radii: torch.Tensor,
    image_index: torch.Tensor,
    batch: int,
    stride: float,
    map_size: Tuple[int, int],
) -> torch.Tensor:
    """Multi-person heatmaps whose Gaussians follow each person's radius (max over persons).

    Args:
        keypoints: (P, K, 3) persons of the batch in image coordinates; radii: (P,) long cells;
        image_index: (P,) their batch index.
    Returns:
        (B, K, H, W) float, exactly 1 at each labelled keypoint's cell.
    """
    num_keypoints = keypoints.shape[1]
    height, width = map_size
    heat = torch.zeros(batch * num_keypoints * height * width, device=keypoints.device)
    person, kind, points = _labelled_points(keypoints, stride)
    radius = radii[person]
    source, cells, distance, is_peak = _square_cells(points, radius, map_size)
    sigma = (2 * radius[source].float() + 1) / 6
    value = torch.exp(-(distance**2) / (2 * sigma**2))
    value = torch.where(is_peak, torch.ones_like(value), value)
    flat = _flat(image_index[person[source]], kind[source], cells, num_keypoints, map_size)
    heat.scatter_reduce_(0, flat, value, reduce="amax")
    return heat.view(batch, num_keypoints, height, width)


def window_offset_targets(
    keypoints: torch.Tensor,
    radii: torch.Tensor,
    image_index: torch.Tensor,
    stride: float,
    map_size: Tuple[int, int],
) -> DiskOffsets:
    """Offsets (keypoint - cell corner, in cells) on the square of each person's radius around
    each labelled keypoint's cell; where squares of one keypoint type overlap, a cell points to
    the keypoint nearest its centre (ties: the first person).

    Args:
        keypoints: (P, K, 3); radii: (P,) long cells; image_index: (P,) batch index.
    """
    num_keypoints = keypoints.shape[1]
    person, kind, points = _labelled_points(keypoints, stride)
    source, cells, distance, _ = _square_cells(points, radii[person], map_size)
    flat = _flat(image_index[person[source]], kind[source], cells, num_keypoints, map_size)
    offset = points[source] - cells.float()
    keep = _nearest_per_cell(flat, distance)
    return DiskOffsets(flat[keep], offset[keep])


@dataclass
class TagTargets:
    """Where the associative-embedding tags of a batch are read.

    Attributes:
        index: (N,) flat index into the (B, K, H, W) tag map of each labelled keypoint's own cell.
        person: (N,) its person, 0..P-1 (the batch's persons with a labelled keypoint).
        person_image: (P,) batch index of each person.
    """

    index: torch.Tensor
    person: torch.Tensor
    person_image: torch.Tensor


def tag_targets(
    keypoints: torch.Tensor, image_index: torch.Tensor, stride: float, map_size: Tuple[int, int]
) -> TagTargets:
    """Index sets of the tags of (P, K, 3) persons (image_index (P,)): each labelled keypoint's
    tag at the cell holding it (floor(xy / stride), clamped into the map), grouped by person."""
    num_keypoints = keypoints.shape[1]
    height, width = map_size
    cells, labelled = keypoint_cells(keypoints, stride, map_size)  # (P, K) row * W + col
    person, kind = labelled.nonzero(as_tuple=True)
    plane = image_index[person] * num_keypoints + kind
    index = plane * (height * width) + cells[person, kind]
    persons, group = torch.unique(person, return_inverse=True)
    return TagTargets(index, group, image_index[persons])
