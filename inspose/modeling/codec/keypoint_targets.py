"""Keypoint training targets on a map of stride s: one-hot cells, disk offsets, Gaussian heatmaps.

Coordinates are detectron2's continuous image frame; map cell (i, j) covers
[j * s, (j + 1) * s) x [i * s, (i + 1) * s). Offsets are in cells: a keypoint at x lies at
(j + dx) * s, so the cell holding it has dx in [0, 1).
Targets are built sparsely from windows around each keypoint, never as (P, H, W) dense tensors.
"""
import math
from dataclasses import dataclass
from typing import Tuple

import torch

__all__ = [
    "keypoint_cells",
    "cell_centres",
    "DiskOffsets",
    "disk_offset_targets",
    "gaussian_heatmaps",
]


def keypoint_cells(
    keypoints: torch.Tensor, stride: float, map_size: Tuple[int, int]
) -> Tuple[torch.Tensor, torch.Tensor]:
    """One-hot target cell of every keypoint.

    Args:
        keypoints: (P, K, 3) x, y, v in image coordinates.
        map_size: (H, W) of the keypoint map.
    Returns:
        cells: (P, K) long flat index row * W + col, clamped into the map.
        labelled: (P, K) bool, v > 0.
    """
    height, width = map_size
    col = (keypoints[..., 0] / stride).floor().long().clamp(0, width - 1)
    row = (keypoints[..., 1] / stride).floor().long().clamp(0, height - 1)
    return row * width + col, keypoints[..., 2] > 0


def cell_centres(map_size: Tuple[int, int], stride: float, device) -> torch.Tensor:
    """(H * W, 2) image coordinates (x, y) of the centres of a map's cells, row-major."""
    height, width = map_size
    xs = (torch.arange(width, device=device, dtype=torch.float32) + 0.5) * stride
    ys = (torch.arange(height, device=device, dtype=torch.float32) + 0.5) * stride
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([grid_x.reshape(-1), grid_y.reshape(-1)], dim=1)


def _window(radius: float, device) -> torch.Tensor:
    """(M, 2) integer cell displacements (dx, dy) covering a disk of ``radius`` around any point."""
    reach = int(math.ceil(radius)) + 1
    steps = torch.arange(-reach, reach + 1, device=device)
    dy, dx = torch.meshgrid(steps, steps, indexing="ij")
    return torch.stack([dx.reshape(-1), dy.reshape(-1)], dim=1)


def _cells_near(
    points: torch.Tensor, radius: float, map_size: Tuple[int, int]
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Cells whose centre lies within ``radius`` cells of each point.

    Args:
        points: (N, 2) positions in cell units.
    Returns:
        point_index (E,), cell (E, 2) integer (col, row), distance (E,) in cells.
    """
    height, width = map_size
    window = _window(radius, points.device)
    base = points.floor().long()
    cells = base[:, None, :] + window[None, :, :]  # (N, M, 2)
    distance = ((cells.float() + 0.5) - points[:, None, :]).norm(dim=2)
    inside = (cells[..., 0] >= 0) & (cells[..., 0] < width) & (cells[..., 1] >= 0)
    keep = inside & (cells[..., 1] < height) & (distance <= radius)
    point_index = torch.arange(points.shape[0], device=points.device)[:, None].expand_as(keep)
    return point_index[keep], cells[keep], distance[keep]


@dataclass
class DiskOffsets:
    """Sparse disk-offset targets of a batch.

    Attributes:
        index: (E,) flat index into a (B, K, H, W) map.
        offset: (E, 2) target (dx, dy) in cells.
    """

    index: torch.Tensor
    offset: torch.Tensor

    def dense(self, batch: int, num_keypoints: int, map_size: Tuple[int, int]) -> torch.Tensor:
        """(B, 2K, H, W) map with (dx_k, dy_k) in channels (2k, 2k + 1); zero outside the disks."""
        height, width = map_size
        out = torch.zeros(batch * num_keypoints * height * width, 2, device=self.offset.device)
        out[self.index] = self.offset
        out = out.view(batch, num_keypoints, height, width, 2).permute(0, 1, 4, 2, 3)
        return out.reshape(batch, 2 * num_keypoints, height, width)


def disk_offset_targets(
    keypoints: torch.Tensor,
    image_index: torch.Tensor,
    stride: float,
    map_size: Tuple[int, int],
    radius: float,
) -> DiskOffsets:
    """Offsets from every cell in a disk of ``radius`` cells to the keypoint of that disk.

    Where disks of the same keypoint type overlap, a cell points to the nearest keypoint (ties: the
    first person), so persons close together share the offset map as well as it allows.

    Args:
        keypoints: (P, K, 3) persons of the whole batch, image coordinates.
        image_index: (P,) batch index of each person.
    """
    num_persons, num_keypoints = keypoints.shape[:2]
    height, width = map_size
    labelled = keypoints[..., 2] > 0
    person, kind = labelled.nonzero(as_tuple=True)
    points = keypoints[person, kind, :2] / stride  # (N, 2) in cells
    source, cells, distance = _cells_near(points, radius, map_size)
    plane = image_index[person[source]] * num_keypoints + kind[source]
    flat = (plane * height + cells[:, 1]) * width + cells[:, 0]
    offset = points[source] - cells.float()
    keep = _nearest_per_cell(flat, distance)
    return DiskOffsets(flat[keep], offset[keep])


def _nearest_per_cell(flat: torch.Tensor, distance: torch.Tensor) -> torch.Tensor:
    """(E,) bool: the one entry of each distinct ``flat`` cell with the smallest distance."""
    if flat.numel() == 0:
        return torch.zeros(0, dtype=torch.bool, device=flat.device)
    unique, inverse = torch.unique(flat, return_inverse=True)
    best = torch.full((unique.numel(),), math.inf, device=flat.device)
    best.scatter_reduce_(0, inverse, distance, reduce="amin")
    nearest = distance == best[inverse]
    entry = torch.arange(flat.numel(), device=flat.device)
    first = torch.full((unique.numel(),), flat.numel(), dtype=torch.long, device=flat.device)
    first.scatter_reduce_(0, inverse[nearest], entry[nearest], reduce="amin")
    return nearest & (first[inverse] == entry)


def gaussian_heatmaps(
    keypoints: torch.Tensor,
    image_index: torch.Tensor,
    batch: int,
    stride: float,
    map_size: Tuple[int, int],
    sigma: float,
) -> torch.Tensor:
    """Multi-person keypoint heatmaps (CornerNet style): the max of per-keypoint Gaussians.

    The cell holding a keypoint is exactly 1 (a positive of the focal loss); other cells hold
    exp(-d^2 / (2 sigma^2)) with d the distance (in cells) from the cell centre to the keypoint.

    Args:
        keypoints: (P, K, 3) persons of the batch; image_index: (P,) their batch index.
    Returns:
        (B, K, H, W) float.
    """
    num_keypoints = keypoints.shape[1]
    height, width = map_size
    heat = torch.zeros(batch * num_keypoints * height * width, device=keypoints.device)
    person, kind = (keypoints[..., 2] > 0).nonzero(as_tuple=True)
    points = keypoints[person, kind, :2] / stride
    source, cells, distance = _cells_near(points, 3.0 * sigma + 1.0, map_size)
    value = torch.exp(-(distance**2) / (2 * sigma**2))
    is_peak = (cells == points[source].floor().long()).all(dim=1)
    value = torch.where(is_peak, torch.ones_like(value), value)
    plane = image_index[person[source]] * num_keypoints + kind[source]
    flat = (plane * height + cells[:, 1]) * width + cells[:, 0]
    heat.scatter_reduce_(0, flat, value, reduce="amax")
    return heat.view(batch, num_keypoints, height, width)
