"""tools/benchmark.py's machinery at tiny sizes: forced persons, the report, the KP-Net table.

Timings here mean nothing (tiny inputs, one run); the tests check mechanisms and shapes.
"""
import json

import pytest
import torch

from inspose.benchmark import forcing
from inspose.benchmark.inputs import benchmark_image, inference_input, training_batch
from inspose.benchmark.inspose_latency import STAGES, build_inspose, inspose_breakdown
from inspose.benchmark.inspose_latency import run_forced as run_inspose_forced
from inspose.benchmark.keypoint_rcnn import KEYPOINT_RCNN_CONFIG, build_keypoint_rcnn
from inspose.benchmark.keypoint_rcnn import run_forced as run_rcnn_forced
from inspose.benchmark.kpnet_table import kpnet_comparison
from inspose.benchmark.runner import COLUMNS, ROW_KEYS, BenchmarkOptions, run_benchmark
from inspose.benchmark.tables import render_report
from inspose.benchmark.training import training_in_subprocess, training_spec

from .conftest import REPO_ROOT
from .model_utils import TINY_CONFIG

SIZE = (96, 128)
CPU = torch.device("cpu")


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread: on a busy CPU, threads waiting for each other make tiny ops 50x slower."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def inspose_model():
    return build_inspose(str(REPO_ROOT / TINY_CONFIG), [], CPU)[0]


@pytest.fixture(scope="module")
def rcnn_model():
    # The recipe as it is, but 100 proposals instead of 1000 keep the box head fast in tests.
    fewer_proposals = ["MODEL.RPN.POST_NMS_TOPK_TEST", 100]
    return build_keypoint_rcnn(KEYPOINT_RCNN_CONFIG, CPU, fewer_proposals)[0]


@pytest.fixture(scope="module")
def image():
    return benchmark_image(SIZE)


@pytest.mark.parametrize("persons", [1, 5])
def test_inspose_runs_exactly_p_kpnets(inspose_model, image, persons):
    with forcing.count_inspose_kpnets(inspose_model) as seen:
        outputs = run_inspose_forced(inspose_model, inference_input(image), persons)
    assert seen == [persons]
    assert len(outputs[0]["instances"]) == persons
    assert "run_kpnets" not in vars(inspose_model.predictor)  # counters restore the method


def test_more_candidates_than_persons_reach_the_kpnets_and_p_come_out(inspose_model, image):
    with forcing.count_inspose_kpnets(inspose_model) as seen:
        outputs = run_inspose_forced(inspose_model, inference_input(image), 2, candidates=7)
    assert seen == [7]  # the paper's order: KP-Nets on every candidate, then NMS
    assert len(outputs[0]["instances"]) == 2
    with pytest.raises(ValueError, match=r"candidates \(1\) must be >= persons \(2\)"):
        forcing.force_inspose_persons(inspose_model, 2, candidates=1)


@pytest.mark.parametrize("persons", [1, 5])
def test_keypoint_rcnn_keypoint_head_sees_exactly_p_boxes(rcnn_model, image, persons):
    with forcing.count_keypoint_head_boxes(rcnn_model) as seen:
        run_rcnn_forced(rcnn_model, inference_input(image), persons)
    assert seen == [persons]
    assert not rcnn_model.roi_heads.keypoint_head._forward_pre_hooks


def test_a_shortfall_is_reported():
    with pytest.raises(forcing.ForcedCountError, match="expected 5 instances, got 4"):
        forcing.check_count([4], 5, "Keypoint R-CNN keypoint head")


def test_breakdown_stages_add_up_and_methods_are_restored(inspose_model, image):
    inputs = inference_input(image)
    stages = inspose_breakdown(inspose_model, inputs, 3, runs=1, warmup=0, device=CPU)
    assert all(stages[k].median_ms >= 0 for k in STAGES)
    total = sum(stages[k].median_ms for k in STAGES)
    assert total == pytest.approx(stages["instrumented_total_ms"].median_ms, rel=1e-6)
    for owner, name in [(inspose_model, "predict_maps"), (inspose_model.backbone, "forward"),
                        (inspose_model.predictor, "predict_image")]:  # fmt: skip
        assert name not in vars(owner)


def test_batched_kpnets_agree_with_the_loop(inspose_model, image):
    table = kpnet_comparison(inspose_model, image, [3, 40], runs=1, warmup=0, device=CPU)
    assert table["map_size"] == [SIZE[0] // 8, SIZE[1] // 8]
    assert [r["instances"] for r in table["rows"]] == [3, 40]
    for row in table["rows"]:
        assert row["max_abs_diff"] <= 1e-4
        assert row["argmax_agreement"] >= 0.99
        assert row["loop_ms"] > 0 and row["batched_ms"] > 0 and row["predictor_ms"] > 0


def test_report_has_one_row_per_persons_value_and_renders(inspose_model, rcnn_model):
    options = BenchmarkOptions(
        config_file=str(REPO_ROOT / TINY_CONFIG),
        persons=[1, 2],
        runs=1,
        warmup=0,
        size=SIZE,
        kpnet_instances=[4],
        rate_shape=(1, 16, 16, 16),
        skip_train=True,
    )
    report = json.loads(json.dumps(run_benchmark(options, models=(inspose_model, rcnn_model))))
    assert {"device", "settings", "columns", "rows", "kpnet", "flops", "training"} <= set(report)
    assert report["device"]["name"] and report["device"]["type"] == "cpu"
    assert [r["persons"] for r in report["rows"]] == [1, 2]
    for row in report["rows"]:
        assert set(ROW_KEYS) <= set(row)
        assert row["ratio"] == pytest.approx(row["inspose_ms"] / row["keypoint_rcnn_ms"])
        assert row["flop_floor_ms"] > 0 and row["keypoint_rcnn_flop_floor_ms"] > 0
    assert set(COLUMNS) <= set(report["rows"][0])
    flops = report["flops"]
    assert flops["inspose"]["gmac_backbone_fpn"] > 0 and flops["keypoint_rcnn"]["gmac_rpn"] > 0
    assert flops["keypoint_rcnn"]["gmac_keypoint_head_per_instance"] > 0
    text = render_report(report)
    lines = text.splitlines()
    header = lines.index("## Inference latency") + 1
    assert lines[header].startswith("| persons | InsPose ms | Keypoint R-CNN ms | ratio")
    assert lines[header + 1].startswith("|---|")
    assert [line.split("|")[1].strip() for line in lines[header + 2 : header + 4]] == ["1", "2"]
    assert all(line.count("|") == lines[header].count("|") for line in lines[header : header + 4])
    assert "## KP-Nets" in text and "## Parameters and MACs" in text


TRAINING_LOSSES = {
    "inspose": {"loss_cls", "loss_kpnet", "loss_offset", "loss_heatmap"},
    "keypoint_rcnn": {"loss_cls", "loss_box_reg", "loss_rpn_cls", "loss_rpn_loc", "loss_keypoint"},
}


@pytest.mark.slow
@pytest.mark.parametrize("model", ["inspose", "keypoint_rcnn"])
def test_training_step_in_a_subprocess_reports_losses_and_peak_memory(model):
    config = str(REPO_ROOT / TINY_CONFIG) if model == "inspose" else KEYPOINT_RCNN_CONFIG
    spec = training_spec(model, config, [], "cpu", SIZE, batch=2,
                         persons=2, runs=1, warmup=0, threads=1)  # fmt: skip
    result = training_in_subprocess(spec, timeout_s=300)
    assert "error" not in result, result
    assert set(result["losses"]) == TRAINING_LOSSES[model]
    assert all(v == v for v in result["losses"].values())  # not NaN
    assert result["peak_memory_mb"] >= result["rss_after_build_mb"] > 0
    assert result["step_ms"] > 0 and result["batch"] == 2


def test_synthetic_persons_have_boxes_around_their_keypoints():
    item = training_batch(SIZE, batch=1, persons=4)[0]
    boxes = item["instances"].gt_boxes.tensor
    xy = item["instances"].gt_keypoints.tensor[..., :2]
    for axis in (0, 1):
        assert (xy[..., axis] >= boxes[:, None, axis] - 1e-4).all()
        assert (xy[..., axis] <= boxes[:, None, axis + 2] + 1e-4).all()
    assert (boxes[:, 2] <= SIZE[1]).all() and (boxes[:, 3] <= SIZE[0]).all()


@pytest.mark.slow
def test_export_section_times_the_three_paths_on_p_persons(inspose_model, image):
    pytest.importorskip("onnxruntime")
    from inspose.benchmark.export_latency import export_comparison
    from inspose.benchmark.tables import export_table

    section = export_comparison(inspose_model, inference_input(image), [3], runs=1, warmup=0, threads=1)
    row = section["rows"][0]  # each path returned exactly 3 detections (checked inside)
    assert row["persons"] == 3 and row["onnx_mb"] > 0
    assert all(row[k] > 0 for k in ("eager_ms", "onnxruntime_ms", "torch_export_ms", "onnx_export_s"))
    assert "| 3 |" in export_table(section)
