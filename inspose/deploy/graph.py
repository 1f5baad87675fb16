"""``InsPoseInference``: the whole inference of a built ``InsPose`` as one tensor-in, tensors-out module.

It is what ``tools/export_model.py`` exports (ONNX, ``torch.export``): from a resized image to the
final detections, with the model's own modules and the predictor's own steps:

1. normalisation and zero padding to the backbone's size divisibility;
2. backbone, heads (``InsPose.predict_maps``), locations (``InsPoseCodec.locations``);
3. candidates: the top PRE_NMS_TOPK_TEST scores over SCORE_THRESH_TEST, their KP-Nets on whole maps
   (``kpnet_peaks_dense``: no band loop, so any number of candidates exports), keypoint
   confidences, ``InsPoseCodec.decode`` with the offsets, boxes, instance scores
   (``InsPosePredictor.candidates``);
4. NMS and the top TEST.DETECTIONS_PER_IMAGE (as ``InsPosePredictor.kept``, written so that 0 or 1
   detections pass torch.export's runtime checks); with KPNETS_AFTER_NMS, NMS on the candidates'
   boxes before any KP-Net (``InsPosePredictor.proposals``) and the KP-Nets of the survivors only;
5. rescaling to the original image size, boxes clipped to it;
6. outputs padded to N = TEST.DETECTIONS_PER_IMAGE rows (padded rows are zeros).

The KP-Nets are batched matrix products (MatMul in ONNX): no convolution takes runtime weights.
"""
import copy
from typing import Tuple

import torch
from detectron2.structures import ImageList
from torch import nn
from torchvision.ops import nms

from ..modeling.inference import Candidates

__all__ = ["InsPoseInference", "OUTPUT_NAMES", "INPUT_NAMES"]

INPUT_NAMES = ("image", "original_size")
OUTPUT_NAMES = ("keypoints", "scores", "boxes", "num_detections")


class InsPoseInference(nn.Module):
    """image (3, h, w) float in INPUT.FORMAT, 0-255, already resized; original_size (2,) float
    (H, W) -> keypoints (N, K, 3), scores (N,), boxes (N, 4) xyxy, num_detections () int64.

    It runs a copy of the model's predictor with whole-map KP-Nets (``dense_kpnets``), the form
    that exports; detections equal the banded path's up to float summation order.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model.eval()
        self.predictor = copy.copy(model.predictor)  # the model's own predictor stays banded
        self.predictor.dense_kpnets = True
        self.max_detections = model.predictor.max_detections
        self.size_divisibility = max(1, model.backbone.size_divisibility)

    def forward(self, image: torch.Tensor, original_size: torch.Tensor):
        model = self.model
        padded, size = self._normalised_padded(image)
        outputs = model.predict_maps(ImageList(padded, [size]))
        locs = model.codec.locations(outputs.level_sizes, padded.device)
        scores = self.predictor.scores(outputs)[0]
        if self.predictor.kpnets_after_nms:
            kept = self._kpnets_after_nms(outputs, locs, scores, size)
        else:
            found = self.predictor.candidates(outputs, locs, scores, 0, size)
            keep = self._kept(found)
            kept = Candidates(found.keypoints[keep], found.scores[keep], found.boxes[keep])
        return self._padded_outputs(self._rescaled(kept, size, original_size))

    def _kpnets_after_nms(self, outputs, locs, scores: torch.Tensor, size) -> Candidates:
        """``InsPosePredictor.predict_after_nms``: NMS on the KP-Net-free candidates, then the
        KP-Nets of the survivors."""
        proposals, locations = self.predictor.proposals(outputs, locs, scores, 0, size)
        keep = self._kept(proposals)
        keypoints, _ = self.predictor.kpnet_keypoints(outputs, locs, scores, 0, locations[keep], size)
        return Candidates(keypoints, proposals.scores[keep], proposals.boxes[keep])

    def _kept(self, found: Candidates) -> torch.Tensor:
        """``InsPosePredictor.kept`` (NMS, best first, at most TEST.DETECTIONS_PER_IMAGE) in a form
        whose result may hold 0 or 1 detections: torchvision's NMS tells torch.export its output has
        at least 2 rows (a runtime assertion in the program), so two boxes far outside any image,
        scored below every candidate and apart from each other, join the NMS and are then dropped."""
        count = found.scores.shape[0]
        far = found.boxes.new_tensor([[-4e6, -4e6, -3e6, -3e6], [-2e6, -2e6, -1e6, -1e6]])
        boxes = torch.cat([found.boxes, far])
        scores = torch.cat([found.scores, found.scores.new_full((2,), -1.0)])
        keep = nms(boxes, scores, self.predictor.nms_thresh)
        return keep[keep < count][: self.max_detections]

    def _normalised_padded(self, image: torch.Tensor) -> Tuple[torch.Tensor, Tuple[int, int]]:
        """(1, 3, H_pad, W_pad) normalised and zero-padded, and the unpadded (h, w)."""
        model, step = self.model, self.size_divisibility
        height, width = image.shape[-2:]
        normalised = (image.to(model.pixel_mean.dtype) - model.pixel_mean) / model.pixel_std
        pad_h = (height + step - 1) // step * step - height
        pad_w = (width + step - 1) // step * step - width
        padded = nn.functional.pad(normalised[None], (0, pad_w, 0, pad_h))
        return padded, (height, width)

    @staticmethod
    def _rescaled(kept: Candidates, size, original_size: torch.Tensor) -> Candidates:
        """Candidates at the network's input ``size`` (h, w) mapped to ``original_size`` (H, W)."""
        scale_y = original_size[0] / size[0]
        scale_x = original_size[1] / size[1]
        xy_scale = torch.stack([scale_x, scale_y])
        keypoints = torch.cat([kept.keypoints[..., :2] * xy_scale, kept.keypoints[..., 2:]], dim=2)
        boxes = kept.boxes * torch.cat([xy_scale, xy_scale])
        limit = torch.stack([original_size[1], original_size[0]]).repeat(2)
        boxes = torch.minimum(boxes.clamp(min=0), limit)
        return Candidates(keypoints, kept.scores, boxes)

    def _padded_outputs(self, kept: Candidates):
        """Each output with N = max_detections rows: the detections, then zero rows."""
        n = self.max_detections

        def pad(x: torch.Tensor) -> torch.Tensor:
            return torch.cat([x, x.new_zeros((n,) + tuple(x.shape[1:]))])[:n]

        num_detections = pad(torch.ones_like(kept.scores)).sum().to(torch.int64)
        return pad(kept.keypoints), pad(kept.scores), pad(kept.boxes), num_detections
