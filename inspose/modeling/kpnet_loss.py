"""The KP-Net loss (eq. 4) in chunks of instances, each under activation checkpointing.

The keypoint maps of the trained KP-Nets are the largest activations of a training step: M trained
instances (up to MAX_KPNET_POSITIVES_PER_IMAGE per image) x (hidden layers + K maps) x H x W, about
550 MB at 64 positives per image, batch 2, 800 x 1333 and stride 8. Here the instances are split
into chunks of ``chunk_size``; each chunk's loss runs under ``torch.utils.checkpoint`` (not
re-entrant), which keeps only the chunk's inputs, drops its activations after the forward pass and
recomputes them, one chunk at a time, in the backward pass. So the loss's own memory is one
chunk's activations, whatever the positive budget, for the price of running the KP-Nets twice
(cheap next to the backbone). Losses and gradients equal the unchunked computation up to the order
of float summation, with either normaliser (KPNET_LOSS_NORMALIZER: both are sums over instances).
On request the pass also returns each map's (detached) argmax cell, which the varifocal targets
read (``quality_targets.py``), so they cost no extra KP-Net pass.
"""
from typing import Tuple, Union

import torch
from torch.utils.checkpoint import checkpoint

from .kpnet import KPNetLayout, kpnet_forward
from .losses import kpnet_cross_entropy_sum

__all__ = ["kpnet_loss_sum"]


def _loss_of_chunk(features, image_index, params, rel_x, rel_y, cells, labelled, layout, normalizer, peaks):
    """The chunk's summed loss, and with ``peaks`` its maps' (n, K) argmax cells (no gradient)."""
    logits = kpnet_forward(features, image_index, params, layout, rel_x, rel_y)
    total, _ = kpnet_cross_entropy_sum(logits, cells, labelled, normalizer)
    if peaks:
        return total, logits.detach().argmax(dim=2)
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
    normalizer: str = "instance",
    with_peaks: bool = False,
) -> Union[Tuple[torch.Tensor, torch.Tensor], Tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """The M trained KP-Nets' summed cross-entropy and the count that normalises it.

    Args:
        features: (B, C_kp, H, W) keypoint features.
        image_index: (M,) batch index; params: (M, C_f); rel_x: (M, W); rel_y: (M, H).
        cells: (M, K) target cells; labelled: (M, K) bool.
        chunk_size: instances per checkpointed chunk; <= 0 runs all M at once without
            checkpointing (the reference computation).
        normalizer: "instance": each instance's mean over its labelled keypoints, summed, and the
            number of instances with a labelled keypoint; "keypoint": the sum over labelled
            (instance, keypoint) pairs and their number (``losses.kpnet_cross_entropy_sum``).
        with_peaks: also return the (M, K) argmax cell of every map (detached).
    Returns:
        the summed loss and the count (scalar tensors), then the (M, K) cells with ``with_peaks``.
    """
    count = labelled.sum() if normalizer == "keypoint" else labelled.any(dim=1).sum()
    args = (layout, normalizer, with_peaks)
    if chunk_size <= 0:
        out = _loss_of_chunk(features, image_index, params, rel_x, rel_y, cells, labelled, *args)
        return (out[0], count, out[1]) if with_peaks else (out, count)
    # 0 x params keeps the controller in the graph when there are no instances (DDP needs every
    # parameter to get a gradient), as the unchunked computation does
    total = 0.0 * params.sum()
    peaks = [cells.new_zeros(0, layout.num_keypoints)]
    for start in range(0, params.shape[0], chunk_size):  # chunks of instances, each vectorised
        part = slice(start, start + chunk_size)
        out = checkpoint(
            _loss_of_chunk,
            features,
            image_index[part],
            params[part],
            rel_x[part],
            rel_y[part],
            cells[part],
            labelled[part],
            *args,
            use_reentrant=False,
        )
        if with_peaks:
            out, chunk_peaks = out
            peaks.append(chunk_peaks)
        total = total + out
    return (total, count, torch.cat(peaks)) if with_peaks else (total, count)
