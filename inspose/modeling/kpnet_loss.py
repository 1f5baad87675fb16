"""The KP-Net loss (eq. 4) in chunks of instances, each under activation checkpointing.

The keypoint maps of the trained KP-Nets are the largest activations of a training step: M trained
instances (up to MAX_KPNET_POSITIVES_PER_IMAGE per image) x (hidden layers + K maps) x H x W, about
550 MB at 64 positives per image, batch 2, 800 x 1333 and stride 8. Here the instances are split
into chunks of ``chunk_size``; each chunk's loss runs under ``torch.utils.checkpoint`` (not
re-entrant), which keeps only the chunk's inputs, drops its activations after the forward pass and
recomputes them, one chunk at a time, in the backward pass. So the loss's own memory is one
chunk's activations, whatever the positive budget, for the price of running the KP-Nets twice
(cheap next to the backbone). Losses and gradients equal the unchunked computation up to the order
of float summation.
"""
from typing import Tuple

import torch
from torch.utils.checkpoint import checkpoint

from .kpnet import KPNetLayout, kpnet_forward
from .losses import kpnet_cross_entropy_sum

__all__ = ["kpnet_loss_sum"]


def _loss_of_chunk(features, image_index, params, rel_x, rel_y, cells, labelled, layout):
    logits = kpnet_forward(features, image_index, params, layout, rel_x, rel_y)
    total, _ = kpnet_cross_entropy_sum(logits, cells, labelled)
    return total


def kpnet_loss_sum(
    features: torch.Tensor,
    image_index: torch.Tensor,
    params: torch.Tensor,
    layout: KPNetLayout,
    rel_x: torch.Tensor,
    rel_y: torch.Tensor,
    cells: torch.Tensor,
    labelled: torch.Tensor,
    chunk_size: int,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Sum over the M trained KP-Nets of their mean cross-entropy, and the count that normalises it.

    Args:
        features: (B, C_kp, H, W) keypoint features.
        image_index: (M,) batch index; params: (M, C_f); rel_x: (M, W); rel_y: (M, H).
        cells: (M, K) target cells; labelled: (M, K) bool.
        chunk_size: instances per checkpointed chunk; <= 0 runs all M at once without
            checkpointing (the reference computation).
    Returns:
        the summed loss and the number of instances with a labelled keypoint (scalar tensors).
    """
    count = labelled.any(dim=1).sum()
    num = params.shape[0]
    if chunk_size <= 0:
        return _loss_of_chunk(features, image_index, params, rel_x, rel_y, cells, labelled, layout), count
    # 0 x params keeps the controller in the graph when there are no instances (DDP needs every
    # parameter to get a gradient), as the unchunked computation does
    total = 0.0 * params.sum()
    for start in range(0, num, chunk_size):  # chunks of instances, each vectorised
        part = slice(start, start + chunk_size)
        total = total + checkpoint(
            _loss_of_chunk,
            features,
            image_index[part],
            params[part],
            rel_x[part],
            rel_y[part],
            cells[part],
            labelled[part],
            layout,
            use_reentrant=False,
        )
    return total, count
