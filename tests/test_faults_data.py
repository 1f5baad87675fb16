"""Data faults: missing paths, unreadable images, bad annotation records, a keypoint count that
does not match the config. Each error names the file, the record or the config key.

A tiny synthetic dataset (6 + 2 images of 96-128 px) is broken a different way in each test and
registered under a new name, as a user's dataset would be.
"""
import json
import logging
import math
import os

import pytest

import inspose  # noqa: F401  (before detectron2)
from detectron2.data import DatasetCatalog

from inspose.data import (
    AnnotationError,
    ImageReadError,
    InsPoseDatasetMapper,
    KeypointCountError,
    SkippedImages,
)
from inspose.data.synthetic import GeneratorSettings, generate_dataset
from inspose.engine import Trainer

from .model_utils import register_coco_person, tiny_cfg, tiny_model

SMALL_INPUT = ("INPUT.MIN_SIZE_TEST", 96, "INPUT.MAX_SIZE_TEST", 128)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """{"root", "train_json", "val_json"} of a tiny synthetic dataset; repairs cached beside it."""
    root = tmp_path_factory.mktemp("faults_data")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("INSPOSE_CACHE", str(root / "cache"))
        settings = GeneratorSettings(image_size=(96, 128), crowd_probability=0.0)
        summary = generate_dataset(str(root), 6, 2, seed=3, settings=settings, workers=1)
        yield {"root": root, "train_json": summary["train_json"], "val_json": summary["val_json"]}


def register(json_file, image_root) -> str:
    """Register a COCO-person dataset under a new name; returns the name."""
    return register_coco_person(json_file, image_root, prefix="faults")


def broken_copy(dataset, tmp_path, change) -> str:
    """The train json after ``change(coco)``, written under ``tmp_path``; returns its path."""
    with open(dataset["train_json"]) as f:
        coco = json.load(f)
    change(coco)
    path = str(tmp_path / "people.json")
    with open(path, "w") as f:
        json.dump(coco, f)
    return path


def truncate(path) -> None:
    """Keep the first half of a file (a JPEG cut off mid-download)."""
    with open(path, "rb") as f:
        data = f.read()
    with open(path, "wb") as f:
        f.write(data[: len(data) // 2])


def break_image(path, fault: str) -> None:
    """``fault``: "deleted" or "truncated"."""
    if fault == "deleted":
        os.remove(path)
    else:
        truncate(path)


def copy_images(dataset, split, tmp_path):
    folder = tmp_path / split
    folder.mkdir()
    for name in os.listdir(dataset["root"] / split):
        (folder / name).write_bytes((dataset["root"] / split / name).read_bytes())
    return folder


# ---------------------------------------------------------------- paths that do not exist


def test_missing_annotation_file(dataset, tmp_path):
    missing = tmp_path / "nowhere.json"
    name = register(missing, dataset["root"] / "train")
    with pytest.raises(AnnotationError, match=f"^{missing}: annotation file does not exist$"):
        DatasetCatalog.get(name)


def test_missing_image_folder(dataset, tmp_path):
    name = register(dataset["train_json"], tmp_path / "no_images")
    expected = f"dataset '{name}': image folder {tmp_path / 'no_images'} does not exist"
    with pytest.raises(FileNotFoundError, match=f"^{expected}$"):
        DatasetCatalog.get(name)


# ---------------------------------------------------------------- records that cannot be used


def _first_person(coco):
    return next(a for a in coco["annotations"] if not a["iscrowd"])


def _drop_one_value(coco):
    _first_person(coco)["keypoints"].pop()


def _nan_x(coco):
    person = _first_person(coco)
    labelled = person["keypoints"][2::3].index(2)
    person["keypoints"][3 * labelled] = math.nan


ANNOTATION_ERRORS = {
    "wrong_keypoint_count": (
        _drop_one_value,
        "'keypoints' has 50 values, expected 51 (3 x 17 keypoints)",
    ),
    "nan_coordinate": (_nan_x, "'keypoints' contains NaN, inf or a non-number"),
}


@pytest.mark.parametrize("case", sorted(ANNOTATION_ERRORS))
def test_bad_record_names_file_and_record(dataset, tmp_path, case):
    change, problem = ANNOTATION_ERRORS[case]
    path = broken_copy(dataset, tmp_path, change)
    with open(dataset["train_json"]) as f:
        person = _first_person(json.load(f))
    name = register(path, dataset["root"] / "train")
    with pytest.raises(AnnotationError) as error:
        DatasetCatalog.get(name)
    record = f"annotation id={person['id']} (image id={person['image_id']})"
    assert str(error.value) == f"{path}: {record}: {problem}"


# ---------------------------------------------------------------- records repaired or warned about


def _negative_x(coco):
    person = _first_person(coco)
    labelled = person["keypoints"][2::3].index(2)
    person["keypoints"][3 * labelled] = -5.0
    return [person["id"]]


def _beyond_width(coco):
    person = _first_person(coco)
    width = next(i["width"] for i in coco["images"] if i["id"] == person["image_id"])
    labelled = person["keypoints"][2::3].index(2)
    person["keypoints"][3 * labelled] = width + 10.0
    return [person["id"]]


def _no_bbox(coco):
    person = _first_person(coco)
    del person["bbox"]
    return [person["id"]]


def _no_area(coco):
    person = _first_person(coco)
    del person["area"]
    return [person["id"]]


def _no_persons(coco):
    image_id = coco["images"][0]["id"]
    coco["annotations"] = [a for a in coco["annotations"] if a["image_id"] != image_id]
    return [image_id]


def _crowd_only(coco):
    image_id = coco["images"][1]["id"]
    for annotation in coco["annotations"]:
        if annotation["image_id"] == image_id:
            annotation["iscrowd"] = 1
    return [image_id]


KEPT_RECORDS = {
    "negative_coordinate": (_negative_x, "warning keypoints_outside_image"),
    "keypoint_beyond_width": (_beyond_width, "warning keypoints_outside_image"),
    "missing_bbox": (_no_bbox, "repaired bbox_from_keypoints"),
    "missing_area": (_no_area, "repaired area_from_bbox"),
    "image_without_persons": (_no_persons, "warning image_without_annotations"),
    "crowd_only_image": (_crowd_only, "warning crowd_only_image"),
}


@pytest.mark.parametrize("case", sorted(KEPT_RECORDS))
def test_usable_record_is_kept_with_a_logged_line(dataset, tmp_path, monkeypatch, caplog, case):
    monkeypatch.setenv("INSPOSE_CACHE", str(tmp_path / "cache"))
    change, kind = KEPT_RECORDS[case]
    ids = []
    path = broken_copy(dataset, tmp_path, lambda coco: ids.extend(change(coco)))
    name = register(path, dataset["root"] / "train")
    with caplog.at_level(logging.WARNING, logger="inspose.data"):
        records = DatasetCatalog.get(name)
    assert len(records) == 6  # every image kept, as the file lists them
    lines = [r.getMessage() for r in caplog.records if f": {kind} " in r.getMessage()]
    assert len(lines) == 1 and lines[0].startswith(f"{path}: {kind} ")
    assert lines[0].endswith(f"1 {'image' if 'image' in case else 'annotation'}, ids {ids[0]}")


# ---------------------------------------------------------------- unreadable images


@pytest.fixture
def train_set(dataset, tmp_path):
    """(name, records) of the train split on a copy of its images (free to break)."""
    name = register(dataset["train_json"], copy_images(dataset, "train", tmp_path))
    return name, DatasetCatalog.get(name)


@pytest.mark.parametrize("fault", ["deleted", "truncated"])
def test_training_mapper_skips_unreadable_image(train_set, caplog, fault):
    name, records = train_set
    path = records[0]["file_name"]
    break_image(path, fault)
    mapper = InsPoseDatasetMapper(tiny_cfg("DATASETS.TRAIN", f"('{name}',)"), is_train=True)
    before = SkippedImages.count
    with caplog.at_level(logging.WARNING, logger="inspose.data.image_io"):
        assert mapper(records[0]) is None  # detectron2's MapDataset then takes another image
        assert mapper(records[1]) is not None
    assert SkippedImages.count == before + 1
    expected = f"image {path} (image_id {records[0]['image_id']}) "
    expected += "does not exist" if fault == "deleted" else "cannot be decoded"
    message = caplog.records[-1].getMessage()
    assert message.startswith(f"Skipping an unreadable training image ({before + 1} so far): ")
    assert expected in message


@pytest.mark.parametrize("fault", ["deleted", "truncated"])
def test_evaluation_mapper_raises_for_unreadable_image(train_set, fault):
    name, records = train_set
    path = records[0]["file_name"]
    break_image(path, fault)
    mapper = InsPoseDatasetMapper(tiny_cfg(), is_train=False, dataset_names=[name])
    with pytest.raises(ImageReadError, match=f"^image {path} "):
        mapper(records[0])


def test_evaluation_stops_at_a_truncated_image(dataset, tmp_path):
    name = register(dataset["val_json"], copy_images(dataset, "val", tmp_path))
    bad = DatasetCatalog.get(name)[-1]["file_name"]
    truncate(bad)
    cfg = tiny_cfg("DATASETS.TEST", f"('{name}',)", "OUTPUT_DIR", str(tmp_path), *SMALL_INPUT)
    with pytest.raises(ImageReadError, match=f"^image {bad} .* cannot be decoded"):
        Trainer.test(cfg, tiny_model())


# ---------------------------------------------------------------- K of the config vs the dataset


def _mismatch_message(name):
    return f"dataset '{name}' has 17 keypoints .* but MODEL.INSPOSE.NUM_KEYPOINTS is 14"


def test_training_checks_num_keypoints(dataset, tmp_path):
    name = register(dataset["train_json"], dataset["root"] / "train")
    cfg = tiny_cfg("MODEL.INSPOSE.NUM_KEYPOINTS", 14, "DATASETS.TRAIN", f"('{name}',)",
                   "DATASETS.TEST", "()", "OUTPUT_DIR", str(tmp_path))  # fmt: skip
    with pytest.raises(KeypointCountError, match=_mismatch_message(name)):
        Trainer(cfg)


def test_evaluation_only_checks_num_keypoints(dataset, tmp_path):
    name = register(dataset["val_json"], dataset["root"] / "val")
    opts = ("MODEL.INSPOSE.NUM_KEYPOINTS", 14, "DATASETS.TEST", f"('{name}',)")
    cfg = tiny_cfg(*opts, "OUTPUT_DIR", str(tmp_path), *SMALL_INPUT)
    with pytest.raises(KeypointCountError, match=_mismatch_message(name)):
        Trainer.test(cfg, tiny_model(*opts))
