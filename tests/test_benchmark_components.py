"""``tools/benchmark.py --components`` at a tiny size: each component's params and MACs add up.

Timings here mean nothing (tiny input, one run); the test checks what is counted.
"""
import math
import re

import pytest
import torch

from inspose.benchmark.components import COMPONENT_HEADERS, component_rows, component_table_rows
from inspose.benchmark.flops import inspose_flops, output_map_size
from inspose.benchmark.inspose_latency import build_inspose
from inspose.benchmark.tables import markdown_table

from .conftest import REPO_ROOT
from .model_utils import TINY_CONFIG
from .tool_utils import load_tool

SIZE = (96, 128)
CPU = torch.device("cpu")
REGRESSION = ["MODEL.INSPOSE.KEYPOINT_REGRESSION_ON", "True", "MODEL.INSPOSE.NMS_BOXES", "regression"]
STAR = REGRESSION + ["MODEL.INSPOSE.STAR_DEFORM_ON", "True"]
COMPONENTS = [("paper", []), ("regression", REGRESSION), ("star", STAR)]


def _count(module) -> int:
    return sum(p.numel() for p in module.parameters())


def _weights(head) -> int:
    """Conv-weight elements of the classification and controller paths (MACs per location)."""
    convs = [head.cls_logits, head.controller]
    convs += [s.conv for s in (head.cls_star, head.controller_star) if s is not None]
    return sum(c.weight.numel() for c in convs)


def _level_cells(model, size) -> int:
    """Locations summed over the FPN levels of a padded ``size`` input."""
    divisor = max(1, model.backbone.size_divisibility)
    padded = [math.ceil(s / divisor) * divisor for s in size]
    return sum(math.ceil(padded[0] / s) * math.ceil(padded[1] / s) for s in model.codec.fpn_strides)


def test_component_rows_count_each_component():
    torch.set_num_threads(1)
    rows = component_rows(str(REPO_ROOT / TINY_CONFIG), [], COMPONENTS, CPU, SIZE, 3, 1, 0)
    assert [r["component"] for r in rows] == ["paper", "regression", "star"]
    star_model = build_inspose(str(REPO_ROOT / TINY_CONFIG), STAR, CPU)[0]
    regression_params = _count(star_model.keypoint_regression)
    star_params = _count(star_model.head.cls_star) + _count(star_model.head.controller_star)
    # the classifier and controller convs read twice the channels with the star convs
    widened = _count(star_model.head.cls_logits) + _count(star_model.head.controller)
    paper_model = build_inspose(str(REPO_ROOT / TINY_CONFIG), [], CPU)[0]
    narrow = _count(paper_model.head.cls_logits) + _count(paper_model.head.controller)
    assert math.isclose(rows[1]["params_vs_first_m"] * 1e6, regression_params, abs_tol=0.5)
    expected_star = regression_params + star_params + widened - narrow
    assert math.isclose(rows[2]["params_vs_first_m"] * 1e6, expected_star, abs_tol=0.5)
    # MACs: the two star convs are 3x3 convs C -> C at every location of every level (counted by
    # the deform_conv2d handle), on top of the regression branch and the wider heads
    channels = star_model.head.cls_star.conv.weight.shape[0]
    assert rows[1]["gmac_vs_first"] > 0
    cells = _level_cells(star_model, SIZE)
    deform_gmac = 2 * channels * channels * 9 * cells / 1e9
    widened_gmac = (_weights(star_model.head) - _weights(paper_model.head)) * cells / 1e9 - deform_gmac
    assert rows[2]["gmac"] - rows[1]["gmac"] >= (deform_gmac + widened_gmac) * 0.999
    assert all(r["ms"] > 0 for r in rows)
    table = markdown_table(COMPONENT_HEADERS, component_table_rows(rows))
    assert table.count("\n") == len(rows) + 1
    assert output_map_size(star_model, SIZE)[0] > 0


def test_the_stride4_offsets_count_at_inference_only_when_decoded():
    """With HEATMAP_OFFSETS_ON the heatmap branch runs at inference for its offsets: its
    parameters count and its MACs exceed those of a stride-4 disk-offset-free model."""
    torch.set_num_threads(1)
    stride4 = ["MODEL.INSPOSE.OUTPUT_STRIDE", "4", "MODEL.INSPOSE.HEATMAP_STRIDE", "4"]
    with_offsets = stride4 + ["MODEL.INSPOSE.HEATMAP_OFFSETS_ON", "True"]
    rows = component_rows(
        str(REPO_ROOT / TINY_CONFIG), [], [("stride4", stride4), ("offsets", with_offsets)], CPU, SIZE, 2, 1, 0
    )
    model = build_inspose(str(REPO_ROOT / TINY_CONFIG), with_offsets, CPU)[0]
    expected = _count(model) - _count(model.heatmap_branch.predict)  # heatmaps: training only
    assert math.isclose(rows[1]["params_m"] * 1e6, expected, abs_tol=0.5)
    counted = inspose_flops(model, SIZE)["gmac_heads"]
    model.heatmap_at_test = False  # as if the branch were training-only
    uncounted = inspose_flops(model, SIZE)["gmac_heads"]
    map_h, map_w = output_map_size(model, SIZE)  # OUTPUT_STRIDE 4 = HEATMAP_STRIDE
    offsets_head = model.heatmap_branch.offsets.weight.numel() * map_h * map_w / 1e9
    assert counted - uncounted >= offsets_head * 0.999


def test_candidates_reach_the_kpnets_before_nms_and_only_the_detections_after_it():
    """--candidates N: N KP-Nets before NMS, P after it (KPNETS_AFTER_NMS); MACs count them."""
    torch.set_num_threads(1)
    after = REGRESSION + ["MODEL.INSPOSE.KPNETS_AFTER_NMS", "True", "MODEL.INSPOSE.INSTANCE_SCORE", "cls"]
    components = [("before", REGRESSION), ("after", after)]
    rows = component_rows(str(REPO_ROOT / TINY_CONFIG), [], components, CPU, SIZE, 2, 1, 0, candidates=6)
    assert [r["kpnets"] for r in rows] == [6, 2]
    model = build_inspose(str(REPO_ROOT / TINY_CONFIG), REGRESSION, CPU)[0]
    per_kpnet = inspose_flops(model, SIZE)["gmac_kpnet_per_instance"]
    assert math.isclose(rows[0]["gmac"] - rows[1]["gmac"], 4 * per_kpnet, rel_tol=1e-6)
    assert "KP-Nets run" in markdown_table(COMPONENT_HEADERS, component_table_rows(rows))


def test_the_command_line_rejects_candidates_it_cannot_use(capsys):
    benchmark = load_tool("benchmark")
    config = str(REPO_ROOT / TINY_CONFIG)
    for argv, message in [
        (["--config-file", config, "--candidates", "20"], "--candidates applies to --components only"),
        (["--config-file", config, "--components", "--persons", "10", "--candidates", "5"],
         r"--candidates \(5\) must be >= --persons \(10\)"),
    ]:  # fmt: skip
        with pytest.raises(SystemExit):
            benchmark.main(argv)
        assert re.search(message, capsys.readouterr().err)
