"""tools/demo.py on odd pictures, its confidence threshold on the final score, the layout of score
labels, and the backend choice (``--backend onnxruntime`` with a stand-in for OnnxPosePredictor)."""
import json
import logging

import cv2
import numpy as np
import pytest
from PIL import Image

from inspose.data import COCO_PERSON
from inspose.demo import ConfidentPoses, keep_confident
from inspose.deploy.runtime import Poses
from inspose.label_layout import overlaps, place_labels

from .tool_utils import load_tool

K = 17
METADATA = {
    "keypoint_names": list(COCO_PERSON.names),
    "flip_pairs": [list(p) for p in COCO_PERSON.flip_pairs],
    "skeleton": [list(e) for e in COCO_PERSON.skeleton],
}


def _poses(height, width, scores):
    """Persons spread over the image, one per score."""
    n = len(scores)
    keypoints = np.zeros((n, K, 3), np.float32)
    for i in range(n):
        keypoints[i, :, 0] = np.linspace(0.2, 0.8, K) * width
        keypoints[i, :, 1] = (0.3 + 0.02 * i) * height
        keypoints[i, :, 2] = 0.9
    return Poses(keypoints, np.asarray(scores, np.float32), np.zeros((n, 4), np.float32))


class FakeOnnxPredictor:
    """OnnxPosePredictor's interface: BGR uint8 (H, W, 3) in, Poses out, ``metadata``."""

    seen = []

    def __init__(self, path):
        self.path = path
        self.metadata = METADATA

    def __call__(self, bgr):
        assert bgr.ndim == 3 and bgr.shape[2] == 3 and bgr.dtype == np.uint8, (bgr.shape, bgr.dtype)
        FakeOnnxPredictor.seen.append(bgr.shape)
        return _poses(bgr.shape[0], bgr.shape[1], [0.9, 0.5, 0.2])


@pytest.fixture
def demo(monkeypatch):
    monkeypatch.setattr("inspose.deploy.runtime.OnnxPosePredictor", FakeOnnxPredictor)
    FakeOnnxPredictor.seen = []
    return load_tool("demo")


def _onnx(demo, *args):
    return demo.main(["--backend", "onnxruntime", "--model", "fake.onnx", *args])


def _odd_inputs(folder):
    """Pictures a user may have (name -> expected (H, W) as read), and two unreadable files."""
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (40, 50), dtype=np.uint8), "L").save(folder / "grey.png")
    Image.fromarray(rng.integers(0, 256, (40, 50, 4), dtype=np.uint8), "RGBA").save(folder / "rgba.png")
    cv2.imwrite(str(folder / "deep.png"), rng.integers(0, 65535, (40, 50, 3), dtype=np.uint16))
    cv2.imwrite(str(folder / "deep_grey.png"), np.full((40, 50), 32896, np.uint16))  # mid grey
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated 90 degrees: shown as 50 x 40
    Image.fromarray(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)).save(folder / "turned.jpg", exif=exif)
    cv2.imwrite(str(folder / "huge.jpg"), np.full((4000, 6000, 3), 90, np.uint8))
    cv2.imwrite(str(folder / "dot.png"), np.full((1, 1, 3), 200, np.uint8))
    (folder / "notes.jpg").write_text("not a picture")
    (folder / "empty.png").write_bytes(b"")
    return {"grey.png": (40, 50), "rgba.png": (40, 50), "deep.png": (40, 50), "deep_grey.png": (40, 50), "turned.jpg": (50, 40),
            "huge.jpg": (4000, 6000), "dot.png": (1, 1)}  # fmt: skip


class Recorder(logging.Handler):
    def __init__(self):
        super().__init__()
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())


def test_odd_pictures_are_read_and_unreadable_ones_skipped(demo, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    readable = _odd_inputs(folder)
    out = tmp_path / "new" / "folder"  # does not exist yet
    recorder = Recorder()
    logging.getLogger("inspose.demo").addHandler(recorder)
    try:
        summary = _onnx(demo, "--input", str(folder), "--output", str(out))
    finally:
        logging.getLogger("inspose.demo").removeHandler(recorder)
    assert sorted(p.name for p in out.iterdir()) == sorted([*readable, "results.json"])
    for name, shape in readable.items():
        assert cv2.imread(str(out / name)).shape[:2] == shape
    grey = cv2.imread(str(out / "deep_grey.png"))
    assert abs(int(np.median(grey)) - 128) < 3  # scaled to 8 bits, not saturated
    log = "\n".join(recorder.lines)
    assert "skipping" in log and "notes.jpg" in log and "empty.png" in log
    records = json.loads((out / "results.json").read_text())
    assert len(records) == 2 * len(readable)  # 0.9 and 0.5 kept at the default threshold 0.3
    assert summary["results"] == str(out / "results.json")


def test_no_readable_picture_exits_non_zero(demo, tmp_path):
    (tmp_path / "notes.jpg").write_text("not a picture")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(SystemExit) as exit_info:
        _onnx(demo, "--input", str(tmp_path), "--output", str(tmp_path / "out"))
    assert exit_info.value.code not in (0, None) and "could be read" in str(exit_info.value.code)


def test_the_threshold_is_on_the_final_score(demo, tmp_path):
    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((60, 80, 3), np.uint8))
    _onnx(demo, "--input", str(tmp_path / "a.png"), "--output", str(tmp_path / "out"), "--confidence-threshold", "0.6")
    scores = [r["score"] for r in json.loads((tmp_path / "out" / "results.json").read_text())]
    assert scores == pytest.approx([0.9])
    poses = keep_confident(_poses(10, 10, [0.1, 0.35, 0.3]), 0.3)
    assert poses.scores.tolist() == pytest.approx([0.35, 0.3]) and poses.keypoints.shape == (2, K, 3)


def test_the_pytorch_backend_output_is_filtered_by_its_final_scores():
    class Instances:  # what a detectron2 model returns, reduced to what the demo reads
        def __init__(self):
            import torch

            self.pred_keypoints, self.scores = torch.zeros(3, K, 3), torch.tensor([0.8, 0.25, 0.4])

        def to(self, device):
            return self

        def has(self, name):
            return False

        def __len__(self):
            return 3

    poses = ConfidentPoses(lambda image: {"instances": Instances()}, 0.3)(np.zeros((4, 4, 3), np.uint8))
    assert poses.scores.tolist() == pytest.approx([0.8, 0.4])


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--backend", "onnxruntime", "--input", "a.jpg"], "--backend onnxruntime needs --model"),
        (["--input", "a.jpg"], "--backend pytorch needs --config-file"),
        (["--backend", "tensorrt", "--model", "m", "--input", "a.jpg"], "invalid choice"),
    ],
    ids=["onnx_without_model", "pytorch_without_config", "unknown_backend"],
)
def test_backend_arguments_are_validated(demo, argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        demo.main(argv)
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_labels_do_not_overlap():
    anchors = [(10, 20), (12, 22), (11, 21), (200, 20)]  # three persons at the same place
    boxes = place_labels(anchors, [(30, 12)] * 4, (100, 300))
    assert boxes[0] == (10, 20, 40, 32) and boxes[3] == (200, 20, 230, 32)  # free places kept
    assert not any(overlaps(a, b) for i, a in enumerate(boxes) for b in boxes[i + 1:])
    assert all(0 <= b[1] and b[3] <= 100 for b in boxes)
    top = place_labels([(5, 0), (5, 0)], [(30, 12)] * 2, (100, 300))  # no room above: below
    assert top[1][1] >= top[0][3]
