"""detectron2's Keypoint R-CNN R-50-FPN (model-zoo recipe, random weights) at batch 1.

The config is project data (``configs/keypoint_rcnn/keypoint_rcnn_R_50_FPN_3x.yaml``), loaded with
detectron2's own ``get_cfg``. Persons are forced as in ``forcing.py``: the keypoint head sees
exactly P boxes, checked with a hook on the head before every timing.

Random weights are kept everywhere except three output layers, which are zeroed: the RPN's
anchor deltas, the box head's deltas and the keypoint head's heatmap deconvolution. The random
ResNet-50 with FrozenBN has no working normalisation, so its activations reach ~1e4 and:
- its deltas clip every proposal to the image border or to a point; the RPN's NMS then keeps about
  one proposal per level (at most ~5 persons could be forced, the box head would run on ~5 RoIs
  instead of up to 1000) and the keypoint decoding, whose cost grows with the box size, would run
  on boxes of no realistic size;
- its heatmap logits overflow detectron2's heatmap decoding (``heatmaps_to_keypoints`` asserts).
With zero deltas, proposals are anchors (32-512 px) and detections are proposals, so the RPN's NMS,
the box head on up to POST_NMS_TOPK_TEST proposals and the keypoint decoding see boxes of realistic
shapes and counts, as with a trained model; constant heatmaps decode like any others. Zeroed layers
cost the same arithmetic.
"""
from pathlib import Path
from typing import Dict, Sequence

import torch
from detectron2.config import get_cfg
from detectron2.modeling import build_model
from torch import nn

from .forcing import check_count, count_keypoint_head_boxes, force_keypoint_rcnn_persons

__all__ = [
    "KEYPOINT_RCNN_CONFIG",
    "keypoint_rcnn_cfg",
    "neutral_output_layers",
    "build_keypoint_rcnn",
    "run_forced",
]

KEYPOINT_RCNN_CONFIG = str(
    Path(__file__).resolve().parents[2] / "configs/keypoint_rcnn/keypoint_rcnn_R_50_FPN_3x.yaml"
)


def keypoint_rcnn_cfg(config_file: str, device: torch.device, opts: Sequence[str] = ()):
    """detectron2 config of the recipe, on ``device``, with no weights to load."""
    cfg = get_cfg()
    cfg.merge_from_file(config_file)
    if opts:
        cfg.merge_from_list(list(opts))
    cfg.MODEL.WEIGHTS = ""
    cfg.MODEL.DEVICE = str(device)
    return cfg


def neutral_output_layers(model: nn.Module) -> nn.Module:
    """Zero the RPN's and the box head's delta layers and the keypoint head's heatmap deconvolution
    (see the module doc)."""
    layers = (
        model.proposal_generator.rpn_head.anchor_deltas,
        model.roi_heads.box_predictor.bbox_pred,
        model.roi_heads.keypoint_head.score_lowres,
    )
    with torch.no_grad():
        for layer in layers:
            layer.weight.zero_()
            layer.bias.zero_()
    return model


def build_keypoint_rcnn(
    config_file: str,
    device: torch.device,
    opts: Sequence[str] = (),
    seed: int = 0,
    train: bool = False,
):
    """(GeneralizedRCNN with random weights and neutral output layers, its config), in eval mode
    unless ``train``; ``opts`` are ``KEY VALUE`` overrides of the config."""
    cfg = keypoint_rcnn_cfg(config_file, device, opts)
    torch.manual_seed(seed)
    model = neutral_output_layers(build_model(cfg))
    model.train(train)
    return model, cfg


def run_forced(model: nn.Module, inputs: Dict, persons: int):
    """One forward with ``persons`` forced; raises unless the keypoint head saw that many boxes."""
    force_keypoint_rcnn_persons(model, persons)
    with torch.no_grad(), count_keypoint_head_boxes(model) as seen:
        outputs = model([inputs])
    check_count(seen, persons, "Keypoint R-CNN keypoint head")
    return outputs
