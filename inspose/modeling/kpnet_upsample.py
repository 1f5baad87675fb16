"""KP-Net logits upsampled before the argmax (KPNET_UPSAMPLE_FACTOR > 1, the authors' release).

The release decodes a KP-Net's stride-8 map by upsampling its logits bicubic x2 (align_corners
False) to stride 4 and taking the argmax there. With a factor f the coarse (H, W) map at
OUTPUT_STRIDE s becomes a fine (f H, f W) map at the decode stride s / f; a keypoint lies at
(fine col + dx, fine row + dy) * s / f with offsets at the fine size, at fine cell centres without.

``kpnet_peaks_upsampled`` keeps the memory bound of ``kpnet_decode.kpnet_peaks``: it runs the
KP-Nets on a band of coarse rows plus a halo of ``HALO_ROWS`` rows on each side (clamped at the
map's edges), upsamples that, keeps the fine rows of the band's interior and reduces them to a
running argmax. A fine row depends on the 4 coarse rows around its source position, at most 2 rows
beyond the band, so the result equals upsampling the whole map at once (``upsample_logits``, which
the dense, exportable path uses).

KPNET_UPSAMPLE_ARGMAX "coarse_cell" keeps the coarse argmax and only refines it: the argmax of the
upsampled logits among the f x f fine cells of each coarse argmax cell (``refine_in_coarse_cells``:
the KP-Net at a 5 x 5 patch of coarse cells, clamped at the edges as F.interpolate clamps, then
upsampled). The release's "global" argmax over the whole upsampled map is not peak-preserving: a
sharp, isolated coarse peak is averaged down with its neighbours (at f = 2 no fine cell samples a
coarse centre), so a broad second bump a little lower can win, far from the coarse argmax that
holds nearly all the softmax mass (measured on the overfitted release model: 7 of 64 keypoints).

The keypoint confidence stays on the coarse map: the log-sum-exp returned is the coarse map's, and
``coarse_cells`` gives the coarse cell holding each fine argmax, where ``kpnet_peak_mass`` reads
the 3 x 3 softmax mass. The KP-Net loss trains the coarse softmax; the interpolated map is not a
distribution the model was trained to (bicubic can overshoot), so its mass would not be calibrated
and would change with f.
"""
from typing import Tuple

import torch
from torch.nn import functional as F

from .kpnet import KPNetLayout, kpnet_forward
from .kpnet_decode import _deeper_layers, _first_layer_terms, kpnet_logits_at, kpnet_peak_mass
from .kpnet_decode import kpnet_peaks, kpnet_peaks_dense
from .level_maps import rows_and_cols

__all__ = [
    "HALO_ROWS",
    "UPSAMPLE_MODES",
    "upsample_logits",
    "upsampled_band_rows",
    "kpnet_peaks_upsampled",
    "kpnet_peaks_dense_upsampled",
    "UPSAMPLE_ARGMAX",
    "refine_in_coarse_cells",
    "fine_peak_cells",
    "coarse_cells",
    "coarse_peak_prob",
    "upsampled_kpnet_peaks_and_confidence",
    "decode_geometry",
    "check_offset_size",
]

HALO_ROWS = 2  # bicubic reads coarse rows floor(src) - 1 .. floor(src) + 2
UPSAMPLE_MODES = ("bicubic", "bilinear")
UPSAMPLE_ARGMAX = ("global", "coarse_cell")  # KPNET_UPSAMPLE_ARGMAX
PATCH_RADIUS = 2  # the f x f fine cells of coarse cell r read coarse rows r - 2 .. r + 2 (bicubic)


def upsample_logits(logits: torch.Tensor, map_size: Tuple[int, int], factor: int, mode: str) -> torch.Tensor:
    """(n, K, H * W) coarse logits -> (n, K, f H * f W) with ``F.interpolate`` (align_corners False,
    the same ``scale_factor`` for whole maps and bands, so both compute the same source positions)."""
    num, kinds = logits.shape[:2]
    maps = logits.reshape(num, kinds, map_size[0], map_size[1])
    fine = F.interpolate(maps, scale_factor=float(factor), mode=mode, align_corners=False)
    return fine.reshape(num, kinds, fine.shape[2] * fine.shape[3])


def kpnet_peaks_dense_upsampled(features, params, layout: KPNetLayout, rel_x, rel_y, factor: int, mode: str):
    """``kpnet_peaks_upsampled`` from whole maps at once (no loop: the exportable form, as
    ``kpnet_decode.kpnet_peaks_dense``): cells (n, K) and peak on the (f H, f W) maps, log_norm
    (n, K) over the (H, W) maps."""
    image_index = torch.zeros(params.shape[0], dtype=torch.long, device=params.device)
    logits = kpnet_forward(features, image_index, params, layout, rel_x, rel_y)
    peak, cells = upsample_logits(logits, features.shape[-2:], factor, mode).max(dim=2)
    coarse_peak = logits.amax(dim=2)
    # log-sum-exp written out: torch.logsumexp guards on the (data-dependent) number of instances
    log_norm = coarse_peak + torch.log(torch.exp(logits - coarse_peak[..., None]).sum(dim=2))
    return cells, peak, log_norm


def upsampled_band_rows(num_instances: int, layout: KPNetLayout, width: int, max_elements: int, factor: int) -> int:
    """Coarse rows per band such that a band with its two halos, its coarse activations and its
    upsampled logits, holds at most ``max_elements`` values (at least 1 row)."""
    coarse = layout.channels * (layout.depth - 1) + layout.num_keypoints
    per_row = max(1, num_instances) * (coarse + layout.num_keypoints * factor * factor) * width
    return max(1, max_elements // per_row - 2 * HALO_ROWS)


def _band_logits(features, w_feat, coord_x, coord_y, deeper, start: int, stop: int) -> torch.Tensor:
    """(n, K, stop - start, W) coarse logits of map rows [start, stop)."""
    in_ch, width = features.shape[1], features.shape[3]
    num, out_ch = coord_x.shape[:2]
    band = features[0, :, start:stop].reshape(in_ch, -1)
    hidden = (w_feat @ band).view(num, out_ch, stop - start, width)
    hidden += coord_x[:, :, None, :]
    hidden += coord_y[:, :, start:stop, None]
    logits = hidden.view(num, out_ch, -1)  # depth 1: layer 1 gives the logits
    if deeper:
        logits = _deeper_layers(logits.relu_(), deeper)
    return logits.view(num, logits.shape[1], stop - start, width)


def _running_argmax(peak, cells, logits, offset: int):
    """Running max (n, K) and flat argmax (n, K) (+ ``offset``) updated with (n, K, T) ``logits``."""
    band_peak, band_cell = logits.max(dim=2)
    cells = torch.where(band_peak > peak, band_cell + offset, cells)
    return torch.maximum(peak, band_peak), cells


def _running_logsumexp(peak, total, logits):
    """Running max and sum of exp(logit - max), each (n, K), updated with (n, K, T) ``logits``,
    which it overwrites (no second band-sized tensor)."""
    new_peak = torch.maximum(peak, logits.amax(dim=2))
    total = total * torch.exp(peak - new_peak) + logits.sub_(new_peak[..., None]).exp_().sum(dim=2)
    return new_peak, total


@torch.no_grad()
def kpnet_peaks_upsampled(
    features: torch.Tensor,
    params: torch.Tensor,
    layout: KPNetLayout,
    rel_x: torch.Tensor,
    rel_y: torch.Tensor,
    max_elements: int,
    factor: int,
    mode: str = "bicubic",
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Argmax of the upsampled keypoint maps of n KP-Nets on one image, band by band.

    Args:
        features: (1, C_kp, H, W); params: (n, C_f); rel_x: (n, W); rel_y: (n, H).
        max_elements: bound on one band's activations (``upsampled_band_rows``).
        factor: f >= 1; mode: "bicubic" or "bilinear".
    Returns:
        cells (n, K) long flat argmax on the (f H, f W) map, peak (n, K) its upsampled logit,
        log_norm (n, K) log-sum-exp over the coarse (H, W) map (the confidence's normaliser).
    """
    _, _, height, width = features.shape
    num, kinds = params.shape[0], layout.num_keypoints
    if num == 0:
        empty = features.new_zeros(0, kinds)
        return empty.long(), empty, empty
    w_feat, coord_x, coord_y, deeper = _first_layer_terms(features, params, layout, rel_x, rel_y)
    fine_peak = features.new_full((num, kinds), -float("inf"))
    fine_cells = torch.zeros(num, kinds, dtype=torch.long, device=features.device)
    coarse_peak, coarse_total = fine_peak.clone(), features.new_zeros(num, kinds)
    rows = upsampled_band_rows(num, layout, width, max_elements, factor)
    for top in range(0, height, rows):
        bottom = min(top + rows, height)
        lo, hi = max(top - HALO_ROWS, 0), min(bottom + HALO_ROWS, height)
        coarse = _band_logits(features, w_feat, coord_x, coord_y, deeper, lo, hi)
        fine = F.interpolate(coarse, scale_factor=float(factor), mode=mode, align_corners=False)
        kept = fine[:, :, (top - lo) * factor : (bottom - lo) * factor].reshape(num, kinds, -1)
        fine_peak, fine_cells = _running_argmax(fine_peak, fine_cells, kept, top * factor * width * factor)
        inner = coarse[:, :, top - lo : bottom - lo].reshape(num, kinds, -1)  # after the upsampling
        coarse_peak, coarse_total = _running_logsumexp(coarse_peak, coarse_total, inner)
    return fine_cells, fine_peak, coarse_peak + torch.log(coarse_total)


def coarse_cells(fine_cells: torch.Tensor, coarse_width: int, factor: int) -> torch.Tensor:
    """(n, K) flat cells of the (f H, f W) map -> the flat cells of the (H, W) map holding them."""
    rows, cols = rows_and_cols(fine_cells, coarse_width * factor)
    return torch.div(rows, factor, rounding_mode="floor") * coarse_width + torch.div(
        cols, factor, rounding_mode="floor"
    )


@torch.no_grad()
def coarse_peak_prob(features, params, layout, rel_x, rel_y, cells: torch.Tensor, log_norm: torch.Tensor):
    """(n, K) softmax probability of the coarse cells ``cells`` (n, K) (KEYPOINT_SCORE "peak_prob"
    with upsampling: the coarse cell holding the fine argmax), with the coarse ``log_norm`` (n, K)."""
    rows, cols = rows_and_cols(cells, features.shape[-1])
    logits = kpnet_logits_at(features, params, layout, rel_x, rel_y, rows[..., None], cols[..., None])
    return torch.exp(logits[..., 0] - log_norm).clamp(max=1.0)


@torch.no_grad()
def refine_in_coarse_cells(features, params, layout: KPNetLayout, rel_x, rel_y, cells, factor: int, mode: str):
    """(n, K) coarse argmax cells -> (n, K) flat cells of the (f H, f W) map: the argmax of the
    upsampled logits among the f x f fine cells of each coarse cell.

    Args:
        features: (1, C_kp, H, W); params: (n, C_f); rel_x: (n, W); rel_y: (n, H).
    """
    height, width = features.shape[-2:]
    num, kinds = cells.shape
    rows, cols = rows_and_cols(cells, width)
    steps = torch.arange(-PATCH_RADIUS, PATCH_RADIUS + 1, device=cells.device)
    side = steps.numel()
    patch_rows = (rows[..., None] + steps).clamp(0, height - 1)[..., :, None].expand(num, kinds, side, side)
    patch_cols = (cols[..., None] + steps).clamp(0, width - 1)[..., None, :].expand(num, kinds, side, side)
    logits = kpnet_logits_at(
        features, params, layout, rel_x, rel_y,
        patch_rows.reshape(num, kinds, -1), patch_cols.reshape(num, kinds, -1),
    )  # fmt: skip
    fine = F.interpolate(logits.view(num * kinds, 1, side, side), scale_factor=float(factor), mode=mode,
                         align_corners=False)  # fmt: skip
    centre = PATCH_RADIUS * factor
    block = fine[:, 0, centre : centre + factor, centre : centre + factor].reshape(num, kinds, -1)
    best = block.argmax(dim=2)
    fine_rows = rows * factor + torch.div(best, factor, rounding_mode="floor")
    return fine_rows * (width * factor) + cols * factor + best % factor


def fine_peak_cells(features, params, layout: KPNetLayout, rel_x, rel_y, factor: int, mode: str,
                    argmax: str = "global", max_elements=None):  # fmt: skip
    """(fine cells (n, K) on the (f H, f W) map, coarse log-sum-exp (n, K)) of n KP-Nets, banded
    (``max_elements``) or on whole maps (None: exportable), by KPNET_UPSAMPLE_ARGMAX ``argmax``."""
    if argmax == "coarse_cell":
        if max_elements is None:
            coarse, _, log_norm = kpnet_peaks_dense(features, params, layout, rel_x, rel_y)
        else:
            coarse, _, log_norm = kpnet_peaks(features, params, layout, rel_x, rel_y, max_elements)
        return refine_in_coarse_cells(features, params, layout, rel_x, rel_y, coarse, factor, mode), log_norm
    if max_elements is None:
        cells, _, log_norm = kpnet_peaks_dense_upsampled(features, params, layout, rel_x, rel_y, factor, mode)
    else:
        cells, _, log_norm = kpnet_peaks_upsampled(features, params, layout, rel_x, rel_y, max_elements, factor, mode)
    return cells, log_norm


def upsampled_kpnet_peaks_and_confidence(
    features, params, layout: KPNetLayout, rel_x, rel_y, factor: int, mode: str, keypoint_score: str,
    max_elements=None, argmax: str = "global",
):
    """Fine argmax cells (n, K) and keypoint confidences (n, K) (None for KEYPOINT_SCORE
    "instance") of n KP-Nets, banded (``max_elements``) or on whole maps (None: the exportable
    ``kpnet_peaks_dense``), by ``argmax`` (KPNET_UPSAMPLE_ARGMAX). "peak_mass" / "peak_prob" are
    read on the coarse maps at the coarse cell holding each fine argmax (module docstring).

    Args:
        features: (1, C_kp, H, W); params: (n, C_f); rel_x: (n, W); rel_y: (n, H).
    """
    cells, log_norm = fine_peak_cells(features, params, layout, rel_x, rel_y, factor, mode, argmax, max_elements)
    if keypoint_score == "instance":
        return cells, None
    coarse = coarse_cells(cells, features.shape[-1], factor)
    if keypoint_score == "peak_prob":
        return cells, coarse_peak_prob(features, params, layout, rel_x, rel_y, coarse, log_norm)
    return cells, kpnet_peak_mass(features, params, layout, rel_x, rel_y, coarse, log_norm)


def decode_geometry(map_size: Tuple[int, int], output_stride: float, factor: int):
    """((H_d, W_d), s_d): the size and stride of the maps the argmax is taken on, the KP-Nets'
    (H, W) at OUTPUT_STRIDE upsampled by ``factor`` (KPNET_UPSAMPLE_FACTOR)."""
    if factor == 1:
        return map_size, output_stride
    return (map_size[0] * factor, map_size[1] * factor), output_stride / factor


def check_offset_size(offset_map, map_size: Tuple[int, int]) -> None:
    """Offsets are read at the fine argmax cells: an offset map (B, 2K, H_o, W_o) must be of the
    fine ``map_size``; raise ValueError otherwise (None: cell centres, always fine)."""
    if offset_map is not None and tuple(offset_map.shape[-2:]) != tuple(map_size):
        raise ValueError(
            f"MODEL.INSPOSE.KPNET_UPSAMPLE_FACTOR: the offset map is {tuple(offset_map.shape[-2:])} but "
            f"keypoints are decoded on the upsampled {tuple(map_size)} maps; use offsets at "
            "OUTPUT_STRIDE / KPNET_UPSAMPLE_FACTOR (HEATMAP_OFFSETS_ON with that HEATMAP_STRIDE) or "
            "DISK_OFFSET_ON False"
        )
