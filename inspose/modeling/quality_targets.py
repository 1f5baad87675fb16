"""Varifocal targets: the localisation quality q of every positive location (CLS_LOSS "varifocal").

With the varifocal classification loss a positive location's target is not 1 but a score q in
[0, 1] of how well its KP-Net localises its person (VarifocalNet's IoU-aware target, with an OKS in
place of the IoU). ``VARIFOCAL_TARGET`` chooses the score, both a mean over the person's labelled
keypoints k of exp(-d_k^2 / (2 (area + eps) (2 sigma_k)^2)):

- ``"release"``, the authors' release: d_k between the argmax cell (col, row) of keypoint map k
  (no offset, no upsampling) and the ground truth's cell (floor(x / s), floor(y / s)), in cells of
  the KP-Net map's stride s, against the area in pixels^2 (so lenient: about OKS with distances
  divided by s); eps 1e-4. The release's map is P3's (s = 8), which is ours at the default
  OUTPUT_STRIDE 8; at other strides this is the same computation on our KP-Net map.
- ``"oks"``: COCO's OKS (pycocotools' formula, eps = float64 spacing of 1) of the decoded keypoints:
  argmax cell plus the disk offset read there, times s (``InsPoseCodec.decode``; with
  DISK_OFFSET_ON off the cell centres, which is still an OKS, of coarser keypoints), in pixels.
  With KPNET_UPSAMPLE_FACTOR f > 1 the keypoints are decoded as inference decodes them: the argmax
  of the maps upsampled by f (a no-grad banded pass, ``kpnet_upsample.fine_peak_cells``, over
  every positive), offsets at that finer stride.

area: the person's ``pos_areas`` (the annotation's area scaled with the image, else its box's area;
the release uses the mask's area). sigma: the training datasets' ``keypoint_oks_sigmas``.

Every positive gets a target, without gradient:
- a trained KP-Net: the argmax cells of its maps in the loss pass (``kpnet_loss_sum``, detached);
- a positive of a person with labelled keypoints that the positive budget
  (MAX_KPNET_POSITIVES_PER_IMAGE) left untrained: a no-grad KP-Net pass over those positives,
  image by image, band by band (``kpnet_decode.kpnet_peaks``, memory bounded by
  KPNET_CHUNK_ELEMENTS): the same maps a trained KP-Net at that location computes;
- a weak positive (a person without labelled keypoints, NO_KEYPOINT_PERSONS "positive"):
  VARIFOCAL_WEAK_TARGET (0.1, the release's).
(The release trains a KP-Net on every positive, so it has no untrained positives.)
"""
from typing import Optional, Sequence

import torch

from .codec import InsPoseCodec, InsPoseTargets, LevelLocations
from .head_outputs import HeadOutputs
from .kpnet import KPNetLayout
from .kpnet_decode import kpnet_peaks
from .kpnet_upsample import check_offset_size, decode_geometry, fine_peak_cells
from .level_maps import gather_locations, rows_and_cols
from .oks import COCO_AREA_EPS, dataset_oks_sigmas, oks_from_squared_distances

__all__ = [
    "RELEASE_AREA_EPS",
    "release_scores",
    "oks_scores",
    "untrained_peak_cells",
    "VarifocalTargets",
]

RELEASE_AREA_EPS = 1e-4  # the release's compute_oks


def release_scores(
    cells: torch.Tensor,
    map_width: int,
    stride: float,
    gt: torch.Tensor,
    areas: torch.Tensor,
    sigmas: torch.Tensor,
) -> torch.Tensor:
    """The release's OKS-like score of argmax cells against the ground truth's cells.

    Args:
        cells: (N, K) flat argmax cells of maps ``map_width`` wide; gt: (N, K, 3) x, y, v in input
            pixels; areas: (N,) pixels^2; sigmas: (K,).
    Returns:
        (N,) scores, distances in cells.
    """
    rows, cols = rows_and_cols(cells, map_width)
    gt_cells = torch.floor(gt[..., :2] / stride)
    distance_sq = (cols.float() - gt_cells[..., 0]) ** 2 + (rows.float() - gt_cells[..., 1]) ** 2
    return oks_from_squared_distances(distance_sq, gt[..., 2] > 0, areas, sigmas, RELEASE_AREA_EPS)


def oks_scores(keypoints: torch.Tensor, gt: torch.Tensor, areas: torch.Tensor, sigmas: torch.Tensor):
    """COCO's OKS of (N, K, 2) predicted keypoints against (N, K, 3) gt, both in pixels -> (N,)."""
    distance_sq = ((keypoints - gt[..., :2]) ** 2).sum(dim=2)
    return oks_from_squared_distances(distance_sq, gt[..., 2] > 0, areas, sigmas, COCO_AREA_EPS)


@torch.no_grad()
def untrained_peak_cells(
    features: torch.Tensor,
    image_index: torch.Tensor,
    params: torch.Tensor,
    layout: KPNetLayout,
    rel_x: torch.Tensor,
    rel_y: torch.Tensor,
    max_elements: int,
    upsample_factor: int = 1,
    upsample_mode: str = "bicubic",
    upsample_argmax: str = "global",
) -> torch.Tensor:
    """Argmax cells of n KP-Nets' maps without gradient, band by band (``kpnet_peaks``; with
    ``upsample_factor`` > 1 of the upsampled maps as inference finds it, ``fine_peak_cells``).

    Args:
        features: (B, C_kp, H, W); image_index: (n,); params: (n, C_f); rel_x: (n, W); rel_y: (n, H).
        max_elements: bound on one band's activations.
    Returns:
        (n, K) long flat cells.
    """
    cells = torch.zeros(params.shape[0], layout.num_keypoints, dtype=torch.long, device=params.device)
    for b in range(features.shape[0]):  # a loop over images, never over persons
        rows = (image_index == b).nonzero().squeeze(1)
        if rows.numel():
            args = (features[b : b + 1], params[rows], layout, rel_x[rows], rel_y[rows])
            if upsample_factor > 1:
                found, _ = fine_peak_cells(*args, upsample_factor, upsample_mode, upsample_argmax, max_elements)
            else:
                found, _, _ = kpnet_peaks(*args, max_elements)
            cells[rows] = found
    return cells


class VarifocalTargets:
    """The (Q,) varifocal target of every positive location of a batch (module docstring)."""

    def __init__(
        self,
        *,
        codec: InsPoseCodec,
        layout: KPNetLayout,
        mode: str = "release",
        weak_target: float = 0.1,
        max_elements: int = 1 << 25,
        sigmas: Optional[Sequence[float]] = None,
        dataset_names: Sequence[str] = (),
        upsample_factor: int = 1,
        upsample_mode: str = "bicubic",
        upsample_argmax: str = "global",
    ):
        """
        Args:
            mode: "release" or "oks" (VARIFOCAL_TARGET).
            weak_target: the target of a positive without labelled keypoints.
            max_elements: band bound of the no-grad pass (KPNET_CHUNK_ELEMENTS).
            sigmas: the K OKS sigmas; None: those of ``dataset_names`` (DATASETS.TRAIN), looked up
                at the first call, so a model builds for inference without the training data.
            upsample_factor, upsample_mode, upsample_argmax: KPNET_UPSAMPLE_FACTOR / _MODE /
                _ARGMAX, for mode "oks".
        """
        self.codec, self.layout = codec, layout
        self.mode, self.weak_target, self.max_elements = mode, weak_target, max_elements
        self.dataset_names = tuple(dataset_names)
        self.upsample_factor, self.upsample_mode = upsample_factor, upsample_mode
        self.upsample_argmax = upsample_argmax
        self._sigmas = None if sigmas is None else tuple(float(s) for s in sigmas)

    def sigmas(self, device) -> torch.Tensor:
        """(K,) OKS sigmas (``dataset_oks_sigmas`` on first use)."""
        if self._sigmas is None:
            self._sigmas = dataset_oks_sigmas(self.dataset_names, self.layout.num_keypoints)
        return torch.tensor(self._sigmas, device=device)

    @torch.no_grad()
    def __call__(
        self, outputs: HeadOutputs, locs: LevelLocations, targets: InsPoseTargets, trained_cells: torch.Tensor
    ) -> torch.Tensor:
        """(Q,) targets in [0, 1]; ``trained_cells``: (M,) x K argmax cells of the trained KP-Nets."""
        gt, areas = targets.pos_keypoints, targets.pos_areas
        cells = self.peak_cells(outputs, locs, targets, trained_cells)
        sigmas = self.sigmas(gt.device)
        if self.mode == "release":
            scores = release_scores(cells, outputs.map_size[1], self.codec.output_stride, gt, areas, sigmas)
        else:
            scores = oks_scores(self.decoded(outputs, locs, targets, cells), gt, areas, sigmas)
        weak = ~(gt[..., 2] > 0).any(dim=1)
        return torch.where(weak, torch.full_like(scores, self.weak_target), scores)

    def decoded(self, outputs: HeadOutputs, locs: LevelLocations, targets: InsPoseTargets, cells) -> torch.Tensor:
        """(Q, K, 2) keypoints of every positive decoded as inference does: its (Q, K) ``cells``
        and the offsets, or with KPNET_UPSAMPLE_FACTOR > 1 the argmax of its upsampled maps."""
        offsets = outputs.offsets.detach() if outputs.offsets is not None else None
        if self.upsample_factor == 1:
            return self.codec.decode(cells, outputs.map_size, offsets, targets.pos_image)
        size, stride = decode_geometry(outputs.map_size, self.codec.output_stride, self.upsample_factor)
        check_offset_size(offsets, size)
        params = gather_locations(outputs.params, targets.pos_image, targets.pos_location).detach()
        rel_x, rel_y = self.codec.relative_coordinates(locs, targets.pos_location, outputs.map_size)
        fine = untrained_peak_cells(
            outputs.kp_features.detach(), targets.pos_image, params, self.layout, rel_x, rel_y,
            self.max_elements, self.upsample_factor, self.upsample_mode, self.upsample_argmax,
        )
        return self.codec.decode(fine, size, offsets, targets.pos_image, stride=stride)

    def peak_cells(
        self, outputs: HeadOutputs, locs: LevelLocations, targets: InsPoseTargets, trained_cells: torch.Tensor
    ) -> torch.Tensor:
        """(Q, K) argmax cells of every positive's KP-Net: the trained ones' from the loss pass, the
        untrained ones' (with labelled keypoints) from a no-grad pass; 0 for weak positives."""
        num_pos = targets.pos_location.shape[0]
        cells = trained_cells.new_zeros(num_pos, self.layout.num_keypoints)
        cells[targets.pos_trained] = trained_cells
        labelled = (targets.pos_keypoints[..., 2] > 0).any(dim=1)
        todo = (~targets.pos_trained & labelled).nonzero().squeeze(1)
        image, location = targets.pos_image[todo], targets.pos_location[todo]
        params = gather_locations(outputs.params, image, location).detach()
        rel_x, rel_y = self.codec.relative_coordinates(locs, location, outputs.map_size)
        features = outputs.kp_features.detach()
        cells[todo] = untrained_peak_cells(
            features, image, params, self.layout, rel_x, rel_y, self.max_elements
        )
        return cells
