"""InsPose's training losses: L = L_cls + L_kpf + L_do + L_hm (+ L_box), each weighted.

The criterion computes losses from the head outputs and the targets of ``InsPoseCodec.encode``;
it builds no target itself.

- L_cls: sigmoid focal loss over every location not in an ignore region, / positive locations;
  with CLS_LOSS "varifocal" (the release) the varifocal loss against each positive's localisation
  quality (``quality_targets.py``), / (positive locations + images), as the release normalises.
- L_kpf (eq. 4): softmax cross-entropy of each trained KP-Net's map against one-hot keypoint cells,
  averaged over the instance's labelled keypoints, / trained KP-Net instances (KPNET_LOSS_NORMALIZER
  "keypoint", the release: summed over (instance, labelled keypoint) pairs / pairs). Trained
  instances are the positive locations of persons with a labelled keypoint, within the positive
  budget; computed in checkpointed chunks of instances (``kpnet_loss.py``).
- L_do: L1 on the disk offsets, / supervised (keypoint, cell) pairs.
- L_hm: CornerNet focal loss on the auxiliary heatmaps, / labelled keypoints (heatmap peaks).
- L_box: GIoU on every positive location, / positive locations (box head only).
- L_kpr: L1 of the keypoint regression ((dx, dy) in strides) on the labelled keypoints of every
  positive location, / labelled coordinates (2 per labelled (positive, keypoint) pair: a mean
  absolute error per coordinate, as the release) (KEYPOINT_REGRESSION_ON only).
- L_hmo: L1 of the heatmap branch's offsets (HEATMAP_OFFSETS_ON, which then replace L_do), /
  supervised values (2 per supervised (keypoint, cell) pair, as the release).
- L_ae: associative-embedding pull / push of the heatmap branch's tags (AE_TAGS_ON), / persons with
  a labelled keypoint and / pairs of them in one image (``ae_loss.py``).
Every normaliser is averaged over processes (``losses.global_normalizer``); every term is finite
for images without persons and batches without positives.
"""
from typing import Dict, Optional, Tuple

import torch
from detectron2.config import configurable

from .ae_loss import ae_pull_push_sums
from .codec import InsPoseCodec, InsPoseTargets, LevelLocations
from .head_outputs import HeadOutputs
from .kpnet import KPNetLayout
from .kpnet_loss import kpnet_loss_sum
from .level_maps import flatten_levels, gather_locations
from .losses import focal_loss_sum, giou_loss_sum, global_normalizer, heatmap_focal_loss_sum, offset_l1_sum
from .losses import varifocal_loss_sum
from .quality_targets import VarifocalTargets

__all__ = ["InsPoseCriterion"]


class InsPoseCriterion:
    """Computes the weighted loss dict from the head outputs and the codec's targets."""

    @configurable
    def __init__(
        self,
        *,
        codec: InsPoseCodec,
        layout: KPNetLayout,
        loss_weights: Dict[str, float],
        focal_alpha: float = 0.25,
        focal_gamma: float = 2.0,
        heatmap_alpha: float = 2.0,
        heatmap_beta: float = 4.0,
        kpnet_loss_chunk: int = 8,
        kpnet_loss_normalizer: str = "instance",
        varifocal: Optional[VarifocalTargets] = None,
        varifocal_alpha: float = 0.75,
        varifocal_gamma: float = 2.0,
    ):
        """
        Args:
            loss_weights: weight of each loss name (loss_cls, loss_kpnet, loss_offset,
                loss_heatmap, loss_box).
            kpnet_loss_chunk: KP-Net instances per checkpointed chunk (<= 0: all at once).
            kpnet_loss_normalizer: "instance" or "keypoint" (KPNET_LOSS_NORMALIZER).
            varifocal: the varifocal targets (CLS_LOSS "varifocal"), or None for the focal loss.
        """
        self.codec, self.layout = codec, layout
        self.weights = dict(loss_weights)
        self.focal_alpha, self.focal_gamma = focal_alpha, focal_gamma
        self.heatmap_alpha, self.heatmap_beta = heatmap_alpha, heatmap_beta
        self.kpnet_loss_chunk = kpnet_loss_chunk
        self.kpnet_loss_normalizer = kpnet_loss_normalizer
        self.varifocal = varifocal
        self.varifocal_alpha, self.varifocal_gamma = varifocal_alpha, varifocal_gamma

    @classmethod
    def from_config(cls, cfg, codec: InsPoseCodec, layout: KPNetLayout) -> Dict:
        c = cfg.MODEL.INSPOSE
        return {
            "codec": codec,
            "layout": layout,
            "loss_weights": {
                "loss_cls": c.LOSS_WEIGHT_CLS,
                "loss_kpnet": c.LOSS_WEIGHT_KPNET,
                "loss_offset": c.LOSS_WEIGHT_OFFSET,
                "loss_heatmap": c.LOSS_WEIGHT_HEATMAP,
                "loss_box": c.LOSS_WEIGHT_BOX,
                "loss_keypoint_regression": c.LOSS_WEIGHT_KEYPOINT_REGRESSION,
                "loss_heatmap_offset": c.LOSS_WEIGHT_HEATMAP_OFFSET,
                "loss_ae_pull": c.LOSS_WEIGHT_AE_PULL,
                "loss_ae_push": c.LOSS_WEIGHT_AE_PUSH,
            },
            "focal_alpha": c.FOCAL_LOSS_ALPHA,
            "focal_gamma": c.FOCAL_LOSS_GAMMA,
            "heatmap_alpha": c.HEATMAP_FOCAL_ALPHA,
            "heatmap_beta": c.HEATMAP_FOCAL_BETA,
            "kpnet_loss_chunk": c.KPNET_LOSS_CHUNK,
            "kpnet_loss_normalizer": c.KPNET_LOSS_NORMALIZER,
            "varifocal": cls.varifocal_targets(cfg, codec, layout),
            "varifocal_alpha": c.VARIFOCAL_ALPHA,
            "varifocal_gamma": c.VARIFOCAL_GAMMA,
        }

    @staticmethod
    def varifocal_targets(cfg, codec: InsPoseCodec, layout: KPNetLayout) -> Optional[VarifocalTargets]:
        """The varifocal targets of CLS_LOSS "varifocal" (sigmas of DATASETS.TRAIN), else None."""
        c = cfg.MODEL.INSPOSE
        if c.CLS_LOSS != "varifocal":
            return None
        return VarifocalTargets(
            codec=codec,
            layout=layout,
            mode=c.VARIFOCAL_TARGET,
            weak_target=c.VARIFOCAL_WEAK_TARGET,
            max_elements=c.KPNET_CHUNK_ELEMENTS,
            dataset_names=list(cfg.DATASETS.TRAIN),
            upsample_factor=c.KPNET_UPSAMPLE_FACTOR,
            upsample_mode=c.KPNET_UPSAMPLE_MODE,
            upsample_argmax=c.KPNET_UPSAMPLE_ARGMAX,
        )

    def __call__(self, outputs: HeadOutputs, locs: LevelLocations, targets: InsPoseTargets):
        """Weighted losses: loss_cls and loss_kpnet always; loss_offset, loss_heatmap and loss_box
        when the outputs hold offsets, heatmaps and boxes; loss_keypoint_regression with the
        keypoint-regression maps."""
        loss_kpnet, trained_cells = self.kpnet_loss(outputs, locs, targets)
        quality = None
        if self.varifocal is not None:
            quality = self.varifocal(outputs, locs, targets, trained_cells)
        losses = {"loss_cls": self.classification_loss(outputs, targets, quality)}
        losses["loss_kpnet"] = loss_kpnet
        if outputs.offsets is not None and targets.heatmap_offsets is not None:
            losses["loss_heatmap_offset"] = self.heatmap_offset_loss(outputs.offsets, targets)
        elif outputs.offsets is not None:
            losses["loss_offset"] = self.offset_loss(outputs.offsets, targets)
        if outputs.heatmap_tags is not None:
            losses["loss_ae_pull"], losses["loss_ae_push"] = self.ae_loss(outputs.heatmap_tags, targets)
        if outputs.heatmaps is not None:
            losses["loss_heatmap"] = self.heatmap_loss(outputs.heatmaps, targets)
        if outputs.boxes is not None:
            losses["loss_box"] = self.box_loss(outputs, locs, targets)
        if outputs.keypoint_regression is not None:
            losses["loss_keypoint_regression"] = self.keypoint_regression_loss(outputs, targets)
        return {name: value * self.weights[name] for name, value in losses.items()}

    def classification_loss(
        self, outputs: HeadOutputs, targets: InsPoseTargets, quality: Optional[torch.Tensor] = None
    ):
        """Focal loss / positives; with ``quality`` ((Q,) varifocal targets of the positives)
        the varifocal loss / (positives + images)."""
        flat = flatten_levels(outputs.logits).squeeze(2)  # (B, L)
        if quality is not None:
            return self.varifocal_loss(flat, targets, quality)
        loss = focal_loss_sum(
            flat[targets.valid], targets.labels[targets.valid], self.focal_alpha, self.focal_gamma
        )
        return loss / global_normalizer(targets.labels.sum())

    def varifocal_loss(self, flat: torch.Tensor, targets: InsPoseTargets, quality: torch.Tensor):
        """Varifocal loss of the (B, L) logits over the valid locations, / (positives + images)."""
        target_map = torch.zeros_like(targets.labels)
        target_map[targets.pos_image, targets.pos_location] = quality
        valid = targets.valid
        positive = targets.labels[valid] > 0
        alpha, gamma = self.varifocal_alpha, self.varifocal_gamma
        loss = varifocal_loss_sum(flat[valid], target_map[valid], positive, alpha, gamma)
        num_images = targets.labels.shape[0]
        return loss / global_normalizer(targets.labels.sum() + num_images)

    def kpnet_loss(self, outputs: HeadOutputs, locs: LevelLocations, targets: InsPoseTargets):
        """L_kpf, and the (M, K) argmax cells of the trained KP-Nets when the varifocal targets
        need them (else None)."""
        features = outputs.kp_features
        params = gather_locations(outputs.params, targets.kp_image, targets.kp_location)
        rel_x, rel_y = self.codec.relative_coordinates(locs, targets.kp_location, outputs.map_size)
        with_peaks = self.varifocal is not None
        total, count, *peaks = kpnet_loss_sum(
            features,
            targets.kp_image,
            params,
            self.layout,
            rel_x,
            rel_y,
            targets.kp_cells,
            targets.kp_labelled,
            self.kpnet_loss_chunk,
            self.kpnet_loss_normalizer,
            with_peaks,
        )
        # With no KP-Net to train (no labelled person in this process's images) the keypoint
        # branch would get no gradient, which DistributedDataParallel rejects: keep it in the graph.
        total = total + 0.0 * features.sum()
        return total / global_normalizer(count), (peaks[0] if with_peaks else None)

    def offset_loss(self, offsets: torch.Tensor, targets: InsPoseTargets):
        total, cells = _sparse_offset_l1(offsets, targets.disk_offsets)
        return total / global_normalizer(cells)

    def heatmap_offset_loss(self, offsets: torch.Tensor, targets: InsPoseTargets):
        """L1 of the heatmap branch's (B, 2K, H_h, W_h) offsets / supervised values (dx and dy)."""
        total, cells = _sparse_offset_l1(offsets, targets.heatmap_offsets)
        return total / global_normalizer(2.0 * cells)

    def ae_loss(self, tags: torch.Tensor, targets: InsPoseTargets):
        """(pull, push) of the (B, K, H_h, W_h) tags, each / its count averaged over processes."""
        pull, persons, push, pairs = ae_pull_push_sums(tags, targets.ae_tags)
        keep = 0.0 * tags.sum()  # in the graph without persons (DistributedDataParallel)
        return (pull + keep) / global_normalizer(persons), (push + keep) / global_normalizer(pairs)

    def heatmap_loss(self, heatmaps: torch.Tensor, targets: InsPoseTargets):
        total, count = heatmap_focal_loss_sum(
            heatmaps, targets.heatmaps, targets.heatmap_weight, self.heatmap_alpha, self.heatmap_beta
        )
        return total / global_normalizer(count)

    def box_loss(self, outputs: HeadOutputs, locs: LevelLocations, targets: InsPoseTargets):
        distances = gather_locations(outputs.boxes, targets.pos_image, targets.pos_location)
        predicted = self.codec.decode_boxes(locs.points[targets.pos_location], distances)
        total = giou_loss_sum(predicted, targets.pos_boxes)
        return total / global_normalizer(distances.new_tensor(float(predicted.shape[0])))

    def keypoint_regression_loss(self, outputs: HeadOutputs, targets: InsPoseTargets):
        """L1 of the (Q, K, 2) regressed keypoints of the positives on their labelled keypoints,
        / labelled coordinates (averaged over processes)."""
        maps = outputs.keypoint_regression
        gathered = gather_locations(maps, targets.pos_image, targets.pos_location)  # (Q, 2K)
        labelled = targets.pos_regression_labelled  # (Q, K)
        predicted = gathered.view(*labelled.shape, 2)
        total = offset_l1_sum(predicted[labelled], targets.pos_regression[labelled])
        # Without positives the branch would get no gradient (DistributedDataParallel): keep it.
        total = total + 0.0 * sum(m.sum() for m in maps)
        return total / global_normalizer(2.0 * labelled.sum())


def _sparse_offset_l1(offsets: torch.Tensor, sparse) -> Tuple[torch.Tensor, torch.Tensor]:
    """L1 of (B, 2K, H, W) offsets at ``sparse`` (``DiskOffsets``) targets, and their cell count."""
    batch, channels, height, width = offsets.shape
    per_cell = offsets.view(batch, channels // 2, 2, height, width).permute(0, 1, 3, 4, 2)
    predicted = per_cell.reshape(-1, 2)[sparse.index]
    total = offset_l1_sum(predicted, sparse.offset)
    return total, offsets.new_tensor(float(sparse.index.numel()))
