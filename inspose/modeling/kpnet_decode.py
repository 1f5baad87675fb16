"""Inference-time KP-Nets fused with their reduction: argmax and softmax normaliser, tile by tile.

At inference only the argmax of each keypoint map and a confidence are needed, never the
(N, K, H, W) maps themselves, and on the CPU writing and re-reading those maps is most of the cost
(the work is memory-bound). ``kpnet_peaks`` therefore runs all layers on a band of map rows at a
time (so the band's activations stay in cache) and keeps a running maximum, its position, and an
online log-sum-exp per (instance, keypoint). Memory is bounded by the band, at any output stride.
``kpnet_logits_at`` evaluates the KP-Nets at a few chosen cells, and ``kpnet_peak_mass`` uses it for
the softmax mass in the 3 x 3 cells around each peak (the default keypoint confidence).
"""
from typing import Tuple

import torch
from torch.nn import functional as F

from .kpnet import KPNetLayout, coordinate_terms, kpnet_forward
from .level_maps import rows_and_cols

__all__ = ["kpnet_peaks", "kpnet_peaks_dense", "kpnet_logits_at", "kpnet_peak_mass", "band_rows"]


def band_rows(num_instances: int, layout: KPNetLayout, width: int, max_elements: int) -> int:
    """Rows per band so one band's activations hold at most ``max_elements`` values."""
    per_row = max(1, num_instances) * (layout.channels * (layout.depth - 1) + layout.num_keypoints) * width
    return max(1, max_elements // per_row)


def _first_layer_terms(features, params, layout, rel_x, rel_y):
    """Per-instance pieces of layer 1: feature weights (n*C1, C_kp) and coordinate terms."""
    in_ch = features.shape[1]
    layers = layout.split(params)
    weight, bias = layers[0]
    coord_x, coord_y = coordinate_terms(weight, bias, in_ch, rel_x, rel_y)
    return weight[:, :, :in_ch].reshape(-1, in_ch), coord_x, coord_y, layers[1:]


def _deeper_layers(hidden: torch.Tensor, layers) -> torch.Tensor:
    """Layers 2..D on (n, C1, T) ReLU'd activations -> (n, K, T) logits."""
    for index, (weight, bias) in enumerate(layers):
        hidden = torch.baddbmm(bias[:, :, None], weight, hidden)
        if index < len(layers) - 1:
            hidden.relu_()
    return hidden


@torch.no_grad()
def kpnet_peaks(
    features: torch.Tensor,
    params: torch.Tensor,
    layout: KPNetLayout,
    rel_x: torch.Tensor,
    rel_y: torch.Tensor,
    max_elements: int,
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Argmax, peak logit and log-sum-exp of every keypoint map of n KP-Nets on one image.

    Args:
        features: (1, C_kp, H, W) keypoint features.
        params: (n, C_f); rel_x: (n, W); rel_y: (n, H) (``relative_coordinate_axes``).
        max_elements: bound on one band's activations (instances x channels x band cells).
    Returns:
        cells (n, K) long flat argmax, peak (n, K) its logit, log_norm (n, K) log-sum-exp over cells.
    """
    _, in_ch, height, width = features.shape
    num = params.shape[0]
    if num == 0:
        empty = features.new_zeros(0, layout.num_keypoints)
        return empty.long(), empty, empty
    w_feat, coord_x, coord_y, deeper = _first_layer_terms(features, params, layout, rel_x, rel_y)
    out_ch = coord_x.shape[1]
    peak = features.new_full((num, layout.num_keypoints), -float("inf"))
    cells = torch.zeros(num, layout.num_keypoints, dtype=torch.long, device=features.device)
    total = features.new_zeros(num, layout.num_keypoints)
    rows = band_rows(num, layout, width, max_elements)
    for top in range(0, height, rows):
        band = features[0, :, top : top + rows].reshape(in_ch, -1)
        band_h = band.shape[1] // width
        hidden = (w_feat @ band).view(num, out_ch, band_h, width)
        hidden += coord_x[:, :, None, :]
        hidden += coord_y[:, :, top : top + band_h, None]
        logits = hidden.view(num, out_ch, -1)  # depth 1: layer 1 gives the logits
        if deeper:
            logits = _deeper_layers(logits.relu_(), deeper)
        band_peak, band_cell = logits.max(dim=2)
        new_peak = torch.maximum(peak, band_peak)
        total = total * torch.exp(peak - new_peak) + logits.sub_(new_peak[..., None]).exp_().sum(dim=2)
        improved = band_peak > peak
        cells = torch.where(improved, band_cell + top * width, cells)
        peak = new_peak
    return cells, peak, peak + torch.log(total)


def kpnet_peaks_dense(
    features: torch.Tensor,
    params: torch.Tensor,
    layout: KPNetLayout,
    rel_x: torch.Tensor,
    rel_y: torch.Tensor,
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``kpnet_peaks`` from the whole (n, K, H * W) maps at once: no loop, so it exports (ONNX,
    ``torch.export``) with any number of instances; memory grows with n x K x H x W."""
    image_index = torch.zeros(params.shape[0], dtype=torch.long, device=params.device)
    logits = kpnet_forward(features, image_index, params, layout, rel_x, rel_y)
    peak, cells = logits.max(dim=2)
    # log-sum-exp written out: torch.logsumexp guards on the (data-dependent) number of instances
    log_norm = peak + torch.log(torch.exp(logits - peak[..., None]).sum(dim=2))
    return cells, peak, log_norm


@torch.no_grad()
def kpnet_logits_at(
    features: torch.Tensor,
    params: torch.Tensor,
    layout: KPNetLayout,
    rel_x: torch.Tensor,
    rel_y: torch.Tensor,
    rows: torch.Tensor,
    cols: torch.Tensor,
) -> torch.Tensor:
    """Logit of keypoint k of instance n at M chosen cells per (n, k).

    Args:
        rows, cols: (n, K, M) integer cell coordinates inside the map.
    Returns:
        (n, K, M) logits.
    """
    num, kinds, picks = rows.shape
    in_ch = features.shape[1]
    layers = layout.split(params)
    weight, bias = layers[0]
    positions = features[0][:, rows, cols].permute(1, 0, 2, 3).reshape(num, in_ch, kinds * picks)
    coords = torch.stack(
        [rel_x.gather(1, cols.reshape(num, kinds * picks)), rel_y.gather(1, rows.reshape(num, kinds * picks))],
        dim=1,
    )  # (n, 2, K * M)
    hidden = torch.baddbmm(bias[:, :, None], weight, torch.cat([positions, coords], dim=1))
    if len(layers) > 1:
        hidden = _deeper_layers(F.relu(hidden), layers[1:])
    per_kind = hidden.view(num, kinds, kinds, picks)  # output channel, keypoint of the cell, cell
    index = torch.arange(kinds, device=hidden.device)
    return per_kind[:, index, index, :]


_NEIGHBOURS = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]


@torch.no_grad()
def kpnet_peak_mass(
    features: torch.Tensor,
    params: torch.Tensor,
    layout: KPNetLayout,
    rel_x: torch.Tensor,
    rel_y: torch.Tensor,
    cells: torch.Tensor,
    log_norm: torch.Tensor,
) -> torch.Tensor:
    """Softmax mass of each keypoint map in the 3 x 3 cells around its argmax.

    Args:
        features, params, rel_x, rel_y: as for ``kpnet_peaks``.
        cells: (n, K) argmax cells and log_norm: (n, K) log-sum-exp, from ``kpnet_peaks``.
    Returns:
        (n, K) in [0, 1] (cells outside the map count 0).
    """
    height, width = features.shape[-2:]
    offsets = torch.tensor(_NEIGHBOURS, device=cells.device)
    rows, cols = rows_and_cols(cells, width)
    rows = rows[..., None] + offsets[:, 0]
    cols = cols[..., None] + offsets[:, 1]
    inside = (rows >= 0) & (rows < height) & (cols >= 0) & (cols < width)
    logits = kpnet_logits_at(
        features, params, layout, rel_x, rel_y, rows.clamp(0, height - 1), cols.clamp(0, width - 1)
    )
    mass = (torch.exp(logits - log_norm[..., None]) * inside).sum(dim=2)
    return mass.clamp(max=1.0)
