"""Candidate locations by classification score, the top k of each FPN level (the authors' release).

The release takes the top ``nms_pre`` (1000) locations of every level, then those over the score
threshold; ``MODEL.INSPOSE.PRE_NMS_TOPK_PER_LEVEL`` turns it on in place of the global top
PRE_NMS_TOPK_TEST. Branch-free (a top-k per level, one sort, one mask), as the global selection,
so it exports (ONNX and torch.export, dynamic sizes included).
"""
from typing import List, Tuple

import torch

__all__ = ["level_topk"]


def level_topk(
    scores: torch.Tensor, level_sizes: List[Tuple[int, int]], k: int, score_thresh: float
) -> torch.Tensor:
    """(n,) flat location indices: each level's top ``k`` scores, those > ``score_thresh``, all
    levels together in descending score order (the order of equal scores is unspecified, as in
    the global top-k).

    Args:
        scores: (L,) scores of the concatenated locations, levels in order, each row-major
            (``flatten_levels``); level_sizes: (H_i, W_i) per level, sum H_i * W_i = L.
    """
    top_indices, start = [], 0
    for height, width in level_sizes:
        count = height * width
        top_indices.append(scores[start : start + count].topk(min(k, count)).indices + start)
        start += count
    indices = torch.cat(top_indices)
    values, order = scores[indices].sort(descending=True)
    return indices[order][values > score_thresh]
