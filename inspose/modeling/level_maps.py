"""Reading per-level head outputs as if they were one concatenated list of locations."""
from typing import List, Tuple

import torch

__all__ = ["flatten_levels", "gather_locations", "rows_and_cols"]


def rows_and_cols(flat: torch.Tensor, width) -> Tuple[torch.Tensor, torch.Tensor]:
    """Row and column of flat row-major indices into maps ``width`` wide (any shape).

    Written as a floor division and a product: the ONNX exporter cannot translate a remainder by a
    symbolic width (a dynamic-size export).
    """
    rows = torch.div(flat, width, rounding_mode="floor")
    return rows, flat - rows * width


def flatten_levels(maps: List[torch.Tensor]) -> torch.Tensor:
    """[(B, C, H_i, W_i)] -> (B, L, C), L = sum H_i * W_i, levels in order, each row-major."""
    return torch.cat([m.flatten(2).transpose(1, 2) for m in maps], dim=1)


def gather_locations(
    maps: List[torch.Tensor], image_index: torch.Tensor, location: torch.Tensor
) -> torch.Tensor:
    """Values of the per-level maps at M (image, location) pairs without flattening the maps.

    Args:
        maps: [(B, C, H_i, W_i)] per level.
        image_index: (M,) batch index; location: (M,) index into the concatenated locations.
    Returns:
        (M, C).
    """
    out = maps[0].new_zeros(location.shape[0], maps[0].shape[1])
    start = 0
    for level_map in maps:
        height, width = level_map.shape[-2:]
        inside = (location >= start) & (location < start + height * width)
        rows, cols = rows_and_cols(location[inside] - start, width)
        out[inside] = level_map[image_index[inside], :, rows, cols]
        start += height * width
    return out
