"""Tests of the synthetic COCO person-keypoint generator (tiny images, a few seconds in all)."""

import hashlib
import json
import os

import numpy as np
import pytest

import inspose  # noqa: F401  (installs the detectron2 v0.6 shim before detectron2 is imported)
import pycocotools.mask as mask_util
from pycocotools.coco import COCO

from inspose.data.keypoint_spec import COCO_PERSON
from inspose.data.synthetic import (
    GeneratorSettings,
    draw_ground_truth,
    generate_dataset,
    render_image,
)
from inspose.data.synthetic.skeleton import KEYPOINT_NAMES, BodyShape, JointAngles, build_figure

TINY = GeneratorSettings(image_size=(96, 128))
NUM_TRAIN, NUM_VAL = 16, 6


def _generate(root, seed=0, settings=TINY, num_train=NUM_TRAIN, num_val=NUM_VAL, workers=1):
    generate_dataset(str(root), num_train, num_val, seed=seed, settings=settings, workers=workers)
    return root


def _json_path(root, split):
    return os.path.join(str(root), "annotations", f"person_keypoints_{split}.json")


def _file_digests(root):
    """{relative path: sha256} of every file under ``root``."""
    digests = {}
    for folder, _, names in os.walk(str(root)):
        for name in names:
            path = os.path.join(folder, name)
            with open(path, "rb") as f:
                digests[os.path.relpath(path, str(root))] = hashlib.sha256(f.read()).hexdigest()
    return digests


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return _generate(tmp_path_factory.mktemp("synthetic"))


@pytest.fixture(scope="module")
def splits(dataset):
    return {split: json.load(open(_json_path(dataset, split))) for split in ("train", "val")}


def test_writes_the_expected_layout(dataset, splits):
    for split, count in (("train", NUM_TRAIN), ("val", NUM_VAL)):
        assert os.path.isfile(_json_path(dataset, split))
        jpgs = sorted(
            n for n in os.listdir(os.path.join(str(dataset), split)) if n.endswith(".jpg")
        )
        assert jpgs == sorted(image["file_name"] for image in splits[split]["images"])
        assert len(jpgs) == count


def test_same_seed_gives_identical_bytes_for_any_worker_count(dataset, tmp_path):
    again = _generate(tmp_path / "again", workers=2)
    assert _file_digests(again) == _file_digests(dataset)


def test_different_seed_gives_different_data(dataset, tmp_path):
    other = _file_digests(_generate(tmp_path / "other", seed=1))
    mine = _file_digests(dataset)
    assert other.keys() == mine.keys()
    differing = [path for path in mine if mine[path] != other[path]]
    assert len(differing) == len(mine)


def test_pycocotools_loads_and_category_is_coco_person(dataset):
    coco = COCO(_json_path(dataset, "train"))
    (category,) = coco.loadCats(coco.getCatIds())
    assert category["id"] == 1 and category["name"] == "person"
    assert category["keypoints"] == list(COCO_PERSON.names)
    assert len(category["skeleton"]) == 19 and [16, 14] in category["skeleton"]
    assert len(coco.getImgIds()) == NUM_TRAIN


def test_every_annotation_is_valid_coco(splits):
    for data in splits.values():
        images = {image["id"]: image for image in data["images"]}
        ids = [annotation["id"] for annotation in data["annotations"]]
        assert len(ids) == len(set(ids))
        for annotation in data["annotations"]:
            _check_annotation(annotation, images[annotation["image_id"]])


def _check_annotation(annotation, image):
    width, height = image["width"], image["height"]
    assert annotation["category_id"] == 1 and annotation["iscrowd"] in (0, 1)
    keypoints = np.asarray(annotation["keypoints"], dtype=np.float64).reshape(-1, 3)
    assert keypoints.shape == (17, 3)
    assert annotation["num_keypoints"] == int((keypoints[:, 2] > 0).sum())
    assert set(keypoints[:, 2]) <= {0, 1, 2}
    unlabelled, labelled = keypoints[keypoints[:, 2] == 0], keypoints[keypoints[:, 2] > 0]
    assert (unlabelled[:, :2] == 0).all()
    assert (labelled[:, 0] >= 0).all() and (labelled[:, 0] <= width - 1).all()
    assert (labelled[:, 1] >= 0).all() and (labelled[:, 1] <= height - 1).all()
    x, y, w, h = annotation["bbox"]
    assert x >= 0 and y >= 0 and w > 0 and h > 0 and x + w <= width and y + h <= height
    assert 0 < annotation["area"] <= w * h
    if annotation["iscrowd"]:
        assert annotation["num_keypoints"] == 0
        assert mask_util.area(_rle(annotation)) == annotation["area"]


def _rle(annotation):
    segmentation = dict(annotation["segmentation"])
    segmentation["counts"] = segmentation["counts"].encode("ascii")
    return segmentation


def test_area_and_bbox_come_from_the_visible_mask():
    for index in range(4):
        scene = render_image(3, "train", index, TINY)
        assert len(scene.masks) == len(scene.annotations) > 0
        for annotation, mask in zip(scene.annotations, scene.masks):
            assert annotation["area"] == mask.sum()
            rows, cols = np.nonzero(mask)
            x0, y0 = cols.min(), rows.min()
            assert annotation["bbox"] == [x0, y0, cols.max() - x0 + 1, rows.max() - y0 + 1]
            visible = np.asarray(annotation["keypoints"]).reshape(-1, 3)
            for x, y, v in visible[visible[:, 2] == 2]:
                assert mask[
                    int(round(y)), int(round(x))
                ], "a v=2 keypoint must be on the visible mask"


def test_occluded_and_truncated_keypoints_appear(splits):
    flags = np.concatenate(
        [
            np.asarray(a["keypoints"])[2::3]
            for a in splits["train"]["annotations"]
            if not a["iscrowd"]
        ]
    )
    assert (flags == 1).any(), "no occluded (v=1) keypoint in the train split"
    assert (flags == 0).any(), "no unlabelled (v=0) keypoint in the train split"
    assert (flags == 2).mean() > 0.5


def test_crowd_region_when_forced(tmp_path):
    settings = GeneratorSettings(image_size=(96, 128), crowd_probability=1.0)
    data = json.load(
        open(_json_path(_generate(tmp_path, settings=settings, num_train=3, num_val=1), "train"))
    )
    images = {image["id"]: image for image in data["images"]}
    crowds = [a for a in data["annotations"] if a["iscrowd"] == 1]
    assert {a["image_id"] for a in crowds} == set(images)
    for crowd in crowds:
        image = images[crowd["image_id"]]
        assert crowd["segmentation"]["size"] == [image["height"], image["width"]]
        assert isinstance(crowd["segmentation"]["counts"], str)
        assert crowd["keypoints"] == [0] * 51
        assert list(mask_util.toBbox(_rle(crowd))) == crowd["bbox"]


def test_train_and_val_are_disjoint(dataset, splits):
    train, val = splits["train"]["images"], splits["val"]["images"]
    assert not {i["id"] for i in train} & {i["id"] for i in val}
    assert not {i["file_name"] for i in train} & {i["file_name"] for i in val}
    digests = _file_digests(dataset)
    train_hashes = {d for path, d in digests.items() if path.startswith("train")}
    val_hashes = {d for path, d in digests.items() if path.startswith("val")}
    assert len(train_hashes) == NUM_TRAIN and not train_hashes & val_hashes


def test_detectron2_load_coco_json(dataset):
    from detectron2.data.datasets.coco import load_coco_json

    records = load_coco_json(
        _json_path(dataset, "val"),
        os.path.join(str(dataset), "val"),
        "inspose_synthetic_test_val",
        extra_annotation_keys=["area", "num_keypoints"],
    )
    assert len(records) == NUM_VAL
    for record in records:
        assert os.path.isfile(record["file_name"])
        for annotation in record["annotations"]:
            assert (
                len(annotation["keypoints"]) == 51
                and "area" in annotation
                and "num_keypoints" in annotation
            )


def test_left_and_right_are_anatomical():
    front = dict(zip(KEYPOINT_NAMES, build_figure(BodyShape(), JointAngles(), yaw=0.0).keypoints))
    for part in ("eye", "ear", "shoulder", "elbow", "wrist", "hip", "knee", "ankle"):
        assert (
            front[f"left_{part}"][0] > front[f"right_{part}"][0]
        ), f"facing the camera, left_{part} is on the right"
    facing_right = build_figure(BodyShape(), JointAngles(), yaw=90.0)
    profile = dict(zip(KEYPOINT_NAMES, facing_right.keypoints))
    assert profile["nose"][0] > facing_right.joints["head"][0]
    assert (
        profile["right_shoulder"][2] > profile["left_shoulder"][2]
    ), "facing right, the right side is near"


def test_settings_are_validated():
    with pytest.raises(ValueError):
        GeneratorSettings(occlusion=1.5)
    with pytest.raises(ValueError):
        GeneratorSettings(min_persons=4, max_persons=2)
    with pytest.raises(ValueError):
        GeneratorSettings(image_size=(400, 300))


def test_draw_ground_truth_draws_on_a_copy():
    scene = render_image(0, "val", 0, TINY)
    before = scene.image.copy()
    drawn = draw_ground_truth(scene.image, scene.annotations)
    assert drawn.shape == scene.image.shape and (scene.image == before).all()
    assert (drawn != scene.image).any()
