"""Inference: score threshold, top-N, KP-Nets on the survivors, decoding, NMS, rescaling.

The KP-Nets of the candidates run band by band over the map (``kpnet_decode.py``): one band's
activations hold at most ``KPNET_CHUNK_ELEMENTS`` values and are reduced at once to running
argmaxes and softmax normalisers, so memory stays bounded at any output stride (stride 2 with 500
candidates included) and the full maps are never written.

The third keypoint column (paper silent) follows ``MODEL.INSPOSE.KEYPOINT_SCORE``; by default it is
the softmax mass of the keypoint map in the 3 x 3 cells around the argmax, in [0, 1]. Candidates are
selected by their classification score (threshold, top N) as in the paper; the score a detection
is ranked by (NMS, AP) follows ``MODEL.INSPOSE.INSTANCE_SCORE``: by default the classification score
times the mean keypoint confidence.
"""
from dataclasses import dataclass
from typing import Dict, List, Tuple

import torch
from detectron2.structures import Boxes, Instances
from torchvision.ops import nms

from .codec import InsPoseCodec, LevelLocations
from .kpnet import KPNetLayout, relative_coordinate_axes
from .kpnet_decode import kpnet_logits_at, kpnet_peaks
from .level_maps import flatten_levels, gather_locations

__all__ = ["InsPosePredictor", "Candidates", "keypoint_boxes", "rescale_instances"]


@dataclass
class Candidates:
    """Detections of one image before NMS.

    Attributes:
        keypoints: (n, K, 3) x, y, confidence; scores: (n,); boxes: (n, 4) xyxy used by NMS.
    """

    keypoints: torch.Tensor
    scores: torch.Tensor
    boxes: torch.Tensor

    @staticmethod
    def cat(parts: List["Candidates"]) -> "Candidates":
        return Candidates(
            torch.cat([p.keypoints for p in parts]),
            torch.cat([p.scores for p in parts]),
            torch.cat([p.boxes for p in parts]),
        )


def keypoint_boxes(keypoints: torch.Tensor) -> torch.Tensor:
    """(N, K, >=2) -> (N, 4) enclosing xyxy boxes of all keypoints."""
    return torch.cat([keypoints[..., :2].amin(dim=1), keypoints[..., :2].amax(dim=1)], dim=1)


def rescale_instances(instances: Instances, height: int, width: int) -> Instances:
    """Map predictions from the network's input size to (height, width).

    Unlike detectron2's ``detector_postprocess`` this keeps instances whose box is empty (all
    keypoints at one point, as an untrained model predicts): evaluation must see them all.
    """
    scale_x = width / instances.image_size[1]
    scale_y = height / instances.image_size[0]
    out = Instances((height, width), **instances.get_fields())
    out.pred_boxes.scale(scale_x, scale_y)
    out.pred_boxes.clip((height, width))
    keypoints = out.pred_keypoints.clone()
    keypoints[..., 0] *= scale_x
    keypoints[..., 1] *= scale_y
    out.pred_keypoints = keypoints
    return out


_NEIGHBOURS = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]


def _peak_mass(features, params, layout, rel_x, rel_y, cells, log_norm) -> torch.Tensor:
    """(n, K) softmax mass of each keypoint map in the 3 x 3 cells around its argmax."""
    height, width = features.shape[-2:]
    if cells.numel() == 0:
        return log_norm.clone()
    offsets = torch.tensor(_NEIGHBOURS, device=cells.device)
    rows = (cells // width)[..., None] + offsets[:, 0]
    cols = (cells % width)[..., None] + offsets[:, 1]
    inside = (rows >= 0) & (rows < height) & (cols >= 0) & (cols < width)
    logits = kpnet_logits_at(
        features, params, layout, rel_x, rel_y, rows.clamp(0, height - 1), cols.clamp(0, width - 1)
    )
    mass = (torch.exp(logits - log_norm[..., None]) * inside).sum(dim=2)
    return mass.clamp(max=1.0)


class InsPosePredictor:
    """Turns head outputs into detectron2 ``Instances`` with pred_keypoints (N, K, 3)."""

    def __init__(self, cfg, codec: InsPoseCodec, layout: KPNetLayout):
        c = cfg.MODEL.INSPOSE
        self.codec, self.layout = codec, layout
        self.score_thresh = c.SCORE_THRESH_TEST
        self.pre_nms_topk = c.PRE_NMS_TOPK_TEST
        self.nms_thresh = c.NMS_THRESH_TEST
        self.max_detections = cfg.TEST.DETECTIONS_PER_IMAGE
        self.chunk_elements = c.KPNET_CHUNK_ELEMENTS
        self.keypoint_score = c.KEYPOINT_SCORE
        self.instance_score = c.INSTANCE_SCORE
        self.rel_coord_norms = list(c.REL_COORD_NORMS)

    def __call__(self, outputs: Dict, locs: LevelLocations, image_sizes: List[Tuple[int, int]]):
        scores = torch.sigmoid(flatten_levels(outputs["logits"]).squeeze(2))  # (B, L)
        return [self.predict_image(outputs, locs, scores[b], b, size) for b, size in enumerate(image_sizes)]

    def select_candidates(self, scores: torch.Tensor) -> torch.Tensor:
        """(n,) locations over the score threshold, the top PRE_NMS_TOPK_TEST of them."""
        candidates = (scores > self.score_thresh).nonzero().squeeze(1)
        if candidates.numel() > self.pre_nms_topk:
            top = scores[candidates].topk(self.pre_nms_topk).indices
            candidates = candidates[top]
        return candidates

    def run_kpnets(self, features, params, locations, norms) -> Tuple[torch.Tensor, torch.Tensor]:
        """Argmax cells (n, K) and confidences (n, K) (None for "instance") of n KP-Nets.

        The maps are reduced band by band (``kpnet_decode.kpnet_peaks``) and never stored whole.

        Args:
            features: (1, C_kp, H, W) keypoint features of the image.
            params: (n, C_f); locations: (n, 2); norms: (n,).
        """
        map_size = tuple(features.shape[-2:])
        rel_x, rel_y = relative_coordinate_axes(locations, norms, map_size, self.codec.output_stride)
        cells, peak, log_norm = kpnet_peaks(
            features, params, self.layout, rel_x, rel_y, self.chunk_elements
        )
        if self.keypoint_score == "instance":
            return cells, None
        if self.keypoint_score == "peak_prob":
            return cells, torch.exp(peak - log_norm)
        return cells, _peak_mass(features, params, self.layout, rel_x, rel_y, cells, log_norm)

    def candidates(self, outputs: Dict, locs: LevelLocations, scores, b: int, image_size) -> Candidates:
        """Image ``b``'s candidates before NMS, in the network's input coordinates."""
        candidates = self.select_candidates(scores)
        image = torch.full_like(candidates, b)
        params = gather_locations(outputs["params"], image, candidates)
        features = outputs["kp_features"][b : b + 1]
        norms = features.new_tensor(self.rel_coord_norms)[locs.levels[candidates]]
        cells, confidence = self.run_kpnets(features, params, locs.points[candidates], norms)
        offsets = None
        if outputs.get("offsets") is not None:
            offsets = self.codec.gather_offsets(
                outputs["offsets"][b : b + 1], torch.zeros_like(candidates), cells
            )
        xy = self.codec.decode(cells, features.shape[-1], offsets)
        xy[..., 0] = xy[..., 0].clamp(0, image_size[1])
        xy[..., 1] = xy[..., 1].clamp(0, image_size[0])
        kept_scores = scores[candidates]
        if confidence is None:
            confidence = kept_scores[:, None].expand(-1, xy.shape[1])
        keypoints = torch.cat([xy, confidence[..., None]], dim=2)
        boxes = self._boxes(outputs, locs, image, candidates, keypoints)
        if self.instance_score == "cls_x_keypoints":
            kept_scores = kept_scores * confidence.mean(dim=1)
        return Candidates(keypoints, kept_scores, boxes)

    def select(self, candidates: Candidates, image_size) -> Instances:
        """NMS on the candidates' boxes, then the top TEST.DETECTIONS_PER_IMAGE."""
        keep = nms(candidates.boxes, candidates.scores, self.nms_thresh)[: self.max_detections]
        result = Instances(image_size)
        result.pred_boxes = Boxes(candidates.boxes[keep])
        result.scores = candidates.scores[keep]
        result.pred_classes = torch.zeros_like(keep)
        result.pred_keypoints = candidates.keypoints[keep]
        return result

    def predict_image(self, outputs: Dict, locs: LevelLocations, scores, b: int, image_size):
        """Instances of image ``b`` at the network's input size."""
        return self.select(self.candidates(outputs, locs, scores, b, image_size), image_size)

    def _boxes(self, outputs, locs, image, candidates, keypoints) -> torch.Tensor:
        """(n, 4) predicted boxes with the box head, else the keypoints' enclosing boxes."""
        if not outputs.get("boxes"):
            return keypoint_boxes(keypoints)
        distances = gather_locations(outputs["boxes"], image, candidates)
        points = locs.points[candidates]
        return torch.cat([points - distances[:, :2], points + distances[:, 2:]], dim=1)
