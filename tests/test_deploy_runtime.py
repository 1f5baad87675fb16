"""``inspose.deploy.runtime``: detectron2's resize reproduced, metadata checks, no torch needed.

A small hand-built ONNX graph with the exported model's inputs, outputs and metadata stands in for
an export here (exports of the real model are tested in ``test_export.py``).
"""
import json
import subprocess
import sys

import numpy as np
import pytest
from detectron2.data import transforms as T

from inspose.deploy.metadata import METADATA_KEY, MetadataError
from inspose.deploy.runtime import OnnxPosePredictor, resize_like_detectron2, resized_shape

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from .conftest import REPO_ROOT  # noqa: E402


@pytest.mark.parametrize("height, width", [(480, 640), (640, 480), (427, 640), (1, 1), (6000, 4000), (333, 1999)])
@pytest.mark.parametrize("short, longest", [(800, 1333), (320, 448), (256, 352)])
def test_resized_shape_is_detectron2s(height, width, short, longest):
    assert resized_shape(height, width, short, longest) == tuple(
        T.ResizeShortestEdge.get_output_shape(height, width, short, longest)
    )


def test_resize_reproduces_detectron2s_pixels():
    image = np.random.default_rng(0).integers(0, 256, (427, 640, 3), dtype=np.uint8)
    h, w = T.ResizeShortestEdge.get_output_shape(427, 640, 320, 448)
    expected = T.ResizeTransform(427, 640, h, w).apply_image(image)
    assert np.array_equal(resize_like_detectron2(image, 320, 448), expected)


def _fake_export(path, num_keypoints=4, detections=5, real=2, metadata=None, input_format="BGR"):
    """An ONNX file with the export's signature returning ``real`` of ``detections`` rows."""
    from onnx import TensorProto, helper, numpy_helper

    keypoints = np.zeros((detections, num_keypoints, 3), np.float32)
    keypoints[:real] = 7.0
    outputs = {
        "keypoints": keypoints,
        "scores": np.array([0.9, 0.8] + [0.0] * (detections - 2), np.float32),
        "boxes": np.ones((detections, 4), np.float32),
        "num_detections": np.array(real, np.int64),
    }
    nodes = [helper.make_node("Constant", [], [n], value=numpy_helper.from_array(v)) for n, v in outputs.items()]
    graph = helper.make_graph(
        nodes,
        "fake_inspose",
        [
            helper.make_tensor_value_info("image", TensorProto.FLOAT, [3, "h", "w"]),
            helper.make_tensor_value_info("original_size", TensorProto.FLOAT, [2]),
        ],
        [helper.make_tensor_value_info(n, numpy_helper.from_array(v).data_type, v.shape) for n, v in outputs.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    if metadata is not False:
        info = {
            "format_version": 1, "num_keypoints": num_keypoints,
            "keypoint_names": [f"k{i}" for i in range(num_keypoints)], "input_format": input_format,
            "min_size_test": 64, "max_size_test": 96, "dynamic": True, "dynamic_side_range": [32, 4096],
            "input_size": [64, 85],
        }  # fmt: skip
        info.update(metadata or {})
        entry = model.metadata_props.add()
        entry.key, entry.value = METADATA_KEY, json.dumps(info)
    onnx.save(model, str(path))
    return path


def test_predictor_returns_the_real_rows_in_image_coordinates(tmp_path):
    predictor = OnnxPosePredictor(str(_fake_export(tmp_path / "m.onnx")))
    poses = predictor(np.zeros((120, 160, 3), np.uint8))
    assert poses.keypoints.shape == (2, 4, 3) and poses.scores.tolist() == pytest.approx([0.9, 0.8])
    assert poses.boxes.shape == (2, 4)


def test_wrong_keypoint_count_or_format_or_no_metadata_is_named(tmp_path):
    path = str(_fake_export(tmp_path / "m.onnx", num_keypoints=17))
    with pytest.raises(MetadataError, match="predicts 17 keypoints per person, but 14 are expected"):
        OnnxPosePredictor(path, num_keypoints=14)
    with pytest.raises(MetadataError, match="takes BGR images, but RGB was asked for"):
        OnnxPosePredictor(path, input_format="RGB")
    bare = str(_fake_export(tmp_path / "bare.onnx", metadata=False))
    with pytest.raises(MetadataError, match="no 'inspose' metadata"):
        OnnxPosePredictor(bare)


def test_static_export_refuses_another_input_size(tmp_path):
    path = str(_fake_export(tmp_path / "m.onnx", metadata={"dynamic": False, "input_size": [64, 85]}))
    predictor = OnnxPosePredictor(path)
    assert len(predictor(np.zeros((48, 64, 3), np.uint8)).scores) == 2  # resizes to 64 x 85
    with pytest.raises(ValueError, match="exported for 64 x 85 inputs, this image resizes to 64 x 64"):
        predictor(np.zeros((64, 64, 3), np.uint8))


def test_bad_images_are_refused(tmp_path):
    predictor = OnnxPosePredictor(str(_fake_export(tmp_path / "m.onnx")))
    with pytest.raises(ValueError, match="expected a BGR image"):
        predictor(np.zeros((64, 64), np.uint8))


def test_runtime_needs_neither_torch_nor_detectron2(tmp_path):
    path = _fake_export(tmp_path / "m.onnx")
    code = (
        "import sys; sys.modules['torch'] = None; sys.modules['detectron2'] = None\n"
        "import numpy as np\n"
        "from inspose.deploy.runtime import OnnxPosePredictor\n"
        f"poses = OnnxPosePredictor({str(path)!r})(np.zeros((120, 160, 3), np.uint8))\n"
        "assert 'torch' not in [m for m in sys.modules if sys.modules[m] is not None]\n"
        "print(len(poses.scores))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "2"


def test_export_tool_names_an_unexportable_option_before_building(capsys):
    from .tool_utils import load_tool

    code = load_tool("export_model").main(
        ["--config-file", str(REPO_ROOT / "configs/quick_schedules/InsPose_R_18_tiny_cpu.yaml"),
         "--format", "onnx", "--output", "/nonexistent/x.onnx", "TEST.AUG.ENABLED", "True"]
    )  # fmt: skip
    assert code == 2 and "TEST.AUG.ENABLED True" in capsys.readouterr().out
