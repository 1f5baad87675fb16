"""The training mapper's horizontal flip on genuine COCO and CrowdPose records.

A flip of probability 1 is forced through the mapper's ``augmentations`` argument; the flip indices
come from ``from_config`` (the dataset's metadata). The expected keypoints are worked out here from
the metadata's named flip pairs: keypoint k of the flipped person is the old keypoint partner(k),
at x' = W - x (detectron2's continuous frame), the same y and visibility.
"""
import copy
import json
from collections import Counter

import numpy as np
import pytest
import torch
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data import transforms as T
from detectron2.structures import BoxMode

from inspose.data import InsPoseDatasetMapper

from .model_utils import register_coco_person, tiny_cfg

DATASETS = {17: "coco_kp_mini_dataset", 14: "crowdpose_mini_dataset"}


@pytest.fixture(params=sorted(DATASETS), ids=lambda k: f"K{k}")
def dataset(request):
    """(name, K) of a registered genuine keypoint dataset: COCO (17) or CrowdPose (14)."""
    return request.getfixturevalue(DATASETS[request.param]), request.param


def _partner_from_metadata(name: str):
    """{k: index of the keypoint k becomes after a flip}, from the names in the metadata."""
    meta = MetadataCatalog.get(name)
    index = {n: i for i, n in enumerate(meta.keypoint_names)}
    partner = {i: i for i in range(len(meta.keypoint_names))}
    for a, b in meta.keypoint_flip_map:
        partner[index[a]], partner[index[b]] = index[b], index[a]
    return partner


def _hand_made_person(num_keypoints: int) -> dict:
    """A person whose keypoints all differ in x, y and (1 or 2) visibility; the last unlabelled."""
    keypoints = []
    for k in range(num_keypoints):
        labelled = k < num_keypoints - 1
        keypoints += [40.25 + 9 * k, 30.5 + 5 * k, 1 + k % 2] if labelled else [0.0, 0.0, 0]
    return {"bbox": [35.0, 25.0, 170.0, 90.0], "bbox_mode": BoxMode.XYWH_ABS, "category_id": 0,
            "iscrowd": 0, "keypoints": keypoints,
            "segmentation": [[35.0, 25.0, 205.0, 25.0, 205.0, 115.0, 35.0, 115.0]]}  # fmt: skip


def _crowd(x, y, w, h) -> dict:
    return {"bbox": [x, y, w, h], "bbox_mode": BoxMode.XYWH_ABS, "category_id": 0, "iscrowd": 1}


def _record(name: str, num_keypoints: int) -> dict:
    """The dataset's first record with its real annotations, a hand-made person and a crowd box."""
    record = copy.deepcopy(DatasetCatalog.get(name)[0])
    record["annotations"] += [_hand_made_person(num_keypoints), _crowd(300.0, 40.0, 120.5, 60.0)]
    return record


def _mapper(name: str, num_keypoints: int, augmentations) -> InsPoseDatasetMapper:
    cfg = tiny_cfg("DATASETS.TRAIN", f"('{name}',)", "MODEL.INSPOSE.NUM_KEYPOINTS", num_keypoints,
                   "INPUT.RANDOM_FLIP", "horizontal")  # fmt: skip
    return InsPoseDatasetMapper(cfg, is_train=True, augmentations=augmentations)


def _expected_keypoints(annotation, partner, scale_x, scale_y, width):
    """(K, 3) keypoints after a resize by (scale_x, scale_y) then a flip in an image ``width`` wide."""
    before = np.asarray(annotation["keypoints"], dtype=np.float64).reshape(-1, 3)
    after = np.zeros_like(before)
    for k, source in partner.items():
        x, y, v = before[source]
        if v > 0:
            after[k] = (width - x * scale_x, y * scale_y, v)
    return after


def _expected_box(bbox, scale_x, scale_y, width):
    x, y, w, h = bbox
    return [width - (x + w) * scale_x, y * scale_y, width - x * scale_x, (y + h) * scale_y]


def _check_flipped(out, record, partner, width, scale=(1.0, 1.0)):
    persons = [a for a in record["annotations"] if not a.get("iscrowd", 0)]
    crowds = [a for a in record["annotations"] if a.get("iscrowd", 0)]
    keypoints = out["instances"].gt_keypoints.tensor.numpy()
    assert keypoints.shape == (len(persons), len(partner), 3)
    for person, got in zip(persons, keypoints):
        np.testing.assert_allclose(got, _expected_keypoints(person, partner, *scale, width), atol=1e-3)
    boxes = [_expected_box(p["bbox"], *scale, width) for p in persons]
    np.testing.assert_allclose(out["instances"].gt_boxes.tensor.numpy(), boxes, atol=1e-3)
    crowd_boxes = [_expected_box(c["bbox"], *scale, width) for c in crowds]
    np.testing.assert_allclose(out["crowd_boxes"].tensor.numpy(), np.reshape(crowd_boxes, (-1, 4)), atol=1e-3)


def test_flip_swaps_left_and_right_and_mirrors_x(dataset):
    name, num_keypoints = dataset
    record = _record(name, num_keypoints)
    partner = _partner_from_metadata(name)
    assert sum(k != p for k, p in partner.items()) >= 2  # the dataset has left/right pairs
    out = _mapper(name, num_keypoints, [T.RandomFlip(prob=1.0, horizontal=True)])(record)
    width = record["width"]
    assert tuple(out["image"].shape[1:]) == (record["height"], width)
    _check_flipped(out, record, partner, width)
    # the hand-made person: a keypoint's visibility travels with it to its partner's slot
    hand_made = out["instances"].gt_keypoints.tensor[-1]
    for k, source in partner.items():
        if source != k and source < num_keypoints - 1:
            assert hand_made[k, 2] == 1 + source % 2


def test_flip_after_resize_mirrors_in_the_resized_frame(dataset):
    name, num_keypoints = dataset
    record = _record(name, num_keypoints)
    resize_then_flip = [T.ResizeShortestEdge(240, 1000), T.RandomFlip(prob=1.0, horizontal=True)]
    out = _mapper(name, num_keypoints, resize_then_flip)(record)
    height, width = out["image"].shape[1:]
    assert min(height, width) == 240
    scale = (width / record["width"], height / record["height"])
    _check_flipped(out, record, _partner_from_metadata(name), width, scale)


def test_flipped_image_is_the_mirrored_original(coco_kp_mini_dataset):
    record = _record(coco_kp_mini_dataset, 17)
    plain = _mapper(coco_kp_mini_dataset, 17, [])(copy.deepcopy(record))
    flipped = _mapper(coco_kp_mini_dataset, 17, [T.RandomFlip(prob=1.0, horizontal=True)])(record)
    assert torch.equal(flipped["image"], plain["image"].flip(-1))
    # and without a flip nothing moves: the flip checks above cannot pass by accident
    unflipped = plain["instances"].gt_keypoints.tensor[-1]
    assert torch.allclose(unflipped[:-1, 0], torch.tensor([40.25 + 9 * k for k in range(16)]))


# ---------------------------------------------------------------- mixed segmentation


def test_mapper_accepts_a_person_without_segmentation_beside_one_with(load_sample_json, coco_kp_mini, tmp_path):
    """A keypoint-only person ("segmentation": []) beside one with a polygon trains."""
    coco = load_sample_json("coco_kp_mini/annotations/person_keypoints_train2017.json")
    persons = [a for a in coco["annotations"] if not a["iscrowd"]]
    image_id = Counter(a["image_id"] for a in persons).most_common(1)[0][0]
    second = [a for a in persons if a["image_id"] == image_id][1]
    second["segmentation"] = []  # valid COCO: an annotation with keypoints and no mask
    json_file = tmp_path / "no_segmentation.json"
    json_file.write_text(json.dumps(coco))
    name = register_coco_person(json_file, coco_kp_mini / "train2017", prefix="test_noseg")
    record = next(r for r in DatasetCatalog.get(name) if r["image_id"] == image_id)
    out = _mapper(name, 17, [T.RandomFlip(prob=1.0, horizontal=True)])(record)
    expected = sum(not a.get("iscrowd", 0) for a in record["annotations"])
    assert len(out["instances"]) == expected
