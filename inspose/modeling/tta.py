"""Test-time augmentation for InsPose: several input scales, optionally mirrored, one NMS.

``InsPoseWithTTA`` wraps a built ``InsPose`` and is called like it (a list of the test mapper's
dicts -> ``[{"instances": Instances}]`` at each dict's "height" x "width"). For every image:

1. for every shorter side in ``TEST.AUG.MIN_SIZES`` (longer side at most ``TEST.AUG.MAX_SIZE``,
   detectron2's ``ResizeShortestEdge`` rule) the image is resized; with ``TEST.AUG.FLIP`` its
   horizontal mirror joins it in the same batch of two;
2. the model's head outputs give each augmented image's candidates before NMS
   (``InsPosePredictor.candidates``);
3. mirrored candidates are mapped back (x -> W - x in detectron2's continuous frame, keypoint
   channels swapped by the dataset's flip indices, boxes mirrored), and all candidates are scaled
   to the original (height, width);
4. one NMS + top-k (``InsPosePredictor.select``) runs on all of them together, then boxes are
   clipped to the image, as the plain model does.

Where the pixels of each scale come from: the test mapper gives "image" already resized to
``INPUT.MIN_SIZE_TEST``. A scale whose size equals that tensor's size uses the tensor unchanged (so
TTA with that single scale and no flip is exactly the plain model). Any other scale is resized from
the original picture, read again from the dict's "file_name" in ``INPUT.FORMAT`` (one resampling
of the real pixels, as the test mapper does); a dict without a readable "file_name" is resized
from the given tensor instead (two resamplings in total, logged once).
"""
import logging
import os
from typing import Dict, List, Sequence, Tuple, Union

import numpy as np
import torch
from detectron2.data import detection_utils as utils
from detectron2.data import transforms as T
from detectron2.structures import Instances
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from ..data.image_io import read_dataset_image
from .inference import Candidates

__all__ = ["InsPoseWithTTA", "flip_candidates", "rescale_candidates", "scaled_size"]

logger = logging.getLogger(__name__)

Size = Tuple[int, int]  # (height, width)


def flip_candidates(candidates: Candidates, width: float, flip_indices: torch.Tensor) -> Candidates:
    """Candidates found on a horizontally mirrored image, expressed in the unmirrored image.

    Args:
        candidates: keypoints (n, K, 3), scores (n,), boxes (n, 4) xyxy on the mirrored image.
        width: the image width W; x -> W - x (detectron2's continuous frame, pixel index + 0.5).
        flip_indices: (K,) long (detectron2's ``create_keypoint_hflip_indices``): keypoint k of
            the result is keypoint flip_indices[k] of the mirrored image, mirrored.

    Applying it twice gives the candidates back.
    """
    keypoints = candidates.keypoints[:, flip_indices.to(candidates.keypoints.device)]
    keypoints[..., 0] = width - keypoints[..., 0]
    x1, y1, x2, y2 = candidates.boxes.unbind(dim=1)
    boxes = torch.stack([width - x2, y1, width - x1, y2], dim=1)
    return Candidates(keypoints, candidates.scores, boxes)


def rescale_candidates(candidates: Candidates, from_size: Size, to_size: Size) -> Candidates:
    """Candidates of an image of ``from_size`` (h, w) scaled to ``to_size`` (h, w)."""
    scale_y = to_size[0] / from_size[0]
    scale_x = to_size[1] / from_size[1]
    keypoints = candidates.keypoints.clone()
    keypoints[..., 0] *= scale_x
    keypoints[..., 1] *= scale_y
    boxes = candidates.boxes * candidates.boxes.new_tensor([scale_x, scale_y, scale_x, scale_y])
    return Candidates(keypoints, candidates.scores, boxes)


def scaled_size(height: int, width: int, min_size: int, max_size: int) -> Size:
    """(h, w) of an image of (height, width) resized by ``ResizeShortestEdge(min_size, max_size)``."""
    return tuple(T.ResizeShortestEdge.get_output_shape(height, width, min_size, max_size))


def _resize(image: np.ndarray, size: Size) -> np.ndarray:
    """(h0, w0, C) -> (h, w, C) with detectron2's bilinear ``ResizeTransform``."""
    transform = T.ResizeTransform(image.shape[0], image.shape[1], size[0], size[1])
    return transform.apply_image(image)


def _as_flip_indices(flip_indices, cfg) -> torch.Tensor:
    """(K,) long tensor from indices, a dataset name, or (None) the config's test datasets
    (the identity when None and TEST.AUG.FLIP is off: nothing is mirrored)."""
    k = cfg.MODEL.INSPOSE.NUM_KEYPOINTS
    if flip_indices is None:
        if not cfg.TEST.AUG.FLIP:
            return torch.arange(k)
        if not cfg.DATASETS.TEST:
            raise ValueError("TEST.AUG.FLIP needs flip indices or a dataset in DATASETS.TEST")
        flip_indices = list(cfg.DATASETS.TEST)
    if isinstance(flip_indices, str) or (
        isinstance(flip_indices, (list, tuple)) and flip_indices and isinstance(flip_indices[0], str)
    ):
        flip_indices = utils.create_keypoint_hflip_indices(flip_indices)
    indices = torch.as_tensor(np.asarray(flip_indices), dtype=torch.long)
    if indices.shape != (k,) or sorted(indices.tolist()) != list(range(k)):
        raise ValueError(f"flip indices {indices.tolist()} are not a permutation of {k} keypoints")
    return indices


class InsPoseWithTTA(nn.Module):
    """InsPose with multi-scale and flip test-time augmentation (see the module docstring).

    Args:
        cfg: the model's config; reads TEST.AUG.MIN_SIZES / MAX_SIZE / FLIP and INPUT.FORMAT.
        model: a built ``InsPose`` (a ``DistributedDataParallel`` around one is unwrapped).
        flip_indices: (K,) ints, a dataset name (its metadata's flip map), or None for the flip
            map of ``cfg.DATASETS.TEST`` (which must then agree).
    """

    def __init__(self, cfg, model: nn.Module, flip_indices: Union[None, str, Sequence[int]] = None):
        super().__init__()
        if isinstance(model, DistributedDataParallel):
            model = model.module
        self.model = model
        self.min_sizes = [int(s) for s in cfg.TEST.AUG.MIN_SIZES]
        self.max_size = int(cfg.TEST.AUG.MAX_SIZE)
        self.flip = bool(cfg.TEST.AUG.FLIP)
        self.image_format = cfg.INPUT.FORMAT
        if not self.min_sizes:
            raise ValueError("TEST.AUG.MIN_SIZES is empty: test-time augmentation needs a scale")
        self.register_buffer("flip_indices", _as_flip_indices(flip_indices, cfg), False)
        self._warned_tensor_source = False

    def forward(self, batched_inputs: List[Dict]) -> List[Dict[str, Instances]]:
        return [{"instances": self.predict(inputs)} for inputs in batched_inputs]

    @torch.no_grad()
    def predict(self, inputs: Dict) -> Instances:
        """One image's ``Instances`` at its original (height, width) after one NMS over all
        augmentations."""
        size = self.original_size(inputs)
        candidates = Candidates.cat(self.candidates_per_scale(inputs))
        result = self.model.predictor.select(candidates, size)
        result.pred_boxes.clip(size)
        return result

    @staticmethod
    def original_size(inputs: Dict) -> Size:
        """(height, width) the predictions are wanted at; the given image's size by default."""
        h, w = inputs["image"].shape[-2:]
        return int(inputs.get("height", h)), int(inputs.get("width", w))

    def candidates_per_scale(self, inputs: Dict) -> List[Candidates]:
        """Per scale of TEST.AUG.MIN_SIZES, the candidates of the image (and its mirror) in the
        original image's coordinates."""
        height, width = self.original_size(inputs)
        source = None
        found = []
        for min_size in self.min_sizes:
            size = scaled_size(height, width, min_size, self.max_size)
            image = inputs["image"]
            if tuple(image.shape[-2:]) != size:
                source = self._source_image(inputs) if source is None else source
                image = torch.as_tensor(np.ascontiguousarray(_resize(source, size).transpose(2, 0, 1)))
            found.append(self.candidates_at_scale(image, (height, width)))
        return found

    @torch.no_grad()
    def candidates_at_scale(self, image: torch.Tensor, original_size: Size) -> Candidates:
        """Candidates of one resized image (C, h, w), plus its mirror with TEST.AUG.FLIP, mapped to
        ``original_size``; the image and its mirror run as one batch."""
        model = self.model
        batch = [{"image": image}] + ([{"image": image.flip(-1)}] if self.flip else [])
        images = model.preprocess_image(batch)
        outputs = model.predict_maps(images)
        locs = model.codec.locations(outputs.level_sizes, model.device)
        scores = model.predictor.scores(outputs)  # (B, L)
        parts = []
        for b, size in enumerate(images.image_sizes):
            found = model.predictor.candidates(outputs, locs, scores[b], b, size)
            if b == 1:
                found = flip_candidates(found, size[1], self.flip_indices)
            parts.append(rescale_candidates(found, size, original_size))
        return Candidates.cat(parts)

    def _source_image(self, inputs: Dict) -> np.ndarray:
        """(H, W, C) pixels to resize from: the original file, else the given tensor."""
        path = inputs.get("file_name")
        if path and os.path.isfile(path):
            return read_dataset_image(inputs, self.image_format)
        if not self._warned_tensor_source:
            logger.warning("TTA: no readable 'file_name' in the inputs; resizing the given image")
            self._warned_tensor_source = True
        return inputs["image"].permute(1, 2, 0).cpu().numpy()
