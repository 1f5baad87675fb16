"""Tests of tools/make_submission.py (``inspose.submission``): result validation, the writer, and
end-to-end runs of the tool on tiny synthetic image lists with random weights."""
import copy
import json
import math
import os
import zipfile

import numpy as np
import pytest
import torch

import inspose  # noqa: F401  (compat shim before detectron2)
from inspose.data import KeypointSpec, register_keypoint_dataset
from inspose.data.synthetic import GeneratorSettings, generate_dataset
from inspose.evaluation.results import keypoints_to_results
from inspose.submission import SubmissionError, results_file_name, validate_submission, write_submission

from .conftest import REPO_ROOT
from .model_utils import TINY_CONFIG, tiny_model
from .tool_utils import load_tool

TINY = str(REPO_ROOT / TINY_CONFIG)
IMAGE_IDS = [11, 12, 13]


def make_submission_main(argv):
    """``tools/make_submission.py``'s main: its exit code."""
    return load_tool("make_submission").main(argv)


def good_results(num_keypoints=17, per_image=2, seed=0):
    """Records as the tool makes them (``keypoints_to_results``) for every id in IMAGE_IDS."""
    rng = np.random.default_rng(seed)
    results = []
    for image_id in IMAGE_IDS:
        keypoints = rng.uniform(0, 100, size=(per_image, num_keypoints, 3))
        results += keypoints_to_results(keypoints, rng.uniform(0, 1, size=per_image), image_id)
    return results


# --------------------------------------------------------------------------- validate_submission


@pytest.mark.parametrize("num_keypoints", [17, 14, 1])
def test_good_results_validate(num_keypoints):
    results = good_results(num_keypoints)
    validate_submission(results, IMAGE_IDS, num_keypoints)
    validate_submission([], IMAGE_IDS, num_keypoints)


def _set(field, value):
    def change(record):
        record[field] = value

    return change


def _drop(field):
    def change(record):
        del record[field]

    return change


def _keypoint(position, value):
    def change(record):
        record["keypoints"][position] = value

    return change


BAD_RECORDS = {
    "image_id outside the list": (_set("image_id", 99), "image_id 99, which is not in the image list"),
    "image_id not an int": (_set("image_id", "11"), "image_id '11', not an integer"),
    "too few keypoint values": (lambda r: r["keypoints"].pop(), "50 keypoint values, expected 3 x 17 = 51"),
    "too many keypoint values": (lambda r: r["keypoints"].append(1.0), "52 keypoint values"),
    "NaN keypoint": (_keypoint(7, math.nan), "keypoint value nan at position 7"),
    "infinite keypoint": (_keypoint(0, math.inf), "keypoint value inf at position 0"),
    "string keypoint": (_keypoint(3, "1.0"), "keypoint value '1.0' at position 3"),
    "NaN score": (_set("score", math.nan), "score nan, not a finite float"),
    "string score": (_set("score", "0.9"), "score '0.9', not a finite float"),
    "missing score": (_drop("score"), "lacks field(s) score"),
    "missing keypoints": (_drop("keypoints"), "lacks field(s) keypoints"),
    "bbox present": (_set("bbox", [0, 0, 10, 10]), "has a 'bbox' field"),
    "segmentation present": (_set("segmentation", []), "unexpected field(s) segmentation"),
    "category_id not an int": (_set("category_id", 1.0), "category_id 1.0, not an integer"),
}


@pytest.mark.parametrize("kind", sorted(BAD_RECORDS))
def test_the_first_bad_record_is_named_by_index_and_content(kind):
    change, message = BAD_RECORDS[kind]
    results = good_results()
    change(results[3])
    change(results[5])  # a later bad record must not be the one reported
    with pytest.raises(SubmissionError) as info:
        validate_submission(results, IMAGE_IDS, 17)
    text = str(info.value)
    assert text.startswith("result 3 "), text
    assert message in text, text
    assert "result 5" not in text
    assert str(results[3]["image_id"]) in text  # the record's content is shown


def test_non_records_and_non_lists_are_rejected():
    results = good_results()
    results[1] = [1, 2, 3]
    with pytest.raises(SubmissionError, match="result 1 is a list, not a JSON object"):
        validate_submission(results, IMAGE_IDS, 17)
    with pytest.raises(SubmissionError, match="must be a list"):
        validate_submission({"image_id": 11}, IMAGE_IDS, 17)


def test_number_of_keypoints_comes_from_the_caller():
    results = good_results(num_keypoints=14)
    with pytest.raises(SubmissionError, match="42 keypoint values, expected 3 x 17 = 51"):
        validate_submission(results, IMAGE_IDS, 17)


# --------------------------------------------------------------------------- writer


def test_results_file_name_and_sanitising():
    expected = "person_keypoints_test-dev2017_InsPose_R_50_36ep_results.json"
    assert results_file_name("InsPose_R_50_36ep") == expected
    assert results_file_name("my model/v2") == "person_keypoints_test-dev2017_my-model-v2_results.json"
    with pytest.raises(ValueError):
        results_file_name("///")


def test_writer_puts_the_json_at_the_zip_root(tmp_path):
    results = good_results()
    json_path, zip_path = write_submission(results, str(tmp_path / "out"), "tiny")
    assert json.load(open(json_path)) == results
    with zipfile.ZipFile(zip_path) as archive:
        assert archive.namelist() == [os.path.basename(json_path)]
        assert json.loads(archive.read(os.path.basename(json_path))) == results
    written = sorted(os.listdir(tmp_path / "out"))
    assert written == sorted([os.path.basename(json_path), os.path.basename(zip_path)])


# --------------------------------------------------------------------------- the tool, end to end


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    """Three small synthetic images (and their image records) in a tmp folder."""
    root = tmp_path_factory.mktemp("submission_images")
    generate_dataset(str(root), 1, 3, seed=3, settings=GeneratorSettings(image_size=(96, 128)), workers=1)
    with open(root / "annotations" / "person_keypoints_val.json") as f:
        images = json.load(f)["images"]
    return root / "val", images


def _image_info(tmp_path, images):
    path = tmp_path / "image_info.json"
    path.write_text(json.dumps({"images": images, "categories": [{"id": 1, "name": "person"}]}))
    return str(path)


def _random_weights(tmp_path, *opts):
    path = tmp_path / "random.pth"
    torch.save({"model": tiny_model(*opts).state_dict()}, path)
    return str(path)


def _argv(tmp_path, image_info, image_root, weights, *opts):
    return [
        "--config-file", TINY, "--output", str(tmp_path / "out"), "--name", "tiny",
        "--image-info", image_info, "--image-root", str(image_root),
        "MODEL.WEIGHTS", weights, "MODEL.INSPOSE.SCORE_THRESH_TEST", "0.0",
        "INPUT.MIN_SIZE_TEST", "96", "INPUT.MAX_SIZE_TEST", "128", *opts,
    ]  # fmt: skip


def _register_training_spec(num_keypoints):
    """A training dataset (never loaded) whose metadata has ``num_keypoints`` keypoints."""
    name = f"submission_test_train_k{num_keypoints}"
    names = tuple(f"point_{i}" for i in range(num_keypoints))
    spec = KeypointSpec(names, ((0, 1),), ((0, 1),), (0.05,) * num_keypoints)
    register_keypoint_dataset(name, "/nonexistent.json", "/nonexistent", spec)
    return name


@pytest.mark.parametrize("num_keypoints", [17, 14])
def test_tool_writes_a_valid_submission(tmp_path, image_folder, num_keypoints):
    image_root, images = image_folder
    opts = []
    if num_keypoints != 17:
        train = _register_training_spec(num_keypoints)
        opts = ["MODEL.INSPOSE.NUM_KEYPOINTS", str(num_keypoints), "DATASETS.TRAIN", f"('{train}',)"]
    weights = _random_weights(tmp_path, *opts)
    argv = _argv(tmp_path, _image_info(tmp_path, images), image_root, weights, *opts)
    assert make_submission_main(argv) == 0

    json_path = tmp_path / "out" / "person_keypoints_test-dev2017_tiny_results.json"
    zip_path = tmp_path / "out" / "person_keypoints_test-dev2017_tiny_results.zip"
    assert json_path.is_file() and zip_path.is_file()
    results = json.loads(json_path.read_text())
    with zipfile.ZipFile(zip_path) as archive:
        assert archive.namelist() == [json_path.name]
        assert json.loads(archive.read(json_path.name)) == results
    listed = [image["id"] for image in images]
    validate_submission(results, listed, num_keypoints)
    assert len(results) > 0, "score threshold 0 must give detections"
    assert {r["image_id"] for r in results} <= set(listed)
    assert all(len(r["keypoints"]) == 3 * num_keypoints and "bbox" not in r for r in results)
    width = {image["id"]: image["width"] for image in images}
    assert all(-1.0 <= x <= width[r["image_id"]] for r in results for x in r["keypoints"][0::3])


def test_corrupt_image_fails_with_its_path_and_writes_nothing(tmp_path, image_folder, capsys):
    image_root, images = image_folder
    folder = tmp_path / "images"
    folder.mkdir()
    for image in images[:2]:
        (folder / image["file_name"]).write_bytes((image_root / image["file_name"]).read_bytes())
    broken = copy.deepcopy(images[1])
    broken.update(id=999, file_name="broken.jpg")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg at all")
    info = _image_info(tmp_path, [images[0], broken, images[1]])

    code = make_submission_main(_argv(tmp_path, info, folder, _random_weights(tmp_path)))
    assert code == 1
    error = capsys.readouterr().err
    assert str(folder / "broken.jpg") in error and "cannot be decoded" in error
    out = tmp_path / "out"
    assert not out.exists() or not [n for n in os.listdir(out) if "results" in n]


def test_missing_image_and_missing_weights_fail_clearly(tmp_path, image_folder, capsys):
    image_root, images = image_folder
    missing = dict(images[0], id=5, file_name="gone.jpg")
    info = _image_info(tmp_path, [missing])
    assert make_submission_main(_argv(tmp_path, info, image_root, _random_weights(tmp_path))) == 1
    assert str(image_root / "gone.jpg") in capsys.readouterr().err
    assert make_submission_main(_argv(tmp_path, info, image_root, str(tmp_path / "none.pth"))) == 1
    assert "none.pth does not exist" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
