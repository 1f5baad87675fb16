"""Predictions mapped from the network's input size to the requested output size.

``rescale_instances`` on hand-made Instances, and the tiny model end to end: an input dict whose
"height" / "width" differ from its image tensor gives the same detections scaled by the ratio.
"""
import pytest
import torch
from detectron2.structures import Boxes, Instances

from inspose.modeling.inference import rescale_instances

from .model_utils import batch_item, tiny_model

INPUT_SIZE = (100, 200)  # (h, w) the network saw
OUTPUT_SIZE = (250, 300)  # (H, W) asked for: x * 1.5, y * 2.5
TOLERANCE = 1e-4


def _predictions(num_keypoints=5):
    """Two detections at INPUT_SIZE: one ordinary, one with all keypoints at one point, plus a box
    reaching past the right and bottom edges (a box head may predict one)."""
    inst = Instances(INPUT_SIZE)
    xy = torch.tensor([[[10.0 + 30 * k, 5.0 + 18 * k] for k in range(num_keypoints)], [[50.0, 40.0]] * num_keypoints])
    confidence = torch.linspace(0.1, 0.9, num_keypoints).expand(2, num_keypoints)
    inst.pred_keypoints = torch.cat([xy, confidence[..., None]], dim=2)
    inst.pred_boxes = Boxes(torch.tensor([[10.0, 5.0, 190.0, 77.0], [50.0, 40.0, 210.0, 104.0]]))
    inst.scores = torch.tensor([0.9, 0.3])
    inst.pred_classes = torch.zeros(2, dtype=torch.long)
    return inst


def test_rescale_maps_keypoints_and_boxes_to_the_output_size():
    inst = _predictions()
    keypoints, boxes = inst.pred_keypoints.clone(), inst.pred_boxes.tensor.clone()
    out = rescale_instances(inst, *OUTPUT_SIZE)
    sx, sy = OUTPUT_SIZE[1] / INPUT_SIZE[1], OUTPUT_SIZE[0] / INPUT_SIZE[0]
    expected_xy = keypoints[..., :2] * torch.tensor([sx, sy])
    assert out.image_size == OUTPUT_SIZE and len(out) == 2  # the one-point detection is kept
    assert (out.pred_keypoints[..., :2] - expected_xy).abs().max() <= TOLERANCE
    assert (keypoints[..., :2] - expected_xy).abs().max() > 100 * TOLERANCE  # skipping it would fail
    assert torch.equal(out.pred_keypoints[..., 2], keypoints[..., 2])  # confidences untouched
    expected_boxes = boxes * torch.tensor([sx, sy, sx, sy])
    expected_boxes[:, 0::2] = expected_boxes[:, 0::2].clamp(0, OUTPUT_SIZE[1])
    expected_boxes[:, 1::2] = expected_boxes[:, 1::2].clamp(0, OUTPUT_SIZE[0])
    assert (out.pred_boxes.tensor - expected_boxes).abs().max() <= TOLERANCE
    assert out.pred_boxes.tensor[1].tolist() == pytest.approx([75.0, 100.0, 300.0, 250.0])
    assert torch.equal(out.scores, inst.scores) and torch.equal(out.pred_classes, inst.pred_classes)


def test_rescale_to_the_input_size_changes_nothing():
    inst = _predictions(num_keypoints=14)
    keypoints = inst.pred_keypoints.clone()
    out = rescale_instances(inst, *INPUT_SIZE)
    assert torch.equal(out.pred_keypoints, keypoints)


def test_rescale_leaves_its_input_unchanged():
    inst = _predictions()
    boxes = inst.pred_boxes.tensor.clone()
    rescale_instances(inst, *OUTPUT_SIZE)
    assert torch.equal(inst.pred_boxes.tensor, boxes)


def _predict(model, items):
    model.eval()
    model.predictor.score_thresh, model.predictor.pre_nms_topk = 0.0, 20
    with torch.no_grad():
        return [r["instances"] for r in model(items)]


def test_model_outputs_scale_by_the_requested_size_ratio():
    """A 120 x 150 image (padded to 128 x 160 inside the model) asked for at 300 x 200: the same
    detections as without height / width, x * 200 / 150 and y * 300 / 120, inside the output."""
    model = tiny_model()
    item = batch_item(120, 150, 0)
    del item["height"], item["width"]
    plain = _predict(model, [item])[0]
    scaled = _predict(model, [dict(item, height=300, width=200)])[0]
    assert plain.image_size == (120, 150) and scaled.image_size == (300, 200)
    assert len(plain) == len(scaled) > 0
    xy = scaled.pred_keypoints[..., :2]
    assert (xy >= 0).all() and (xy[..., 0] <= 200).all() and (xy[..., 1] <= 300).all()
    ratio = torch.tensor([200 / 150, 300 / 120])
    expected = plain.pred_keypoints[..., :2] * ratio
    assert (xy - expected).abs().max() <= 1e-3
    assert (plain.pred_keypoints[..., :2] - expected).abs().max() > 1.0  # not the unscaled ones
    assert torch.equal(scaled.scores, plain.scores)
