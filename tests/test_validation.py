"""inspose.data.validation on the genuine samples and on one broken record per error rule."""
import copy
import json
import logging

import pytest

from inspose.data.validation import (
    AnnotationError,
    ValidationReport,
    load_and_validate,
    validate_keypoint_json,
)

COCO_JSON = "coco_kp_mini/annotations/person_keypoints_train2017.json"
CROWDPOSE_JSON = "crowdpose_mini/test_crowdpose.json"


def _labelled_count(keypoints):
    return sum(1 for v in keypoints[2::3] if v > 0)


# ----------------------------------------------------------------------------------------------
# genuine samples


def test_coco_mini_is_valid_without_repairs(load_sample_json):
    coco = load_sample_json(COCO_JSON)
    repaired, report = validate_keypoint_json(coco, "coco.json", 17)
    assert "area_from_bbox" not in report.repairs
    assert not report.changed and report.summary() == []
    assert repaired == coco
    assert len(repaired["annotations"]) == 147


@pytest.mark.parametrize(
    "relative_path", ["mmpose_coco/test_coco.json", "ochuman_mini/test_ochuman.json"]
)
def test_other_17_keypoint_samples_pass(load_sample_json, relative_path):
    _, report = validate_keypoint_json(load_sample_json(relative_path), relative_path, 17)
    assert "area_from_bbox" not in report.repairs


def test_crowdpose_mini_is_repaired(load_sample_json):
    coco = load_sample_json(CROWDPOSE_JSON)
    # What the file holds (read, not assumed): no area anywhere, num_keypoints off on some records.
    ann_ids = [a["id"] for a in coco["annotations"]]
    wrong_count = [a["id"] for a in coco["annotations"]
                   if a["num_keypoints"] != _labelled_count(a["keypoints"])]  # fmt: skip
    assert all("area" not in a for a in coco["annotations"])
    assert len(ann_ids) == 5 and len(wrong_count) == 4

    repaired, report = validate_keypoint_json(coco, "test_crowdpose.json", 14)

    assert report.changed
    assert report.repairs == {
        "area_from_bbox": ann_ids,
        "num_keypoints_recounted": wrong_count,
        "skeleton_dropped": [1],
    }
    assert report.warnings == {}
    assert repaired["categories"][0]["skeleton"] == []
    for ann in repaired["annotations"]:
        assert ann["num_keypoints"] == _labelled_count(ann["keypoints"])
        assert ann["area"] == pytest.approx(ann["bbox"][2] * ann["bbox"][3])


def test_summary_has_one_line_per_kind(load_sample_json):
    _, report = validate_keypoint_json(load_sample_json(CROWDPOSE_JSON), "cp.json", 14)
    lines = report.summary()
    assert len(lines) == 3
    area_line = next(line for line in lines if "area_from_bbox" in line)
    assert area_line.startswith("cp.json:") and "5 annotations" in area_line


def test_input_is_not_mutated(load_sample_json):
    coco = load_sample_json(CROWDPOSE_JSON)
    coco["annotations"][0]["keypoints"][0] = 7.0  # a v=0 point with x != 0: gets repaired
    del coco["annotations"][1]["iscrowd"]
    before = copy.deepcopy(coco)
    repaired, report = validate_keypoint_json(coco, "cp.json", 14)
    assert coco == before
    assert repaired["annotations"][0]["keypoints"][0] == 0
    assert repaired["annotations"][1]["iscrowd"] == 0
    assert report.repairs["unlabelled_xy_zeroed"] == [coco["annotations"][0]["id"]]


def test_load_and_validate_logs_the_summary(crowdpose_mini, caplog):
    path = str(crowdpose_mini / "test_crowdpose.json")
    with caplog.at_level(logging.WARNING, logger="inspose.data.validation"):
        _, report = load_and_validate(path, 14)
    assert [r.getMessage() for r in caplog.records] == report.summary()


# ----------------------------------------------------------------------------------------------
# repairs and warnings on small edits of a genuine file


def _crowdpose(load_sample_json):
    return load_sample_json(CROWDPOSE_JSON)


def test_missing_fields_are_derived(load_sample_json):
    coco = _crowdpose(load_sample_json)
    first, second, third = coco["annotations"][:3]
    del first["bbox"], first["num_keypoints"], second["iscrowd"]
    third["iscrowd"] = 1
    del third["keypoints"]
    repaired, report = validate_keypoint_json(coco, "cp.json", 14)
    assert report.repairs["bbox_from_keypoints"] == [first["id"]]
    assert report.repairs["num_keypoints_set"] == [first["id"]]
    assert report.repairs["iscrowd_set"] == [second["id"]]
    assert report.repairs["crowd_keypoints_zeroed"] == [third["id"]]
    xs = [x for x, v in zip(first["keypoints"][0::3], first["keypoints"][2::3]) if v > 0]
    box = repaired["annotations"][0]["bbox"]
    assert box[0] == min(xs) and box[2] == max(xs) - min(xs)
    assert repaired["annotations"][2]["keypoints"] == [0] * 42


def test_warnings_change_nothing(load_sample_json):
    coco = _crowdpose(load_sample_json)
    outside, flat = coco["annotations"][3], coco["annotations"][4]
    outside["keypoints"][3] = -5  # keypoint 1 of this record is labelled
    assert outside["keypoints"][5] > 0
    flat["bbox"][3] = 0
    for ann in coco["annotations"]:
        ann["area"] = 1.0
        ann["num_keypoints"] = _labelled_count(ann["keypoints"])
        if ann["image_id"] == 106848:
            ann["iscrowd"] = 1
    coco["images"].append({"id": 1, "file_name": "none.jpg", "width": 10, "height": 10})
    coco["categories"][0]["skeleton"] = [[1, 2], [13, 14]]

    repaired, report = validate_keypoint_json(coco, "cp.json", 14)

    assert not report.changed and repaired == coco
    assert report.warnings == {
        "keypoints_outside_image": [outside["id"]],
        "zero_size_box": [flat["id"]],
        "image_without_annotations": [1],
        "crowd_only_image": [106848],
    }


def test_image_info_file_without_annotations(load_sample_json):
    coco = load_sample_json(COCO_JSON)
    del coco["annotations"]
    coco["categories"] = [{"id": i, "name": f"class{i}"} for i in range(1, 81)]  # no keypoints
    _, report = validate_keypoint_json(coco, "image_info_test-dev2017.json", 17)
    assert report == ValidationReport("image_info_test-dev2017.json")


# ----------------------------------------------------------------------------------------------
# errors: each names the file and the record


def _break(coco):
    """The first annotation of ``coco``, to be broken by the test."""
    return coco["annotations"][0]


ERROR_CASES = {
    "wrong_keypoint_count": (lambda c: _break(c)["keypoints"].pop(), "has 41 values, expected 42"),
    "nan_keypoint": (lambda c: _break(c)["keypoints"].__setitem__(3, float("nan")), "NaN"),
    "inf_bbox": (lambda c: _break(c)["bbox"].__setitem__(2, float("inf")), "finite"),
    "string_keypoint": (lambda c: _break(c)["keypoints"].__setitem__(4, "108"), "non-number"),
    "bad_visibility": (lambda c: _break(c)["keypoints"].__setitem__(5, 3), "visibility"),
    "unknown_image_id": (lambda c: _break(c).__setitem__("image_id", 999), "image_id"),
    "negative_box": (lambda c: _break(c)["bbox"].__setitem__(3, -1.0), "negative"),
    "no_box_no_keypoints": (lambda c: (_break(c).pop("bbox"),
                                       _break(c).__setitem__("keypoints", [0] * 42)), "no 'bbox'"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(ERROR_CASES))
def test_annotation_errors_name_file_and_record(load_sample_json, case):
    breaker, expected_text = ERROR_CASES[case]
    coco = _crowdpose(load_sample_json)
    ann_id, image_id = _break(coco)["id"], _break(coco)["image_id"]
    breaker(coco)
    with pytest.raises(AnnotationError) as error:
        validate_keypoint_json(coco, "my_people.json", 14)
    message = str(error.value)
    assert "my_people.json" in message and f"annotation id={ann_id}" in message
    assert f"image id={image_id}" in message or case == "unknown_image_id"
    assert expected_text in message


def test_wrong_keypoint_count_names_counts(load_sample_json):
    coco = load_sample_json(COCO_JSON)  # 17 keypoints, validated as if it had 14
    del coco["categories"][0]["keypoints"]
    with pytest.raises(AnnotationError, match=r"has 51 values, expected 42") as error:
        validate_keypoint_json(coco, "coco.json", 14)
    first = coco["annotations"][0]
    assert f"annotation id={first['id']} (image id={first['image_id']})" in str(error.value)
    assert len(error.value.errors) == len(coco["annotations"])  # crowd records have 51 too
    assert "... and" in str(error.value)  # the message lists the first few only


def test_category_names_count_mismatch(load_sample_json):
    coco = load_sample_json(COCO_JSON)
    with pytest.raises(AnnotationError, match=r"category id=1 name='person'.*17 keypoint names"):
        validate_keypoint_json(coco, "coco.json", 14)


def test_all_problems_are_listed_together(load_sample_json):
    coco = _crowdpose(load_sample_json)
    coco["annotations"][0]["keypoints"].pop()
    coco["annotations"][1]["image_id"] = 5
    coco["images"][0]["width"] = 0
    with pytest.raises(AnnotationError) as error:
        validate_keypoint_json(coco, "cp.json", 14)
    assert len(error.value.errors) == 3
    assert all(line.startswith("cp.json: ") for line in error.value.errors)


def test_missing_file(tmp_path):
    path = tmp_path / "nowhere.json"
    with pytest.raises(AnnotationError, match="nowhere.json.*does not exist"):
        load_and_validate(str(path), 17)


def test_invalid_json(tmp_path, load_sample_json):
    path = tmp_path / "broken.json"
    text = json.dumps(load_sample_json(CROWDPOSE_JSON))
    path.write_text(text[: len(text) // 2])
    with pytest.raises(AnnotationError, match="broken.json.*not valid JSON"):
        load_and_validate(str(path), 14)
