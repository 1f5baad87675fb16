"""InsPose's training losses: L = L_cls + L_kpf + L_do + L_hm (+ L_box), each weighted.

- L_cls: sigmoid focal loss over every location not in an ignore region, / positive locations.
- L_kpf (eq. 4): softmax cross-entropy of each trained KP-Net's map against one-hot keypoint cells,
  averaged over the instance's labelled keypoints, / trained KP-Net instances. Trained instances
  are the positive locations of persons with a labelled keypoint, within the positive budget.
- L_do: L1 on the disk offsets, / supervised (keypoint, cell) pairs.
- L_hm: CornerNet focal loss on the auxiliary heatmaps, / labelled keypoints (heatmap peaks).
- L_box: GIoU on every positive location, / positive locations (box head only).
Every normaliser is averaged over processes (``losses.global_normalizer``); every term is finite
for images without persons and batches without positives.
"""
from dataclasses import dataclass
from typing import Dict, List, Optional

import torch
from detectron2.structures import Instances

from .codec import InsPoseCodec, LevelLocations
from .kpnet import KPNetLayout, kpnet_forward, relative_coordinate_axes
from .level_maps import flatten_levels, gather_locations
from .losses import (
    focal_loss_sum,
    giou_loss_sum,
    global_normalizer,
    heatmap_focal_loss_sum,
    kpnet_cross_entropy_sum,
    offset_l1_sum,
)

__all__ = ["InsPoseCriterion", "BatchTargets"]


@dataclass
class BatchTargets:
    """Targets of a batch, gathered image by image.

    Attributes:
        labels: (B, L) float 1 for positives.
        valid: (B, L) bool, locations the classification loss uses.
        kp_image, kp_location: (M,) image and location of each trained KP-Net.
        kp_keypoints: (M, K, 3) the keypoints of the person each KP-Net is trained on.
        pos_image, pos_location: (Q,) every positive location; pos_boxes: (Q, 4) its person's box.
        persons: (P, K, 3) keypoints of every person with a labelled keypoint; person_image: (P,).
        ignore_boxes: per image (Q_b, 4) crowd boxes (heatmap negatives there are ignored).
    """

    labels: torch.Tensor
    valid: torch.Tensor
    kp_image: torch.Tensor
    kp_location: torch.Tensor
    kp_keypoints: torch.Tensor
    pos_image: torch.Tensor
    pos_location: torch.Tensor
    pos_boxes: torch.Tensor
    persons: torch.Tensor
    person_image: torch.Tensor
    crowd_boxes: List[torch.Tensor]


class InsPoseCriterion:
    """Computes the loss dict from the head outputs and the ground truth."""

    def __init__(self, cfg, codec: InsPoseCodec, layout: KPNetLayout):
        c = cfg.MODEL.INSPOSE
        self.codec, self.layout = codec, layout
        self.budget = c.MAX_KPNET_POSITIVES_PER_IMAGE
        self.rel_coord_norms = list(c.REL_COORD_NORMS)
        self.focal_alpha, self.focal_gamma = c.FOCAL_LOSS_ALPHA, c.FOCAL_LOSS_GAMMA
        self.hm_alpha, self.hm_beta = c.HEATMAP_FOCAL_ALPHA, c.HEATMAP_FOCAL_BETA
        self.weights = {
            "loss_cls": c.LOSS_WEIGHT_CLS,
            "loss_kpnet": c.LOSS_WEIGHT_KPNET,
            "loss_offset": c.LOSS_WEIGHT_OFFSET,
            "loss_heatmap": c.LOSS_WEIGHT_HEATMAP,
            "loss_box": c.LOSS_WEIGHT_BOX,
        }

    # ------------------------------------------------------------------ targets
    def build_targets(
        self,
        locs: LevelLocations,
        gt_instances: List[Instances],
        crowd_boxes: List[Optional[torch.Tensor]],
    ) -> BatchTargets:
        device = locs.points.device
        labels, valid, kp, pos, persons = [], [], [], [], []
        for b, (inst, crowd) in enumerate(zip(gt_instances, crowd_boxes)):
            keypoints = inst.gt_keypoints.tensor.to(device)
            boxes = inst.gt_boxes.tensor.to(device)
            crowd = crowd.to(device) if crowd is not None else boxes.new_zeros(0, 4)
            a = self.codec.assign(locs, keypoints, boxes, crowd)
            labels.append((a.owner >= 0).float())
            valid.append(~a.ignore)
            sampled = self.codec.sample_kpnet_positives(a.owner, a.trains_keypoints, self.budget)
            kp.append((torch.full_like(sampled, b), sampled, keypoints[a.owner[sampled]]))
            positive = (a.owner >= 0).nonzero().squeeze(1)
            pos.append((torch.full_like(positive, b), positive, a.boxes[a.owner[positive]]))
            trained = keypoints[a.trains_keypoints]
            persons.append((trained, torch.full((trained.shape[0],), b, device=device)))
            crowd_boxes[b] = crowd
        return BatchTargets(
            labels=torch.stack(labels),
            valid=torch.stack(valid),
            kp_image=torch.cat([k[0] for k in kp]),
            kp_location=torch.cat([k[1] for k in kp]),
            kp_keypoints=torch.cat([k[2] for k in kp]),
            pos_image=torch.cat([p[0] for p in pos]),
            pos_location=torch.cat([p[1] for p in pos]),
            pos_boxes=torch.cat([p[2] for p in pos]),
            persons=torch.cat([p[0] for p in persons]),
            person_image=torch.cat([p[1] for p in persons]).long(),
            crowd_boxes=crowd_boxes,
        )

    # ------------------------------------------------------------------ losses
    def __call__(self, outputs: Dict, locs: LevelLocations, gt_instances, crowd_boxes):
        """Weighted losses.

        Args:
            outputs: ``logits``/``params``/``boxes`` per level (InstanceHead), ``kp_features``
                (B, C_kp, H, W) and ``offsets`` (B, 2K, H, W) at the output stride or None,
                ``heatmaps`` (B, K, H3, W3) on P3 or None.
        """
        targets = self.build_targets(locs, gt_instances, list(crowd_boxes))
        losses = {"loss_cls": self.classification_loss(outputs["logits"], targets)}
        losses["loss_kpnet"] = self.kpnet_loss(outputs, locs, targets)
        if outputs.get("offsets") is not None:
            losses["loss_offset"] = self.offset_loss(outputs["offsets"], targets)
        if outputs.get("heatmaps") is not None:
            losses["loss_heatmap"] = self.heatmap_loss(outputs["heatmaps"], targets)
        if outputs.get("boxes"):
            losses["loss_box"] = self.box_loss(outputs["boxes"], locs, targets)
        return {name: value * self.weights[name] for name, value in losses.items()}

    def classification_loss(self, logits: List[torch.Tensor], targets: BatchTargets):
        flat = flatten_levels(logits).squeeze(2)  # (B, L)
        loss = focal_loss_sum(
            flat[targets.valid], targets.labels[targets.valid], self.focal_alpha, self.focal_gamma
        )
        return loss / global_normalizer(targets.labels.sum())

    def kpnet_loss(self, outputs: Dict, locs: LevelLocations, targets: BatchTargets):
        features = outputs["kp_features"]
        map_size = tuple(features.shape[-2:])
        params = gather_locations(outputs["params"], targets.kp_image, targets.kp_location)
        norms = features.new_tensor(self.rel_coord_norms)[locs.levels[targets.kp_location]]
        rel_x, rel_y = relative_coordinate_axes(
            locs.points[targets.kp_location], norms, map_size, self.codec.output_stride
        )
        logits = kpnet_forward(features, targets.kp_image, params, self.layout, rel_x, rel_y)
        cells, labelled = self.codec.keypoint_cells(targets.kp_keypoints, map_size)
        total, count = kpnet_cross_entropy_sum(logits, cells, labelled)
        # With no KP-Net to train (no labelled person in this process's images) the keypoint
        # branch would get no gradient, which DistributedDataParallel rejects: keep it in the graph.
        total = total + 0.0 * features.sum()
        return total / global_normalizer(count)

    def offset_loss(self, offsets: torch.Tensor, targets: BatchTargets):
        batch, channels, height, width = offsets.shape
        disk = self.codec.disk_offsets(targets.persons, targets.person_image, (height, width))
        per_cell = offsets.view(batch, channels // 2, 2, height, width).permute(0, 1, 3, 4, 2)
        predicted = per_cell.reshape(-1, 2)[disk.index]
        total = offset_l1_sum(predicted, disk.offset)
        return total / global_normalizer(offsets.new_tensor(float(disk.index.numel())))

    def heatmap_loss(self, heatmaps: torch.Tensor, targets: BatchTargets):
        batch, _, height, width = heatmaps.shape
        target = self.codec.heatmaps(targets.persons, targets.person_image, batch, (height, width))
        weight = self._outside_boxes(targets.crowd_boxes, (height, width), heatmaps)
        total, count = heatmap_focal_loss_sum(heatmaps, target, weight, self.hm_alpha, self.hm_beta)
        return total / global_normalizer(count)

    def _outside_boxes(self, boxes: List[torch.Tensor], size, like: torch.Tensor) -> torch.Tensor:
        """(B, 1, H, W) 1 outside the given boxes (on the P3 grid), 0 inside."""
        stride = self.codec.heatmap_stride
        ys = (torch.arange(size[0], device=like.device) + 0.5) * stride
        xs = (torch.arange(size[1], device=like.device) + 0.5) * stride
        masks = []
        for image_boxes in boxes:
            inside_x = (xs[None, :] >= image_boxes[:, 0:1]) & (xs[None, :] <= image_boxes[:, 2:3])
            inside_y = (ys[None, :] >= image_boxes[:, 1:2]) & (ys[None, :] <= image_boxes[:, 3:4])
            inside = (inside_y[:, :, None] & inside_x[:, None, :]).any(dim=0)
            masks.append((~inside).float())
        return torch.stack(masks)[:, None]

    def box_loss(self, boxes: List[torch.Tensor], locs: LevelLocations, targets: BatchTargets):
        distances = gather_locations(boxes, targets.pos_image, targets.pos_location)
        points = locs.points[targets.pos_location]
        predicted = torch.cat([points - distances[:, :2], points + distances[:, 2:]], dim=1)
        total = giou_loss_sum(predicted, targets.pos_boxes)
        return total / global_normalizer(distances.new_tensor(float(points.shape[0])))
