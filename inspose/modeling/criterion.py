"""InsPose's training losses: L = L_cls + L_kpf + L_do + L_hm (+ L_box), each weighted.

The criterion computes losses from the head outputs and the targets of ``InsPoseCodec.encode``;
it builds no target itself.

- L_cls: sigmoid focal loss over every location not in an ignore region, / positive locations.
- L_kpf (eq. 4): softmax cross-entropy of each trained KP-Net's map against one-hot keypoint cells,
  averaged over the instance's labelled keypoints, / trained KP-Net instances. Trained instances
  are the positive locations of persons with a labelled keypoint, within the positive budget;
  computed in checkpointed chunks of instances (``kpnet_loss.py``).
- L_do: L1 on the disk offsets, / supervised (keypoint, cell) pairs.
- L_hm: CornerNet focal loss on the auxiliary heatmaps, / labelled keypoints (heatmap peaks).
- L_box: GIoU on every positive location, / positive locations (box head only).
Every normaliser is averaged over processes (``losses.global_normalizer``); every term is finite
for images without persons and batches without positives.
"""
from typing import Dict

import torch
from detectron2.config import configurable

from .codec import InsPoseCodec, InsPoseTargets, LevelLocations
from .head_outputs import HeadOutputs
from .kpnet import KPNetLayout
from .kpnet_loss import kpnet_loss_sum
from .level_maps import flatten_levels, gather_locations
from .losses import focal_loss_sum, giou_loss_sum, global_normalizer, heatmap_focal_loss_sum, offset_l1_sum

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
    ):
        """
        Args:
            loss_weights: weight of each loss name (loss_cls, loss_kpnet, loss_offset,
                loss_heatmap, loss_box).
            kpnet_loss_chunk: KP-Net instances per checkpointed chunk (<= 0: all at once).
        """
        self.codec, self.layout = codec, layout
        self.weights = dict(loss_weights)
        self.focal_alpha, self.focal_gamma = focal_alpha, focal_gamma
        self.heatmap_alpha, self.heatmap_beta = heatmap_alpha, heatmap_beta
        self.kpnet_loss_chunk = kpnet_loss_chunk

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
            },
            "focal_alpha": c.FOCAL_LOSS_ALPHA,
            "focal_gamma": c.FOCAL_LOSS_GAMMA,
            "heatmap_alpha": c.HEATMAP_FOCAL_ALPHA,
            "heatmap_beta": c.HEATMAP_FOCAL_BETA,
            "kpnet_loss_chunk": c.KPNET_LOSS_CHUNK,
        }

    def __call__(self, outputs: HeadOutputs, locs: LevelLocations, targets: InsPoseTargets):
        """Weighted losses: loss_cls and loss_kpnet always; loss_offset, loss_heatmap and loss_box
        when the outputs hold offsets, heatmaps and boxes."""
        losses = {"loss_cls": self.classification_loss(outputs, targets)}
        losses["loss_kpnet"] = self.kpnet_loss(outputs, locs, targets)
        if outputs.offsets is not None:
            losses["loss_offset"] = self.offset_loss(outputs.offsets, targets)
        if outputs.heatmaps is not None:
            losses["loss_heatmap"] = self.heatmap_loss(outputs.heatmaps, targets)
        if outputs.boxes is not None:
            losses["loss_box"] = self.box_loss(outputs, locs, targets)
        return {name: value * self.weights[name] for name, value in losses.items()}

    def classification_loss(self, outputs: HeadOutputs, targets: InsPoseTargets):
        flat = flatten_levels(outputs.logits).squeeze(2)  # (B, L)
        loss = focal_loss_sum(
            flat[targets.valid], targets.labels[targets.valid], self.focal_alpha, self.focal_gamma
        )
        return loss / global_normalizer(targets.labels.sum())

    def kpnet_loss(self, outputs: HeadOutputs, locs: LevelLocations, targets: InsPoseTargets):
        features = outputs.kp_features
        params = gather_locations(outputs.params, targets.kp_image, targets.kp_location)
        rel_x, rel_y = self.codec.relative_coordinates(locs, targets.kp_location, outputs.map_size)
        total, count = kpnet_loss_sum(
            features,
            targets.kp_image,
            params,
            self.layout,
            rel_x,
            rel_y,
            targets.kp_cells,
            targets.kp_labelled,
            self.kpnet_loss_chunk,
        )
        # With no KP-Net to train (no labelled person in this process's images) the keypoint
        # branch would get no gradient, which DistributedDataParallel rejects: keep it in the graph.
        total = total + 0.0 * features.sum()
        return total / global_normalizer(count)

    def offset_loss(self, offsets: torch.Tensor, targets: InsPoseTargets):
        batch, channels, height, width = offsets.shape
        disk = targets.disk_offsets
        per_cell = offsets.view(batch, channels // 2, 2, height, width).permute(0, 1, 3, 4, 2)
        predicted = per_cell.reshape(-1, 2)[disk.index]
        total = offset_l1_sum(predicted, disk.offset)
        return total / global_normalizer(offsets.new_tensor(float(disk.index.numel())))

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
