"""Round trip of the codec on real annotations: encode, ideal maps, decode, pycocotools OKS AP.

``InsPoseCodec.encode`` gives the trained KP-Nets' target cells and the disk offsets; the ideal
network predicts exactly those, and ``InsPoseCodec.decode`` turns them back into keypoints.

Also: every person with a labelled keypoint gets a positive location.
"""
import contextlib
import io
import math

import numpy as np
import pytest
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from inspose.config import get_inspose_cfg
from inspose.data import COCO_PERSON, validated_json_file
from inspose.evaluation.results import keypoints_to_results
from inspose.modeling.codec import InsPoseCodec
from detectron2.data import DatasetCatalog
from detectron2.structures import Boxes, BoxMode, Instances, Keypoints

from .conftest import CROWDPOSE


@pytest.fixture(scope="module")
def coco_records(coco_kp_mini, coco_kp_mini_dataset):
    json_file = coco_kp_mini / "annotations/person_keypoints_train2017.json"
    return DatasetCatalog.get(coco_kp_mini_dataset), validated_json_file(str(json_file), 17)


@pytest.fixture(scope="module")
def crowdpose_records(crowdpose_mini, crowdpose_mini_dataset):
    json_file = crowdpose_mini / "test_crowdpose.json"
    return DatasetCatalog.get(crowdpose_mini_dataset), validated_json_file(str(json_file), 14)


def _codec(num_keypoints, stride=8):
    cfg = get_inspose_cfg()
    cfg.MODEL.INSPOSE.NUM_KEYPOINTS = num_keypoints
    cfg.MODEL.INSPOSE.OUTPUT_STRIDE = stride
    return InsPoseCodec.from_config(cfg)


def _persons(record):
    """The non-crowd annotations with a labelled keypoint: (P, K, 3) keypoints, (P, 4) xyxy boxes."""
    annotations = [
        a
        for a in record["annotations"]
        if not a.get("iscrowd", 0) and any(v > 0 for v in a["keypoints"][2::3])
    ]
    kps = np.array([a["keypoints"] for a in annotations], dtype=np.float32)
    boxes = [BoxMode.convert(a["bbox"], a["bbox_mode"], BoxMode.XYXY_ABS) for a in annotations]
    return (
        torch.tensor(kps.reshape(len(annotations), -1, 3)),
        torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
    )


def _padded_locations(codec, height, width):
    """The codec's locations for an image of (height, width) padded to a multiple of 32."""
    height, width = math.ceil(height / 32) * 32, math.ceil(width / 32) * 32
    sizes = [(math.ceil(height / s), math.ceil(width / s)) for s in codec.fpn_strides]
    return codec.locations(sizes, torch.device("cpu"))


def _round_trip_results(records, codec, with_offsets):
    """``codec.encode`` each image's persons, then ``codec.decode`` one trained KP-Net per person
    from its target cells (the ideal keypoint maps) and the ideal offset map."""
    results = []
    for record in records:
        keypoints, boxes = _persons(record)
        if keypoints.shape[0] == 0:
            continue
        instances = Instances((record["height"], record["width"]))
        instances.gt_keypoints = Keypoints(keypoints)
        instances.gt_boxes = Boxes(boxes)
        locs = _padded_locations(codec, record["height"], record["width"])
        targets = codec.encode(locs, [instances], [None])
        map_size = codec.output_map_size(locs.sizes[0])
        offset_map = None
        if with_offsets:
            offset_map = targets.disk_offsets.dense(1, keypoints.shape[1], map_size)
        xy = codec.decode(targets.kp_cells, map_size, offset_map, targets.kp_image)
        persons, first = _first_row_per_person(targets.kp_instance)
        assert persons.tolist() == list(range(keypoints.shape[0])), "a person has no trained KP-Net"
        decoded = torch.cat([xy[first], torch.ones_like(xy[first, :, :1])], dim=2).numpy()
        results += keypoints_to_results(decoded, np.ones(len(decoded)), record["image_id"])
    return results


def _first_row_per_person(instance: torch.Tensor):
    """The sorted distinct persons of (M,) ``instance`` and the first row of each."""
    persons, inverse = torch.unique(instance, return_inverse=True)
    rows = torch.arange(instance.numel())
    first = torch.full((persons.numel(),), instance.numel(), dtype=torch.long)
    first.scatter_reduce_(0, inverse, rows, reduce="amin")
    return persons, first


def _oks_ap(gt_json, results, sigmas):
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(gt_json)
        dt = gt.loadRes(results)
        ev = COCOeval(gt, dt, "keypoints")
        ev.params.kpt_oks_sigmas = np.array(sigmas)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev.stats[0]


def test_round_trip_coco_with_offsets_is_near_exact(coco_records):
    records, gt_json = coco_records
    results = _round_trip_results(records, _codec(17), with_offsets=True)
    ap = _oks_ap(gt_json, results, COCO_PERSON.oks_sigmas)
    print(f"coco_kp_mini round trip, stride 8, with offsets: OKS AP = {ap:.4f}")
    assert ap >= 0.99


def test_round_trip_coco_without_offsets_loses_to_the_stride(coco_records):
    records, gt_json = coco_records
    with_offsets = _oks_ap(gt_json, _round_trip_results(records, _codec(17), True), COCO_PERSON.oks_sigmas)
    without = _oks_ap(gt_json, _round_trip_results(records, _codec(17), False), COCO_PERSON.oks_sigmas)
    print(f"coco_kp_mini round trip, stride 8, without offsets: OKS AP = {without:.4f}")
    assert without < with_offsets
    assert without > 0.5  # cell centres are within s / sqrt(2) of the truth


def test_round_trip_crowdpose_14_keypoints(crowdpose_records):
    records, gt_json = crowdpose_records
    assert _persons(records[0])[0].shape[1] == 14
    ap = _oks_ap(gt_json, _round_trip_results(records, _codec(14), True), CROWDPOSE.oks_sigmas)
    without = _oks_ap(gt_json, _round_trip_results(records, _codec(14), False), CROWDPOSE.oks_sigmas)
    print(f"crowdpose_mini round trip: with offsets {ap:.4f}, without {without:.4f}")
    assert ap >= 0.99


@pytest.mark.parametrize("scale", [1.0, 800 / 480])
def test_every_labelled_person_gets_a_positive_location(coco_records, scale):
    records, _ = coco_records
    codec = _codec(17)
    missed, total = [], 0
    for record in records:
        annotations = [a for a in record["annotations"] if not a.get("iscrowd", 0)]
        if not annotations:
            continue
        keypoints = torch.tensor(
            np.array([a["keypoints"] for a in annotations], dtype=np.float32).reshape(len(annotations), -1, 3)
        )
        keypoints[..., :2] *= scale
        boxes = torch.tensor(
            [BoxMode.convert(a["bbox"], a["bbox_mode"], BoxMode.XYXY_ABS) for a in annotations],
            dtype=torch.float32,
        ) * scale
        locs = _padded_locations(codec, record["height"] * scale, record["width"] * scale)
        assignment = codec.assign(locs, keypoints, boxes)
        owners = set(assignment.owner[assignment.owner >= 0].tolist())
        for p in assignment.trains_keypoints.nonzero().squeeze(1).tolist():
            total += 1
            if p not in owners:
                missed.append((record["image_id"], annotations[p].get("id")))
    assert total >= 80
    assert not missed, f"persons without a positive location: {missed}"
