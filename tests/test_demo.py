"""Pose drawing (colours by body side, hidden keypoints, broken metadata) and tools/demo.py
(``inspose.demo``)."""
import json
import sys
import uuid

import cv2
import numpy as np
import pytest
from detectron2.data import MetadataCatalog

from inspose.data import COCO_PERSON, KeypointSpec
from inspose.demo import expand_inputs
from inspose.visualization import PoseStyle, draw_poses

from .conftest import REPO_ROOT
from .model_utils import TINY_CONFIG
from .tool_utils import load_tool

NOSE, LEFT_SHOULDER, RIGHT_SHOULDER, LEFT_HIP = 0, 5, 6, 11
CROWDPOSE = KeypointSpec(
    ("left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
     "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle", "head", "neck"),
    ((0, 1), (2, 3), (4, 5), (6, 7), (8, 9), (10, 11)),
    ((12, 13), (13, 0), (13, 1), (0, 2), (2, 4), (1, 3), (3, 5)),
    (0.05,) * 14,
)  # fmt: skip


def _metadata(spec: KeypointSpec, **extra):
    metadata = MetadataCatalog.get(f"demo_test_{uuid.uuid4().hex[:8]}")
    metadata.set(**{**spec.to_metadata(), **extra})
    return metadata


def _person(points, k=17):
    """(1, K, 3): the given {index: (x, y)} at confidence 1, every other keypoint hidden (0)."""
    keypoints = np.zeros((1, k, 3))
    for index, (x, y) in points.items():
        keypoints[0, index] = (x + 0.5, y + 0.5, 1.0)  # the centre of pixel (x, y)
    return keypoints


def _kind(pixel_bgr) -> str:
    blue, green, red = (int(v) for v in pixel_bgr)
    if blue > 200 and red < 80:
        return "blue"
    if red > 200 and blue < 60 and 100 < green < 180:
        return "orange"
    if red > 180 and blue > 180 and green < 60:
        return "magenta"
    return "other" if blue + green + red else "black"


COCO_STYLE = PoseStyle.from_metadata(_metadata(COCO_PERSON))
BLANK = np.zeros((100, 100, 3), np.uint8)
BODY = {NOSE: (50, 15), LEFT_SHOULDER: (75, 50), RIGHT_SHOULDER: (25, 50)}


def test_keypoints_and_limbs_are_coloured_by_body_side():
    drawn = draw_poses(BLANK, _person(BODY), [0.9], COCO_STYLE, radius=4, show_scores=False)
    assert _kind(drawn[15, 50]) == "magenta"  # nose
    assert _kind(drawn[50, 75]) == "blue"  # left shoulder
    assert _kind(drawn[50, 25]) == "orange"  # right shoulder
    assert _kind(drawn[50, 50]) == "magenta"  # the shoulder line joins both sides: centre
    assert not BLANK.any()  # the input is not drawn on


def test_limbs_of_one_side_take_its_colour():
    person = _person({LEFT_SHOULDER: (30, 20), LEFT_HIP: (30, 80)})
    drawn = draw_poses(BLANK, person, [0.9], COCO_STYLE, radius=3, show_scores=False)
    assert _kind(drawn[50, 30]) == "blue"


def test_low_confidence_keypoints_and_their_limbs_are_hidden():
    person = _person({**BODY, LEFT_HIP: (75, 90)})
    person[0, LEFT_HIP, 2] = 0.01
    drawn = draw_poses(BLANK, person, [0.9], COCO_STYLE, keypoint_threshold=0.05, radius=3)
    assert _kind(drawn[90, 75]) == "black" and _kind(drawn[70, 75]) == "black"
    assert _kind(drawn[50, 75]) == "blue"
    shown = draw_poses(BLANK, person, [0.9], COCO_STYLE, keypoint_threshold=0.0, radius=3)
    assert _kind(shown[90, 75]) == "blue" and _kind(shown[70, 75]) == "blue"


def test_the_score_is_written_and_a_hidden_person_is_not_drawn():
    drawn = draw_poses(BLANK, _person({LEFT_HIP: (50, 60)}), [0.87], COCO_STYLE, radius=2)
    assert (drawn[:55].min(axis=2) > 200).sum() > 5  # white text above the person
    nobody = _person({LEFT_HIP: (50, 60)})
    nobody[..., 2] = 0.0
    assert not draw_poses(BLANK, nobody, [0.87], COCO_STYLE).any()


@pytest.mark.parametrize("empty", [np.zeros((0, 17, 3)), np.zeros((0,)), []], ids=["0xKx3", "flat", "list"])
def test_an_image_without_persons_is_returned_unchanged(empty):
    image = np.full((40, 50, 3), 7, np.uint8)
    drawn = draw_poses(image, empty, [], COCO_STYLE)
    assert drawn is not image and np.array_equal(drawn, image)


def test_fourteen_keypoints_take_their_sides_from_names():
    style = PoseStyle.from_metadata(_metadata(CROWDPOSE))
    assert style.sides[:2] == ("left", "right") and style.sides[12:] == ("centre", "centre")
    person = _person({12: (50, 10), 13: (50, 40), 0: (80, 50)}, k=14)
    drawn = draw_poses(BLANK, person, [0.5], style, radius=3, show_scores=False)
    assert _kind(drawn[25, 50]) == "magenta"  # head - neck
    assert _kind(drawn[50, 80]) == "blue"


def test_broken_skeleton_metadata_does_not_crash_drawing():
    rules = list(COCO_PERSON.connection_rules()) + [("nose", "tail", (0, 0, 0)), ("nose",)]
    style = PoseStyle.from_metadata(_metadata(COCO_PERSON, keypoint_connection_rules=rules))
    assert len(style.links) == len(COCO_PERSON.skeleton)
    broken = PoseStyle(COCO_STYLE.sides, ((NOSE, 99), (-3, NOSE), (LEFT_SHOULDER, RIGHT_SHOULDER)))
    drawn = draw_poses(BLANK, _person(BODY), [0.9], broken, radius=3, show_scores=False)
    assert _kind(drawn[50, 50]) == "magenta"
    short = draw_poses(BLANK, _person({0: (50, 50)}, k=3), [0.9], COCO_STYLE, radius=3)  # K < links
    assert _kind(short[50, 50]) == "magenta"


# tools/demo.py


@pytest.fixture(scope="module")
def demo():
    return load_tool("demo")


FAST = [
    "MODEL.INSPOSE.SCORE_THRESH_TEST", "0.0", "MODEL.INSPOSE.PRE_NMS_TOPK_TEST", "20",
    "TEST.DETECTIONS_PER_IMAGE", "5", "INPUT.MIN_SIZE_TEST", "64", "INPUT.MAX_SIZE_TEST", "96",
]  # fmt: skip


def _run(demo, *args):
    tiny = ["--config-file", str(REPO_ROOT / TINY_CONFIG), "--allow-untrained", "--confidence-threshold", "0"]
    return demo.main([*tiny, *args, "--opts", *FAST])


def _picture(seed, height=60, width=80):
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def test_inputs_expand_folders_globs_and_files(tmp_path):
    for name in ("b.jpg", "a.png", "c.JPEG", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "sub").mkdir()
    folder = [str(tmp_path / n) for n in ("a.png", "b.jpg", "c.JPEG")]
    assert expand_inputs([str(tmp_path)]) == folder
    assert expand_inputs([str(tmp_path / "*.jpg"), str(tmp_path / "b.jpg")]) == folder[1:2]
    assert expand_inputs([str(tmp_path / "notes.txt")]) == [str(tmp_path / "notes.txt")]
    with pytest.raises(SystemExit, match="no such file"):
        expand_inputs([str(tmp_path / "missing.jpg")])
    with pytest.raises(SystemExit, match="no pictures"):
        expand_inputs([str(tmp_path / "sub")])


def test_demo_writes_pictures_and_coco_results(demo, tmp_path):
    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    cv2.imwrite(str(folder / "000000000042.png"), _picture(0))
    cv2.imwrite(str(folder / "street.png"), _picture(1, 48, 70))
    summary = _run(demo, "--input", str(folder), "--output", str(out), "--keypoint-threshold", "0")
    assert sorted(p.name for p in out.iterdir()) == ["000000000042.png", "results.json", "street.png"]
    for name, seed, shape in (("000000000042.png", 0, (60, 80, 3)), ("street.png", 1, (48, 70, 3))):
        drawn = cv2.imread(str(out / name))
        assert drawn.shape == shape and not np.array_equal(drawn, _picture(seed, *shape[:2]))
    records = json.loads((out / "results.json").read_text())
    assert summary["results"] == str(out / "results.json") and records
    assert summary["pictures"] == [str(out / "000000000042.png"), str(out / "street.png")]
    assert {r["image_id"] for r in records} == {42, 1}
    assert {r["file_name"] for r in records} == {str(folder / "000000000042.png"), str(folder / "street.png")}
    assert all(len(r["keypoints"]) == 51 and r["category_id"] == 1 for r in records)


def test_demo_writes_a_single_picture_to_the_named_file(demo, tmp_path):
    cv2.imwrite(str(tmp_path / "one.png"), _picture(2))
    target = tmp_path / "drawn" / "pose.png"
    _run(demo, "--input", str(tmp_path / "one.png"), "--output", str(target))
    assert cv2.imread(str(target)).shape == (60, 80, 3)
    assert json.loads((target.parent / "results.json").read_text())[0]["image_id"] == 0


def test_demo_annotates_a_video(demo, tmp_path):
    source, target = tmp_path / "clip.mp4", tmp_path / "clip_pose.mp4"
    writer = cv2.VideoWriter(str(source), cv2.VideoWriter_fourcc(*"mp4v"), 5.0, (80, 60))
    for seed in range(3):
        writer.write(_picture(seed))
    writer.release()
    summary = _run(demo, "--video-input", str(source), "--output", str(target))
    assert summary == {"video": str(target), "frames": 3}
    video = cv2.VideoCapture(str(target))
    frames = []
    while True:
        ok, frame = video.read()
        if not ok:
            break
        frames.append(frame)
    assert len(frames) == 3 and frames[0].shape == (60, 80, 3)


def test_webcam_without_a_display_fails_clearly(demo, monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setattr(sys, "platform", "linux")
    with pytest.raises(SystemExit, match="no display"):
        _run(demo, "--webcam")


def test_demo_rejects_a_dataset_with_another_keypoint_count(demo, tmp_path):
    name = f"demo_crowdpose_{uuid.uuid4().hex[:8]}"
    MetadataCatalog.get(name).set(**CROWDPOSE.to_metadata())
    cv2.imwrite(str(tmp_path / "one.png"), _picture(3))
    with pytest.raises(SystemExit, match="14 keypoints"):
        _run(demo, "--input", str(tmp_path / "one.png"), "--output", str(tmp_path), "--dataset", name)
