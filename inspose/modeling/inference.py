"""Inference: score threshold, top-N, KP-Nets on the survivors, decoding, NMS, rescaling.

The KP-Nets of the candidates run band by band over the map (``kpnet_decode.py``): one band's
activations hold at most ``KPNET_CHUNK_ELEMENTS`` values and are reduced at once to running
argmaxes and softmax normalisers, so memory stays bounded at any output stride (stride 2 with 500
candidates included) and the full maps are never written.

With ``MODEL.INSPOSE.KPNET_UPSAMPLE_FACTOR`` f > 1 (the release: 2, bicubic) the logits are
upsampled before the argmax, in the same bounded bands (``kpnet_upsample.py``), and keypoints are
decoded on the (f H, f W) maps at OUTPUT_STRIDE / f, offsets read at that size.

The third keypoint column (paper silent) follows ``MODEL.INSPOSE.KEYPOINT_SCORE``; by default it is
the softmax mass of the keypoint map in the 3 x 3 cells around the argmax, in [0, 1]. Candidates are
selected by their classification score (threshold, top N) as in the paper; the score a detection
is ranked by (NMS, AP) follows ``MODEL.INSPOSE.INSTANCE_SCORE``: by default the classification score
times the mean keypoint confidence.

NMS follows ``MODEL.INSPOSE.NMS_TYPE`` (``nms.py``): hard NMS on the boxes by default, soft-NMS
(linear or Gaussian decay; the detection's score is then its decayed score) or OKS-NMS on the
keypoints. ``PRE_NMS_TOPK_PER_LEVEL`` > 0 selects the top k candidates of each FPN level instead of
the global top PRE_NMS_TOPK_TEST (``level_topk.py``).

NMS compares the boxes of ``MODEL.INSPOSE.NMS_BOXES`` (``_boxes``): by default ("auto") the box
head's with BOX_HEAD_ON, else the KP-Net keypoints' enclosing boxes; "regression" takes those of the
keypoint-regression branch. With ``KPNETS_AFTER_NMS`` the order is the release's
(``predict_after_nms``): NMS on KP-Net-free candidates (``proposals``), then the KP-Nets of the
survivors only.
"""
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import torch
from detectron2.config import configurable
from detectron2.structures import Boxes, Instances

from .codec import InsPoseCodec, LevelLocations
from .oks import oks_sigmas_from_config
from .head_outputs import HeadOutputs
from .kpnet import KPNetLayout
from .kpnet_decode import kpnet_peak_mass, kpnet_peaks, kpnet_peaks_dense
from .kpnet_upsample import check_offset_size, decode_geometry, upsampled_kpnet_peaks_and_confidence
from .level_maps import flatten_levels, gather_locations
from .level_topk import level_topk
from .nms import hard_nms, oks_nms, soft_nms

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
        nms_type: str = "hard",
        soft_nms_sigma: float = 0.5,
        soft_nms_min_score: float = 0.001,
        oks_nms_thresh: float = 0.9,
        oks_sigmas: Optional[Tuple[float, ...]] = None,
        pre_nms_topk_per_level: int = 0,
        nms_boxes: str = "auto",
        kpnets_after_nms: bool = False,
        kpnet_upsample_factor: int = 1,
        kpnet_upsample_mode: str = "bicubic",
        kpnet_upsample_argmax: str = "global",
    ):
        """
        Args:
            score_thresh, pre_nms_topk: candidate selection by classification score;
                pre_nms_topk_per_level > 0: the top k of each FPN level instead (``level_topk``).
            nms_thresh: IoU threshold of NMS ("hard", "soft_linear"); max_detections: detections
                kept per image.
            nms_type: "hard", "soft_linear", "soft_gaussian" or "oks" (``nms.py``);
                soft_nms_sigma, soft_nms_min_score: soft-NMS's Gaussian sigma and minimum score;
                oks_nms_thresh, oks_sigmas (K,): OKS-NMS's threshold and per-keypoint sigmas.
            chunk_elements: bound on one band's KP-Net activations (``kpnet_decode``).
            keypoint_score: the third keypoint column, "peak_mass", "peak_prob" or "instance".
            instance_score: the detection score, "cls_x_keypoints" or "cls".
            nms_boxes: the boxes NMS compares (NMS_BOXES): "auto" (the box head's when the outputs
                have boxes, else "kpnet"), "kpnet", "regression" or "box_head" (``_boxes``).
            kpnets_after_nms: NMS before the KP-Nets, which then run on its survivors only
                (KPNETS_AFTER_NMS, ``predict_after_nms``).
            kpnet_upsample_factor, kpnet_upsample_mode: KP-Net logits upsampled by this factor
                before the argmax (KPNET_UPSAMPLE_FACTOR / _MODE, ``kpnet_upsample``); 1: none;
                kpnet_upsample_argmax: over the whole upsampled map or in the coarse argmax's cell.
        """
        self.codec, self.layout = codec, layout
        self.score_thresh = score_thresh
        self.pre_nms_topk = pre_nms_topk
        self.nms_thresh = nms_thresh
        self.max_detections = max_detections
        self.chunk_elements = chunk_elements
        self.keypoint_score = keypoint_score
        self.instance_score = instance_score
        if nms_type == "oks" and oks_sigmas is None:
            raise ValueError("nms_type 'oks' needs oks_sigmas")
        self.nms_type = nms_type
        self.soft_nms_sigma, self.soft_nms_min_score = soft_nms_sigma, soft_nms_min_score
        self.oks_nms_thresh, self.oks_sigmas = oks_nms_thresh, oks_sigmas
        self.pre_nms_topk_per_level = pre_nms_topk_per_level
        self.nms_boxes, self.kpnets_after_nms = nms_boxes, kpnets_after_nms
        self.upsample_factor, self.upsample_mode = kpnet_upsample_factor, kpnet_upsample_mode
        self.upsample_argmax = kpnet_upsample_argmax
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
            "nms_type": c.NMS_TYPE,
            "soft_nms_sigma": c.SOFT_NMS_SIGMA,
            "soft_nms_min_score": c.SOFT_NMS_MIN_SCORE,
            "oks_nms_thresh": c.OKS_NMS_THRESH,
            "oks_sigmas": oks_sigmas_from_config(cfg) if c.NMS_TYPE == "oks" else None,
            "pre_nms_topk_per_level": c.PRE_NMS_TOPK_PER_LEVEL,
            "nms_boxes": c.NMS_BOXES,
            "kpnets_after_nms": c.KPNETS_AFTER_NMS,
            "kpnet_upsample_factor": c.KPNET_UPSAMPLE_FACTOR,
            "kpnet_upsample_mode": c.KPNET_UPSAMPLE_MODE,
            "kpnet_upsample_argmax": c.KPNET_UPSAMPLE_ARGMAX,
        }

    def __call__(self, outputs: HeadOutputs, locs: LevelLocations, image_sizes: List[Tuple[int, int]]):
        scores = self.scores(outputs)
        return [self.predict_image(outputs, locs, scores[b], b, size) for b, size in enumerate(image_sizes)]

    @staticmethod
    def scores(outputs: HeadOutputs) -> torch.Tensor:
        """(B, L) classification probabilities of every location."""
        return torch.sigmoid(flatten_levels(outputs.logits).squeeze(2))

    def select_candidates(
        self, scores: torch.Tensor, level_sizes: Optional[List[Tuple[int, int]]] = None
    ) -> torch.Tensor:
        """(n,) locations over the score threshold, the top PRE_NMS_TOPK_TEST of them.

        The top k of all (L,) scores, then those over the threshold (the same set as threshold
        first, in descending score order): no branch on the data, so it exports. With
        PRE_NMS_TOPK_PER_LEVEL > 0, the top k of each level of ``level_sizes`` (H_i, W_i) instead.
        """
        if self.pre_nms_topk_per_level > 0:
            if level_sizes is None:
                raise ValueError("PRE_NMS_TOPK_PER_LEVEL > 0: select_candidates needs level_sizes")
            return level_topk(scores, level_sizes, self.pre_nms_topk_per_level, self.score_thresh)
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
        if self.upsample_factor > 1:
            return self.run_upsampled_kpnets(features, params, rel_x, rel_y)
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

    def run_upsampled_kpnets(self, features, params, rel_x, rel_y):
        """``run_kpnets`` with KPNET_UPSAMPLE_FACTOR > 1: cells (n, K) on the upsampled maps, banded
        (whole maps with ``dense_kpnets``); confidences on the KP-Nets' own maps (``kpnet_upsample``)."""
        return upsampled_kpnet_peaks_and_confidence(
            features, params, self.layout, rel_x, rel_y, self.upsample_factor, self.upsample_mode,
            self.keypoint_score, None if self.dense_kpnets else self.chunk_elements, self.upsample_argmax,
        )

    def kpnet_keypoints(
        self, outputs: HeadOutputs, locs: LevelLocations, scores, b: int, locations, image_size
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """The KP-Nets of image ``b``'s (n,) ``locations``: (n, K, 3) keypoints (x, y clamped to
        the image, confidence) in the network's input coordinates and the (n, K) confidences."""
        image = torch.full_like(locations, b)
        params = gather_locations(outputs.params, image, locations)
        features = outputs.kp_features[b : b + 1]
        rel_x, rel_y = self.codec.relative_coordinates(locs, locations, outputs.map_size)
        cells, confidence = self.run_kpnets(features, params, rel_x, rel_y)
        offset_map = outputs.offsets[b : b + 1] if outputs.offsets is not None else None
        map_size, stride = decode_geometry(outputs.map_size, self.codec.output_stride, self.upsample_factor)
        if self.upsample_factor > 1:
            check_offset_size(offset_map, map_size)
        xy = _clamped(self.codec.decode(cells, map_size, offset_map, stride=stride), image_size)
        if confidence is None:
            confidence = scores[locations][:, None].expand(-1, xy.shape[1])
        return torch.cat([xy, confidence[..., None]], dim=2), confidence

    def candidates(self, outputs: HeadOutputs, locs: LevelLocations, scores, b: int, image_size) -> Candidates:
        """Image ``b``'s candidates before NMS, in the network's input coordinates."""
        candidates = self.select_candidates(scores, outputs.level_sizes)
        keypoints, confidence = self.kpnet_keypoints(outputs, locs, scores, b, candidates, image_size)
        kept_scores = scores[candidates]
        boxes = self._boxes(outputs, locs, b, candidates, keypoints, image_size)
        if self.instance_score == "cls_x_keypoints":
            kept_scores = kept_scores * confidence.mean(dim=1)
        return Candidates(keypoints, kept_scores, boxes)

    def kept(self, candidates: Candidates) -> torch.Tensor:
        """(N,) indices of the candidates NMS keeps, best first, at most TEST.DETECTIONS_PER_IMAGE."""
        return self.suppress(candidates)[0]

    def suppress(self, candidates: Candidates) -> Tuple[torch.Tensor, torch.Tensor]:
        """NMS of MODEL.INSPOSE.NMS_TYPE: (N,) kept indices, best first, N <= DETECTIONS_PER_IMAGE,
        and their (N,) scores (soft-NMS: the decayed scores; else the candidates' own)."""
        c, k = candidates, self.max_detections
        if self.nms_type.startswith("soft_"):
            decay = self.nms_type[len("soft_") :]
            return soft_nms(
                c.boxes, c.scores, decay, self.nms_thresh, self.soft_nms_sigma, self.soft_nms_min_score, k
            )
        if self.nms_type == "oks":
            sigmas = torch.as_tensor(self.oks_sigmas, dtype=c.keypoints.dtype, device=c.keypoints.device)
            keep = oks_nms(c.keypoints, c.boxes, c.scores, sigmas, self.oks_nms_thresh, k)
        else:
            keep = hard_nms(c.boxes, c.scores, self.nms_thresh, k)
        return keep, c.scores[keep]

    def select(self, candidates: Candidates, image_size) -> Instances:
        """NMS on the candidates' boxes (keypoints for OKS-NMS), then the top TEST.DETECTIONS_PER_IMAGE."""
        keep, scores = self.suppress(candidates)
        result = Instances(image_size)
        result.pred_boxes = Boxes(candidates.boxes[keep])
        result.scores = scores
        result.pred_classes = torch.zeros_like(keep)
        result.pred_keypoints = candidates.keypoints[keep]
        return result

    def predict_image(self, outputs: HeadOutputs, locs: LevelLocations, scores, b: int, image_size):
        """Instances of image ``b`` at the network's input size."""
        if self.kpnets_after_nms:
            return self.predict_after_nms(outputs, locs, scores, b, image_size)
        return self.select(self.candidates(outputs, locs, scores, b, image_size), image_size)

    def proposals(
        self, outputs: HeadOutputs, locs: LevelLocations, scores, b: int, image_size
    ) -> Tuple[Candidates, torch.Tensor]:
        """Image ``b``'s candidates without their KP-Nets (KPNETS_AFTER_NMS) and their (n,) locations.

        The candidates hold the NMS_BOXES boxes, the classification scores and, as keypoints, the
        regressed ones (confidence: the score; zeros without the regression branch), which only
        OKS-NMS reads.
        """
        locations = self.select_candidates(scores, outputs.level_sizes)
        cls_scores = scores[locations]
        if outputs.keypoint_regression is not None:
            xy = self.regressed_keypoints(outputs, locs, b, locations, image_size)
        else:
            xy = cls_scores.new_zeros(locations.shape[0], self.layout.num_keypoints, 2)
        confidence = cls_scores[:, None, None].expand(-1, xy.shape[1], 1)
        boxes = self._boxes(outputs, locs, b, locations, None, image_size)
        return Candidates(torch.cat([xy, confidence], dim=2), cls_scores, boxes), locations

    def predict_after_nms(self, outputs: HeadOutputs, locs: LevelLocations, scores, b: int, image_size):
        """KPNETS_AFTER_NMS (the release's order): NMS on the candidates' NMS_BOXES boxes, then the
        KP-Nets of its <= TEST.DETECTIONS_PER_IMAGE survivors only. Instances as ``predict_image``."""
        proposals, locations = self.proposals(outputs, locs, scores, b, image_size)
        keep, kept_scores = self.suppress(proposals)
        keypoints, _ = self.kpnet_keypoints(outputs, locs, scores, b, locations[keep], image_size)
        result = Instances(image_size)
        result.pred_boxes = Boxes(proposals.boxes[keep])
        result.scores = kept_scores
        result.pred_classes = torch.zeros_like(keep)
        result.pred_keypoints = keypoints
        return result

    def regressed_keypoints(self, outputs: HeadOutputs, locs, b: int, locations, image_size) -> torch.Tensor:
        """(n, K, 2) keypoints of the regression branch at image ``b``'s (n,) ``locations``, clamped
        to the image (``InsPoseCodec.decode_regression``)."""
        if outputs.keypoint_regression is None:
            raise ValueError("NMS_BOXES 'regression' needs the keypoint-regression maps (KEYPOINT_REGRESSION_ON)")
        deltas = gather_locations(outputs.keypoint_regression, torch.full_like(locations, b), locations)
        xy = self.codec.decode_regression(locs.points[locations], locs.strides[locations], deltas)
        return _clamped(xy, image_size)

    def _boxes(self, outputs: HeadOutputs, locs, b: int, locations, keypoints, image_size) -> torch.Tensor:
        """(n, 4) NMS boxes of image ``b``'s (n,) ``locations`` from NMS_BOXES: the box head's, the
        enclosing boxes of the regressed keypoints, or those of ``keypoints`` (n, K, >= 2) (the
        KP-Nets'); "auto": the box head's when the outputs have boxes, else the KP-Nets'."""
        source = self.nms_boxes
        if source == "auto":
            source = "kpnet" if outputs.boxes is None else "box_head"
        if source == "box_head":
            distances = gather_locations(outputs.boxes, torch.full_like(locations, b), locations)
            return self.codec.decode_boxes(locs.points[locations], distances)
        if source == "regression":
            keypoints = self.regressed_keypoints(outputs, locs, b, locations, image_size)
        return keypoint_boxes(keypoints)


def _clamped(xy: torch.Tensor, image_size) -> torch.Tensor:
    """(..., 2) x, y clamped in place to the (h, w) image; returns ``xy``."""
    xy[..., 0] = xy[..., 0].clamp(0, image_size[1])
    xy[..., 1] = xy[..., 1].clamp(0, image_size[0])
    return xy
