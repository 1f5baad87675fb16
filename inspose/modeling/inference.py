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
from typing import Dict, List, Optional, Tuple

import torch
from detectron2.config import configurable
from detectron2.structures import Boxes, Instances
from torchvision.ops import nms

from .codec import InsPoseCodec, LevelLocations
from .head_outputs import HeadOutputs
from .kpnet import KPNetLayout
from .kpnet_decode import kpnet_peak_mass, kpnet_peaks, kpnet_peaks_dense
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
    out.pred_boxes = Boxes(instances.pred_boxes.tensor.clone())  # scale / clip work in place
    out.pred_boxes.scale(scale_x, scale_y)
    out.pred_boxes.clip((height, width))
    keypoints = out.pred_keypoints.clone()
    keypoints[..., 0] *= scale_x
    keypoints[..., 1] *= scale_y
    out.pred_keypoints = keypoints
    return out


class InsPosePredictor:
    """Turns head outputs into detectron2 ``Instances`` with pred_keypoints (N, K, 3).

    It selects candidates, runs their KP-Nets and ranks them; ``InsPoseCodec.decode`` /
    ``decode_boxes`` turn cells, offsets and box distances into coordinates.
    """

    @configurable
    def __init__(
        self,
        *,
        codec: InsPoseCodec,
        layout: KPNetLayout,
        score_thresh: float = 0.1,
        pre_nms_topk: int = 500,
        nms_thresh: float = 0.6,
        max_detections: int = 100,
        chunk_elements: int = 1 << 25,
        keypoint_score: str = "peak_mass",
        instance_score: str = "cls_x_keypoints",
    ):
        """
        Args:
            score_thresh, pre_nms_topk: candidate selection by classification score.
            nms_thresh: IoU threshold of NMS; max_detections: detections kept per image.
            chunk_elements: bound on one band's KP-Net activations (``kpnet_decode``).
            keypoint_score: the third keypoint column, "peak_mass", "peak_prob" or "instance".
            instance_score: the detection score, "cls_x_keypoints" or "cls".
        """
        self.codec, self.layout = codec, layout
        self.score_thresh = score_thresh
        self.pre_nms_topk = pre_nms_topk
        self.nms_thresh = nms_thresh
        self.max_detections = max_detections
        self.chunk_elements = chunk_elements
        self.keypoint_score = keypoint_score
        self.instance_score = instance_score
        # True: KP-Nets on whole maps at once (``kpnet_peaks_dense``), the exportable form.
        self.dense_kpnets = False

    @classmethod
    def from_config(cls, cfg, codec: InsPoseCodec, layout: KPNetLayout) -> Dict:
        c = cfg.MODEL.INSPOSE
        return {
            "codec": codec,
            "layout": layout,
            "score_thresh": c.SCORE_THRESH_TEST,
            "pre_nms_topk": c.PRE_NMS_TOPK_TEST,
            "nms_thresh": c.NMS_THRESH_TEST,
            "max_detections": cfg.TEST.DETECTIONS_PER_IMAGE,
            "chunk_elements": c.KPNET_CHUNK_ELEMENTS,
            "keypoint_score": c.KEYPOINT_SCORE,
            "instance_score": c.INSTANCE_SCORE,
        }

    def __call__(self, outputs: HeadOutputs, locs: LevelLocations, image_sizes: List[Tuple[int, int]]):
        scores = self.scores(outputs)
        return [self.predict_image(outputs, locs, scores[b], b, size) for b, size in enumerate(image_sizes)]

    @staticmethod
    def scores(outputs: HeadOutputs) -> torch.Tensor:
        """(B, L) classification probabilities of every location."""
        return torch.sigmoid(flatten_levels(outputs.logits).squeeze(2))

    def select_candidates(self, scores: torch.Tensor) -> torch.Tensor:
        """(n,) locations over the score threshold, the top PRE_NMS_TOPK_TEST of them.

        The top k of all (L,) scores, then those over the threshold (the same set as threshold
        first, in descending score order): no branch on the data, so it exports.
        """
        top_scores, top = scores.topk(min(self.pre_nms_topk, scores.shape[0]))
        return top[top_scores > self.score_thresh]

    def run_kpnets(
        self, features, params, rel_x, rel_y
    ) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        """Argmax cells (n, K) and confidences (n, K) (None for "instance") of n KP-Nets.

        The maps are reduced band by band (``kpnet_decode.kpnet_peaks``) and never stored whole.

        Args:
            features: (1, C_kp, H, W) keypoint features of the image.
            params: (n, C_f); rel_x: (n, W), rel_y: (n, H) (``InsPoseCodec.relative_coordinates``).
        """
        if self.dense_kpnets:
            cells, peak, log_norm = kpnet_peaks_dense(features, params, self.layout, rel_x, rel_y)
        else:
            cells, peak, log_norm = kpnet_peaks(
                features, params, self.layout, rel_x, rel_y, self.chunk_elements
            )
        if self.keypoint_score == "instance":
            return cells, None
        if self.keypoint_score == "peak_prob":
            return cells, torch.exp(peak - log_norm)
        return cells, kpnet_peak_mass(features, params, self.layout, rel_x, rel_y, cells, log_norm)

    def candidates(self, outputs: HeadOutputs, locs: LevelLocations, scores, b: int, image_size) -> Candidates:
        """Image ``b``'s candidates before NMS, in the network's input coordinates."""
        candidates = self.select_candidates(scores)
        image = torch.full_like(candidates, b)
        params = gather_locations(outputs.params, image, candidates)
        features = outputs.kp_features[b : b + 1]
        rel_x, rel_y = self.codec.relative_coordinates(locs, candidates, outputs.map_size)
        cells, confidence = self.run_kpnets(features, params, rel_x, rel_y)
        offset_map = outputs.offsets[b : b + 1] if outputs.offsets is not None else None
        xy = self.codec.decode(cells, outputs.map_size, offset_map)
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

    def kept(self, candidates: Candidates) -> torch.Tensor:
        """(N,) indices of the candidates NMS keeps, best first, at most TEST.DETECTIONS_PER_IMAGE."""
        return nms(candidates.boxes, candidates.scores, self.nms_thresh)[: self.max_detections]

    def select(self, candidates: Candidates, image_size) -> Instances:
        """NMS on the candidates' boxes, then the top TEST.DETECTIONS_PER_IMAGE."""
        keep = self.kept(candidates)
        result = Instances(image_size)
        result.pred_boxes = Boxes(candidates.boxes[keep])
        result.scores = candidates.scores[keep]
        result.pred_classes = torch.zeros_like(keep)
        result.pred_keypoints = candidates.keypoints[keep]
        return result

    def predict_image(self, outputs: HeadOutputs, locs: LevelLocations, scores, b: int, image_size):
        """Instances of image ``b`` at the network's input size."""
        return self.select(self.candidates(outputs, locs, scores, b, image_size), image_size)

    def _boxes(self, outputs: HeadOutputs, locs, image, candidates, keypoints) -> torch.Tensor:
        """(n, 4) predicted boxes with the box head, else the keypoints' enclosing boxes."""
        if outputs.boxes is None:
            return keypoint_boxes(keypoints)
        distances = gather_locations(outputs.boxes, image, candidates)
        return self.codec.decode_boxes(locs.points[candidates], distances)
