"""The whole model exported (ONNX, torch.export) against PyTorch eager, with trained weights.

Each exported file is compared with the eager model on the same pictures, end to end: the eager
model through detectron2's test mapper (resize included), ONNX Runtime through
``OnnxPosePredictor`` (its own resize), torch.export on the runtime's resized image. Detections are
matched regardless of order (greedy on keypoint distance): the same count, scores within 1e-4,
keypoints within 0.5 px for >= 99 % of them (an argmax may flip on a near-tie).

A briefly trained model gives near-duplicate candidates whose scores differ by float rounding, so
an NMS or top-k decision in the low-score tail may fall the other way in the other runtime (seen
on one machine in the whole suite: the 20th detection of a picture differed by 0.017 in score):
up to a tenth of a picture's detections may differ, and only among its lowest-scoring quarter.
"""
import copy

import numpy as np
import pytest
import torch
from detectron2.data import DatasetCatalog

from inspose.config import load_config
from inspose.data import InsPoseDatasetMapper
from inspose.data.image_io import read_dataset_image
from inspose.deploy.export import (
    ExportError,
    check_exportable,
    convolution_weight_inputs,
    export_model,
    load_torch_export,
)
from inspose.deploy.runtime import OnnxPosePredictor, Poses
from inspose.modeling.inference import InsPosePredictor

pytest.importorskip("onnxruntime")
pytestmark = pytest.mark.slow

IMAGES_PER_DATASET = 4
# Test settings (the exported graph and the eager model alike): more candidates than the default
# threshold lets through after a brief training, so every comparison has detections.
TEST_OPTS = ["MODEL.INSPOSE.SCORE_THRESH_TEST", 0.02, "MODEL.INSPOSE.PRE_NMS_TOPK_TEST", 60,
             "TEST.DETECTIONS_PER_IMAGE", 20]  # fmt: skip


def _variant(run, *opts):
    """(cfg, model): the trained model with ``TEST_OPTS`` and ``opts`` (settings that keep its
    parameters: output stride, offsets off, test sizes)."""
    cfg = run.cfg.clone()
    cfg.defrost()
    cfg.merge_from_list([str(o) for o in TEST_OPTS + list(opts)])
    model = copy.deepcopy(run.model)
    if not cfg.MODEL.INSPOSE.DISK_OFFSET_ON:
        model.offset_branch = None
    model.codec.output_stride = cfg.MODEL.INSPOSE.OUTPUT_STRIDE
    model.predictor = InsPosePredictor(cfg, codec=model.codec, layout=model.predictor.layout)
    return cfg, model.eval()


def _records(cfg, count=IMAGES_PER_DATASET):
    return DatasetCatalog.get(cfg.DATASETS.TEST[0])[:count]


def _eager(cfg, model, record) -> Poses:
    inputs = InsPoseDatasetMapper(cfg, is_train=False)(copy.deepcopy(record))
    with torch.no_grad():
        instances = model([inputs])[0]["instances"]
    return Poses(instances.pred_keypoints.numpy(), instances.scores.numpy(), instances.pred_boxes.tensor.numpy())


def _match(a: Poses, b: Poses):
    """Greedy pairs (i, j), closest first, by mean keypoint distance + mean box-corner distance
    (px) + 1000 x the score difference. A briefly trained model gives several detections with the
    same keypoints (collapsed maps): by keypoints alone they tie and may pair with each other's
    scores; the same detection costs ~0 in all three terms."""
    if len(a.scores) == 0 or len(b.scores) == 0:
        return []
    cost = np.linalg.norm(a.keypoints[:, None, :, :2] - b.keypoints[None, :, :, :2], axis=3).mean(axis=2)
    cost += np.abs(a.boxes[:, None, :] - b.boxes[None, :, :]).mean(axis=2)
    cost += 1000.0 * np.abs(a.scores[:, None] - b.scores[None, :])
    pairs = []
    for _ in range(min(cost.shape)):
        i, j = np.unravel_index(np.argmin(cost), cost.shape)
        pairs.append((i, j))
        cost[i, :], cost[:, j] = np.inf, np.inf
    return pairs


def _assert_same(expected: Poses, got: Poses, what: str):
    assert len(got.scores) == len(expected.scores), f"{what}: {len(got.scores)} vs {len(expected.scores)} detections"
    pairs = _match(expected, got)
    if not pairs:
        return 0
    i, j = (np.array(k) for k in zip(*pairs))
    same = np.abs(expected.scores[i] - got.scores[j]) <= 1e-4
    _assert_only_tail_differs(expected.scores, i[~same], what)
    i, j = i[same], j[same]
    distance = np.linalg.norm(expected.keypoints[i, :, :2] - got.keypoints[j, :, :2], axis=2)
    assert (distance <= 0.5).mean() >= 0.99, f"{what}: keypoints {distance.max():.2f} px apart"
    return len(pairs)


def _assert_only_tail_differs(scores: np.ndarray, differing: np.ndarray, what: str):
    """The eager detections (indices ``differing`` into ``scores``) without an equal-score
    counterpart: at most a tenth of them, all in the lowest-scoring quarter (a near-tie decided
    the other way; see the module's docstring)."""
    if len(differing) == 0:
        return
    quarter = np.sort(scores)[len(scores) // 4]  # nothing lies below it with < 4 detections
    assert len(differing) <= len(scores) // 10 and (scores[differing] < quarter).all(), (
        f"{what}: {len(differing)} of {len(scores)} detections differ in score, eager scores "
        f"{np.round(scores[differing], 4).tolist()}"
    )


def _compare_onnx(cfg, model, path, records):
    predictor = OnnxPosePredictor(str(path))
    compared = 0
    for record in records:
        image = read_dataset_image(record, "BGR")
        compared += _assert_same(_eager(cfg, model, record), predictor(image), f"onnx {record['file_name']}")
    assert compared > 0, "no detections to compare"
    return predictor


@pytest.fixture(scope="module")
def base_export(briefly_trained, tmp_path_factory):
    """The K = 17 model exported to ONNX with --dynamic (every picture's size), once."""
    cfg, model = _variant(briefly_trained(17))
    path = tmp_path_factory.mktemp("export") / "k17.onnx"
    export_model(cfg, model, "onnx", str(path), (256, 352), dynamic=True)
    return cfg, model, path


def test_onnx_runtime_equals_eager_k17_dynamic(base_export):
    cfg, model, path = base_export
    predictor = _compare_onnx(cfg, model, path, _records(cfg))
    assert predictor.metadata["keypoint_names"][0] == "nose" and predictor.num_keypoints == 17


def test_exported_convolutions_have_constant_weights(base_export):
    assert convolution_weight_inputs(str(base_export[2])) == []


def test_torch_export_equals_eager(briefly_trained, tmp_path):
    cfg, model = _variant(briefly_trained(17))
    path = tmp_path / "k17.pt2"
    export_model(cfg, model, "torch_export", str(path), (256, 352), dynamic=True)
    program, metadata = load_torch_export(str(path))
    onnx_like = OnnxPosePredictor.__new__(OnnxPosePredictor)  # only its resize and checks
    onnx_like.metadata, onnx_like.path = metadata, str(path)
    compared = 0
    for record in _records(cfg):
        image = read_dataset_image(record, "BGR")
        resized = _runtime_resized(metadata, image)
        outputs = program.module()(
            torch.as_tensor(resized.transpose(2, 0, 1).copy()).float(), torch.tensor([float(s) for s in image.shape[:2]])
        )
        n = int(outputs[3])
        got = Poses(*(o[:n].detach().numpy() for o in outputs[:3]))
        compared += _assert_same(_eager(cfg, model, record), got, f"torch.export {record['file_name']}")
    assert compared > 0


def _runtime_resized(metadata, bgr):
    from inspose.deploy.runtime import resize_like_detectron2

    return resize_like_detectron2(bgr, metadata["min_size_test"], metadata["max_size_test"])


def test_onnx_runtime_equals_eager_k14_crowdpose(briefly_trained, tmp_path):
    cfg, model = _variant(briefly_trained(14))
    path = tmp_path / "k14.onnx"
    export_model(cfg, model, "onnx", str(path), (256, 352), dynamic=True)
    predictor = _compare_onnx(cfg, model, path, _records(cfg))
    assert predictor.num_keypoints == 14 and "neck" in predictor.metadata["keypoint_names"]


# Offsets off: keypoints are cell centres, so the KP-Net boxes lie on the cell grid and their IoUs
# are ratios of whole cell counts; at the default NMS_THRESH_TEST 0.6 (3/5) some candidate pairs
# of a briefly trained model have an IoU of exactly the threshold (16 of 1770 pairs, seen), which
# eager torchvision and ONNX Runtime, computing it in a different float order, decide either way:
# whole detections then differ. A threshold that no ratio of cell counts below 10,000 equals keeps
# the comparison to what the export itself does (measured: the same model agreed at 0.6037).
GRID_SAFE_NMS_THRESH = 0.6037


@pytest.mark.parametrize(
    "opts",
    [["MODEL.INSPOSE.OUTPUT_STRIDE", 4],
     ["MODEL.INSPOSE.DISK_OFFSET_ON", False, "MODEL.INSPOSE.NMS_THRESH_TEST", GRID_SAFE_NMS_THRESH]],
    ids=["stride4", "offsets-off"],
)
def test_onnx_variants_static_size(briefly_trained, tmp_path, opts):
    """One setting changed from the K = 17 model, exported at the one size of its pictures."""
    cfg, model = _variant(briefly_trained(17), *opts)
    records = [r for r in _records(cfg, 20) if (r["height"], r["width"]) == (480, 640)][:2]
    assert records, "no 640 x 480 picture in coco_kp_mini"
    path = tmp_path / "variant.onnx"
    export_model(cfg, model, "onnx", str(path), (256, 341))
    _compare_onnx(cfg, model, path, records)


def test_onnx_kpnet_depth_1(briefly_trained, tmp_path):
    cfg, model = _variant(briefly_trained(17, depth=1))
    path = tmp_path / "depth1.onnx"
    export_model(cfg, model, "onnx", str(path), (256, 352), dynamic=True)
    _compare_onnx(cfg, model, path, _records(cfg, 2))


def test_exported_ap_equals_eager_ap(overfit_run, tmp_path):
    from inspose.deploy.evaluate import evaluate_onnx
    from inspose.engine import Trainer

    cfg, model = overfit_run.cfg, overfit_run.model
    eager = Trainer.test(cfg, model)["keypoints"]["AP"]
    path = tmp_path / "overfit.onnx"
    export_model(cfg, model, "onnx", str(path), (320, 480), dynamic=True)
    exported = evaluate_onnx(str(path), cfg.DATASETS.TEST[0])["keypoints"]["AP"]
    print(f"OKS AP: eager {eager:.2f}, ONNX Runtime {exported:.2f}")
    assert eager >= 50 and abs(exported - eager) <= 0.1


def test_unexportable_options_are_named():
    cfg = load_config(None, ["TEST.AUG.ENABLED", True])
    with pytest.raises(ExportError, match="TEST.AUG.ENABLED"):
        check_exportable(cfg, dynamic=False)
    cfg = load_config(None, ["MODEL.INSPOSE.OUTPUT_STRIDE", 16])
    check_exportable(cfg, dynamic=False)
    with pytest.raises(ExportError, match="OUTPUT_STRIDE 16 with --dynamic"):
        check_exportable(cfg, dynamic=True)


def test_export_tool_writes_a_file_the_runtime_reads(briefly_trained, tmp_path):
    from detectron2.checkpoint import DetectionCheckpointer

    from .conftest import REPO_ROOT
    from .tool_utils import load_tool

    run = briefly_trained(17)
    DetectionCheckpointer(run.model, save_dir=str(tmp_path)).save("brief")
    output = tmp_path / "tool.onnx"
    code = load_tool("export_model").main(
        ["--config-file", str(REPO_ROOT / "configs/quick_schedules/InsPose_R_18_tiny_cpu.yaml"),
         "--format", "onnx", "--output", str(output), "--size", "256,341",
         "DATASETS.TEST", f"('{run.cfg.DATASETS.TEST[0]}',)", "MODEL.WEIGHTS", str(tmp_path / "brief.pth"),
         "INPUT.MIN_SIZE_TEST", "256", "INPUT.MAX_SIZE_TEST", "352"]
    )  # fmt: skip
    assert code == 0
    predictor = OnnxPosePredictor(str(output), num_keypoints=17)
    assert predictor.metadata["input_size"] == [256, 341] and not predictor.metadata["dynamic"]
    assert predictor(np.zeros((480, 640, 3), np.uint8)).keypoints.shape[1:] == (17, 3)


@pytest.mark.parametrize("persons", [0, 1])
def test_zero_and_one_detection_run_in_both_formats(tmp_path, persons):
    """torchvision's NMS promises torch.export at least 2 rows; the graph must not rely on it."""
    import onnxruntime

    from inspose.benchmark.forcing import force_inspose_persons
    from inspose.deploy.export import example_inputs, export_program, save_onnx

    from .model_utils import tiny_model

    model = tiny_model().eval()
    force_inspose_persons(model, 1)  # one candidate, one detection
    if persons == 0:
        model.predictor.score_thresh = 2.0  # no score passes
    program = export_program(model, (96, 128))
    image, size = example_inputs((96, 128))
    assert int(program.module()(image, size)[3]) == persons
    path = str(tmp_path / "m.onnx")
    save_onnx(program, path, {"test": True})
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    outputs = session.run(None, {"image": image.numpy(), "original_size": size.numpy()})
    assert int(outputs[3]) == persons and outputs[0].shape[0] == 1  # padded to DETECTIONS_PER_IMAGE
    assert (outputs[1][persons:] == 0).all()


def test_the_comparison_tolerates_only_a_tail_near_tie():
    """``_assert_same`` itself: a changed score among the best detections, or too many changed
    in the tail, fails; one changed among the lowest-scoring quarter passes."""
    rng = np.random.default_rng(0)
    keypoints = rng.uniform(0, 300, (20, 17, 3))
    boxes = np.concatenate([keypoints[:, :, :2].min(axis=1), keypoints[:, :, :2].max(axis=1)], axis=1)
    scores = np.linspace(0.9, 0.1, 20)
    eager = Poses(keypoints, scores, boxes)

    def changed(indices, by=0.017):
        got = scores.copy()
        got[indices] -= by
        return Poses(keypoints.copy(), got, boxes.copy())

    assert _assert_same(eager, changed([19]), "tail") == 20
    for indices in ([0], [10], [17, 18, 19]):
        with pytest.raises(AssertionError, match="differ in score"):
            _assert_same(eager, changed(indices), "changed")
    shifted = Poses(keypoints + np.array([2.0, 0.0, 0.0]), scores, boxes)
    with pytest.raises(AssertionError, match="px apart"):
        _assert_same(eager, shifted, "shifted")
