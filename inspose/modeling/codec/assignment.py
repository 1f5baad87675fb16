"""Location -> person assignment on the FPN levels (FCOS rules with centre sampling).

All functions are vectorised over locations and persons: one (L, P) comparison, no loop over persons.
Coordinates are detectron2's continuous image frame (a pixel index i covers [i, i + 1)).
"""
from dataclasses import dataclass
from typing import List, Sequence, Tuple

import torch

__all__ = [
    "LevelLocations",
    "compute_locations",
    "pseudo_boxes_from_keypoints",
    "grow_boxes",
    "assign_locations",
    "points_in_boxes",
]

INF = 1e8


@dataclass
class LevelLocations:
    """The locations of every FPN level, concatenated.

    Attributes:
        points: (L, 2) image coordinates (x, y) of each location, (i * s + s // 2) per axis.
        levels: (L,) FPN level index (0 for P3).
        strides: (L,) stride of each location's level.
        sizes: the (height, width) of each level's feature map.
    """

    points: torch.Tensor
    levels: torch.Tensor
    strides: torch.Tensor
    sizes: List[Tuple[int, int]]

    def level_offsets(self) -> List[int]:
        """Start index of each level in the concatenation."""
        offsets, total = [], 0
        for h, w in self.sizes:
            offsets.append(total)
            total += h * w
        return offsets


def compute_locations(
    sizes: Sequence[Tuple[int, int]], strides: Sequence[int], device: torch.device
) -> LevelLocations:
    """Locations of feature maps of the given (H_i, W_i) and strides, level by level, row-major."""
    points, levels, level_strides = [], [], []
    for index, ((h, w), s) in enumerate(zip(sizes, strides)):
        xs = torch.arange(w, dtype=torch.float32, device=device) * s + s // 2
        ys = torch.arange(h, dtype=torch.float32, device=device) * s + s // 2
        grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
        points.append(torch.stack([grid_x.reshape(-1), grid_y.reshape(-1)], dim=1))
        levels.append(torch.full((h * w,), index, dtype=torch.long, device=device))
        level_strides.append(torch.full((h * w,), float(s), device=device))
    return LevelLocations(
        torch.cat(points), torch.cat(levels), torch.cat(level_strides), [tuple(s) for s in sizes]
    )


def pseudo_boxes_from_keypoints(keypoints: torch.Tensor) -> torch.Tensor:
    """Minimum enclosing rectangles of the labelled keypoints.

    Args:
        keypoints: (P, K, 3) x, y, visibility; labelled means v > 0.
    Returns:
        (P, 4) x0, y0, x1, y1; a person without labelled keypoints gets (0, 0, 0, 0).
    """
    labelled = keypoints[..., 2] > 0
    xy = keypoints[..., :2]
    low = torch.where(labelled[..., None], xy, torch.full_like(xy, INF)).amin(dim=1)
    high = torch.where(labelled[..., None], xy, torch.full_like(xy, -INF)).amax(dim=1)
    boxes = torch.cat([low, high], dim=1)
    return torch.where(labelled.any(dim=1, keepdim=True), boxes, torch.zeros_like(boxes))


def grow_boxes(boxes: torch.Tensor, min_size: float) -> torch.Tensor:
    """Grow (P, 4) xyxy boxes smaller than ``min_size`` on a side to that size, same centre."""
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2
    half = ((boxes[:, 2:] - boxes[:, :2]).clamp(min=min_size)) / 2
    return torch.cat([centre - half, centre + half], dim=1)


def points_in_boxes(points: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """(L,) bool: point inside any of the (Q, 4) xyxy boxes (False when Q == 0)."""
    if boxes.numel() == 0:
        return torch.zeros(points.shape[0], dtype=torch.bool, device=points.device)
    x, y = points[:, 0:1], points[:, 1:2]
    inside = (x >= boxes[:, 0]) & (x <= boxes[:, 2]) & (y >= boxes[:, 1]) & (y <= boxes[:, 3])
    return inside.any(dim=1)


def _level_ranges(sizes_of_interest: Sequence[float], num_levels: int, device) -> torch.Tensor:
    bounds = [0.0] + [float(s) for s in sizes_of_interest] + [INF]
    ranges = torch.tensor([[bounds[i], bounds[i + 1]] for i in range(num_levels)], device=device)
    return ranges


def _candidates(
    locs: LevelLocations,
    boxes: torch.Tensor,
    sizes_of_interest: Sequence[float],
    radius: float,
) -> torch.Tensor:
    """(L, P) bool: location in the person's centre region (clipped to its box) on its level."""
    x, y = locs.points[:, 0:1], locs.points[:, 1:2]
    x0, y0, x1, y1 = boxes.unbind(dim=1)
    ltrb = torch.stack([x - x0, y - y0, x1 - x, y1 - y], dim=2)  # (L, P, 4)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    r = radius * locs.strides[:, None]
    cx0, cy0 = torch.maximum(cx - r, x0), torch.maximum(cy - r, y0)
    cx1, cy1 = torch.minimum(cx + r, x1), torch.minimum(cy + r, y1)
    in_centre = (x > cx0) & (x < cx1) & (y > cy0) & (y < cy1)
    reach = ltrb.amax(dim=2)
    ranges = _level_ranges(sizes_of_interest, len(locs.sizes), boxes.device)[locs.levels]
    in_level = (reach >= ranges[:, 0:1]) & (reach <= ranges[:, 1:2])
    return in_centre & in_level


def _fallback_locations(
    locs: LevelLocations, boxes: torch.Tensor, sizes_of_interest: Sequence[float]
) -> torch.Tensor:
    """(P,) index of the location nearest each box centre on the level its size belongs to."""
    half_extent = ((boxes[:, 2:] - boxes[:, :2]) / 2).amax(dim=1)
    bounds = torch.tensor([float(s) for s in sizes_of_interest], device=boxes.device)
    level = torch.bucketize(half_extent, bounds)  # 0 .. num_levels - 1
    heights = torch.tensor([h for h, _ in locs.sizes], device=boxes.device)[level]
    widths = torch.tensor([w for _, w in locs.sizes], device=boxes.device)[level]
    strides = torch.tensor(
        [float(locs.strides[o]) for o in locs.level_offsets()], device=boxes.device
    )[level]
    offsets = torch.tensor(locs.level_offsets(), device=boxes.device)[level]
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2
    col = (centre[:, 0] / strides).floor().long().clamp(min=0).minimum(widths - 1)
    row = (centre[:, 1] / strides).floor().long().clamp(min=0).minimum(heights - 1)
    return offsets + row * widths + col


def assign_locations(
    locs: LevelLocations,
    boxes: torch.Tensor,
    sizes_of_interest: Sequence[float],
    radius: float,
) -> torch.Tensor:
    """Assign every location to at most one person.

    A location is a candidate for a person when it lies in the person's centre region
    (centre +- radius * stride, clipped to the box) and max(l, t, r, b) to the box is in its level's
    size range; ties go to the smallest box. A person left without any location gets the free
    location nearest its centre on its level, so every person is trained.

    Args:
        locs: the L locations.
        boxes: (P, 4) xyxy person boxes (pseudo-boxes or annotated boxes).
    Returns:
        (L,) long: the person index of each location, -1 for negatives.
    """
    num_locations, num_persons = locs.points.shape[0], boxes.shape[0]
    owner = torch.full((num_locations,), -1, dtype=torch.long, device=locs.points.device)
    if num_persons == 0:
        return owner
    candidate = _candidates(locs, boxes, sizes_of_interest, radius)
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    cost = torch.where(candidate, areas[None, :].expand_as(candidate), torch.full_like(candidate, INF, dtype=areas.dtype))
    best_cost, best_person = cost.min(dim=1)
    owner = torch.where(best_cost < INF, best_person, owner)
    return _assign_unserved(locs, boxes, owner, areas, sizes_of_interest)


def _assign_unserved(locs, boxes, owner, areas, sizes_of_interest) -> torch.Tensor:
    """Give each person without a location its nearest free location (smallest person first)."""
    num_persons = boxes.shape[0]
    served = torch.zeros(num_persons, dtype=torch.bool, device=owner.device)
    served[owner[owner >= 0]] = True
    unserved = (~served).nonzero().squeeze(1)
    if unserved.numel() == 0:
        return owner
    target = _fallback_locations(locs, boxes[unserved], sizes_of_interest)
    free = owner[target] < 0
    unserved, target = unserved[free], target[free]
    # When several persons want one location, the smallest wins (deterministic on any device).
    order = torch.argsort(areas[unserved], stable=True)
    rank = torch.empty_like(order)
    rank[order] = torch.arange(order.numel(), device=order.device)
    best = torch.full((locs.points.shape[0],), order.numel(), dtype=torch.long, device=owner.device)
    best.scatter_reduce_(0, target, rank, reduce="amin")
    winner = best[target] == rank
    owner = owner.clone()
    owner[target[winner]] = unserved[winner]
    return owner
