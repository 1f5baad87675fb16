"""KPNET_UPSAMPLE_FACTOR: KP-Net logits upsampled before the argmax (the authors' release).

References are computed independently: whole maps (``kpnet_forward``) upsampled at once with
``F.interpolate`` (align_corners False), the argmax there, softmaxes over whole maps.
"""
import numpy as np
import pytest
import torch
from torch.nn import functional as F

from inspose.config.errors import ConfigError
from inspose.config.validation import validate_inspose_config
from inspose.modeling.kpnet import KPNetLayout, kpnet_forward, relative_coordinate_axes
from inspose.modeling.kpnet_upsample import (
    HALO_ROWS,
    fine_peak_cells,
    kpnet_peaks_dense_upsampled,
    kpnet_peaks_upsampled,
    upsampled_band_rows,
    upsampled_kpnet_peaks_and_confidence,
)

from .model_utils import batch_item, tiny_cfg, tiny_model

P = "MODEL.INSPOSE."
NO_OFFSETS = (P + "DISK_OFFSET_ON", False)


def _kpnets(layout, instances=5, size=(11, 9), seed=0, device="cpu"):
    """(features (1, C_kp, H, W), params (n, C_f), rel_x (n, W), rel_y (n, H)) of random KP-Nets."""
    g = torch.Generator().manual_seed(seed)
    features = torch.randn(1, layout.in_channels, *size, generator=g)
    params = torch.randn(instances, layout.num_params, generator=g) * 0.7
    locations = torch.rand(instances, 2, generator=g) * torch.tensor([size[1], size[0]]) * 8
    rel_x, rel_y = relative_coordinate_axes(locations, torch.full((instances,), 64.0), size, 8.0)
    return [t.to(device) for t in (features, params, rel_x, rel_y)]


def _reference(features, params, layout, rel_x, rel_y, factor, mode):
    """Coarse (n, K, H, W) and fine (n, K, f H, f W) logits of whole maps."""
    image = torch.zeros(params.shape[0], dtype=torch.long, device=params.device)
    coarse = kpnet_forward(features, image, params, layout, rel_x, rel_y)
    coarse = coarse.view(params.shape[0], layout.num_keypoints, *features.shape[-2:])
    fine = F.interpolate(coarse, size=(coarse.shape[2] * factor, coarse.shape[3] * factor), mode=mode,
                         align_corners=False)  # fmt: skip
    return coarse, fine


def _elements_for_rows(rows, num, layout, width, factor):
    """A bound whose bands are ``rows`` coarse rows (see upsampled_band_rows)."""
    per_row = num * (layout.channels * (layout.depth - 1) + layout.num_keypoints * (1 + factor**2)) * width
    return (rows + 2 * HALO_ROWS) * per_row


# ------------------------------------------------------------------ banded == whole maps


@pytest.mark.parametrize("depth", [1, 3])
@pytest.mark.parametrize("mode,factor", [("bicubic", 2), ("bicubic", 4), ("bilinear", 2), ("bicubic", 3)])
@pytest.mark.parametrize("rows", [1, 2, 3, 100])
def test_banded_upsampled_peaks_equal_upsampling_whole_maps(depth, mode, factor, rows):
    layout = KPNetLayout(8, 8, 7, depth)
    features, params, rel_x, rel_y = _kpnets(layout, size=(11, 9), seed=depth + factor)
    bound = _elements_for_rows(rows, 5, layout, 9, factor)
    assert upsampled_band_rows(5, layout, 9, bound, factor) == rows
    cells, peak, log_norm = kpnet_peaks_upsampled(features, params, layout, rel_x, rel_y, bound, factor, mode)
    coarse, fine = _reference(features, params, layout, rel_x, rel_y, factor, mode)
    flat = fine.flatten(2)
    assert torch.equal(cells, flat.argmax(dim=2))
    torch.testing.assert_close(peak, flat.amax(dim=2), atol=1e-5, rtol=1e-6)
    torch.testing.assert_close(log_norm, torch.logsumexp(coarse.flatten(2), dim=2), atol=1e-4, rtol=1e-6)
    dense = kpnet_peaks_dense_upsampled(features, params, layout, rel_x, rel_y, factor, mode)
    assert torch.equal(dense[0], cells)
    torch.testing.assert_close(dense[1], peak, atol=1e-5, rtol=1e-6)
    torch.testing.assert_close(dense[2], log_norm, atol=1e-4, rtol=1e-6)


def test_upsampling_moves_the_argmax_between_coarse_cells():
    """The fine argmax is not always the coarse argmax's cell: the option changes predictions."""
    layout = KPNetLayout(8, 8, 17, 3)
    features, params, rel_x, rel_y = _kpnets(layout, instances=20, size=(12, 10), seed=5)
    cells, _, _ = kpnet_peaks_upsampled(features, params, layout, rel_x, rel_y, 1 << 20, 2)
    coarse, _ = _reference(features, params, layout, rel_x, rel_y, 2, "bicubic")
    coarse_argmax = coarse.flatten(2).argmax(dim=2)
    rows, cols = cells // 20, cells % 20
    assert not torch.equal((rows // 2) * 10 + cols // 2, coarse_argmax)


def test_no_instances():
    layout = KPNetLayout(8, 8, 17, 3)
    features, params, rel_x, rel_y = _kpnets(layout)
    cells, peak, log_norm = kpnet_peaks_upsampled(features, params[:0], layout, rel_x[:0], rel_y[:0], 1000, 2)
    assert cells.shape == peak.shape == log_norm.shape == (0, 17)


# ------------------------------------------------------------------ memory bound


def _largest_allocation(fn) -> int:
    """Bytes of the largest single CPU allocation any operator made while running ``fn``."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    return max(max(e.self_cpu_memory_usage for e in prof.events()), 0)


def test_band_activations_stay_within_the_bound():
    layout = KPNetLayout(8, 8, 17, 3)
    features, params, rel_x, rel_y = _kpnets(layout, instances=12, size=(40, 30), seed=2)
    bound = _elements_for_rows(3, 12, layout, 30, 2)

    def banded(max_elements):
        return lambda: kpnet_peaks_upsampled(features, params, layout, rel_x, rel_y, max_elements, 2)

    limit = bound * features.element_size()
    assert _largest_allocation(banded(bound)) <= limit
    assert _largest_allocation(banded(1 << 30)) > 2 * limit  # the measurement sees whole maps


# ------------------------------------------------------------------ confidences


@pytest.mark.parametrize("score", ["peak_mass", "peak_prob", "instance"])
@pytest.mark.parametrize("banded", [True, False])
def test_confidence_is_read_on_the_coarse_map_at_the_cell_of_the_fine_argmax(score, banded):
    layout = KPNetLayout(8, 8, 6, 3)
    features, params, rel_x, rel_y = _kpnets(layout, instances=7, size=(9, 8), seed=9)
    bound = _elements_for_rows(2, 7, layout, 8, 2) if banded else None
    cells, confidence = upsampled_kpnet_peaks_and_confidence(
        features, params, layout, rel_x, rel_y, 2, "bicubic", score, bound
    )
    coarse, fine = _reference(features, params, layout, rel_x, rel_y, 2, "bicubic")
    assert torch.equal(cells, fine.flatten(2).argmax(dim=2))
    if score == "instance":
        assert confidence is None
        return
    prob = torch.softmax(coarse.flatten(2), dim=2).view_as(coarse).numpy()
    expected = np.zeros(cells.shape)
    for n, k in np.ndindex(*cells.shape):  # brute force, one keypoint at a time
        row, col = divmod(int(cells[n, k]), 16)
        row, col = row // 2, col // 2
        if score == "peak_prob":
            expected[n, k] = prob[n, k, row, col]
        else:
            expected[n, k] = prob[n, k, max(row - 1, 0) : row + 2, max(col - 1, 0) : col + 2].sum()
    np.testing.assert_allclose(confidence.numpy(), expected, atol=1e-5)


# ------------------------------------------------------------------ export


def test_dense_upsampled_peaks_export_to_onnx(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    layout = KPNetLayout(8, 8, 5, 3)
    features, params, rel_x, rel_y = _kpnets(layout, instances=6, size=(10, 12), seed=4)

    class Peaks(torch.nn.Module):
        def forward(self, features, params, rel_x, rel_y):
            return kpnet_peaks_dense_upsampled(features, params, layout, rel_x, rel_y, 2, "bicubic")

    path = str(tmp_path / "peaks.onnx")
    args = (features, params, rel_x, rel_y)
    torch.onnx.export(Peaks(), args, path, dynamo=True, input_names=["f", "p", "x", "y"])
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    got = session.run(None, {n: t.numpy() for n, t in zip(["f", "p", "x", "y"], args)})
    expected = Peaks()(*args)
    np.testing.assert_array_equal(got[0], expected[0].numpy())
    np.testing.assert_allclose(got[1], expected[1].numpy(), atol=1e-4)
    np.testing.assert_allclose(got[2], expected[2].numpy(), atol=1e-4)


@pytest.mark.slow
def test_model_with_factor_2_exports_to_onnx_equal_to_eager(tmp_path):
    pytest.importorskip("onnxruntime")
    from inspose.deploy.export import check_exportable, export_model
    from inspose.deploy.runtime import OnnxPosePredictor

    opts = (P + "KPNET_UPSAMPLE_FACTOR", 2, *NO_OFFSETS, P + "SCORE_THRESH_TEST", 0.0, P + "PRE_NMS_TOPK_TEST", 30,
            "TEST.DETECTIONS_PER_IMAGE", 10, "INPUT.MIN_SIZE_TEST", 96, "INPUT.MAX_SIZE_TEST", 128)  # fmt: skip
    cfg, model = tiny_cfg(*opts), tiny_model(*opts).eval()
    check_exportable(cfg, dynamic=False)
    path = str(tmp_path / "factor2.onnx")
    export_model(cfg, model, "onnx", path, (96, 128))
    item = batch_item(96, 128, 0, seed=3)  # BGR pixels (INPUT.FORMAT), already at the test size
    expected = _predict(model, item)
    got = OnnxPosePredictor(path)(item["image"].permute(1, 2, 0).numpy().copy())
    assert len(got.scores) == len(expected) > 0
    order = np.argsort(-got.scores, kind="stable")
    np.testing.assert_allclose(got.scores[order], expected.scores.numpy(), atol=1e-4)
    np.testing.assert_allclose(got.keypoints[order], expected.pred_keypoints.numpy(), atol=1e-3)


# ------------------------------------------------------------------ config validation


def _validate(*opts):
    validate_inspose_config(tiny_cfg(*opts))


def test_valid_upsampling_configs():
    _validate(P + "KPNET_UPSAMPLE_FACTOR", 2, *NO_OFFSETS)
    _validate(P + "KPNET_UPSAMPLE_FACTOR", 2, P + "KPNET_UPSAMPLE_MODE", "bilinear", *NO_OFFSETS)
    _validate(P + "KPNET_UPSAMPLE_FACTOR", 2, P + "HEATMAP_OFFSETS_ON", True, P + "HEATMAP_STRIDE", 4)
    _validate(P + "KPNET_UPSAMPLE_FACTOR", 4, P + "OUTPUT_STRIDE", 16, *NO_OFFSETS)


@pytest.mark.parametrize(
    "opts,names",
    [
        ((P + "KPNET_UPSAMPLE_FACTOR", 2), ("KPNET_UPSAMPLE_FACTOR", "DISK_OFFSET_ON", "HEATMAP_OFFSETS_ON")),
        ((P + "KPNET_UPSAMPLE_FACTOR", 3, *NO_OFFSETS), ("KPNET_UPSAMPLE_FACTOR", "OUTPUT_STRIDE")),
        ((P + "KPNET_UPSAMPLE_FACTOR", 2, P + "HEATMAP_OFFSETS_ON", True), ("KPNET_UPSAMPLE_FACTOR", "HEATMAP_STRIDE")),
        ((P + "KPNET_UPSAMPLE_FACTOR", 0), ("KPNET_UPSAMPLE_FACTOR",)),
        ((P + "KPNET_UPSAMPLE_MODE", "nearest"), ("KPNET_UPSAMPLE_MODE",)),
    ],
    ids=["disk_offsets", "not_a_divisor", "heatmap_stride", "zero", "mode"],
)
def test_invalid_upsampling_configs_name_both_keys(opts, names):
    with pytest.raises(ConfigError) as error:
        _validate(*opts)
    for name in names:
        assert name in str(error.value)


# ------------------------------------------------------------------ the model end to end


def _outputs(model, size=(96, 128)):
    item = batch_item(*size, 0, seed=3)
    with torch.no_grad():
        outputs = model.predict_maps(model.preprocess_image([item]))
    locs = model.codec.locations(outputs.level_sizes, model.device)
    return item, outputs, locs


def _reference_keypoints(model, outputs, locs, locations, factor, offset_map=None):
    """(n, K, 2) keypoints of the KP-Nets at ``locations`` from whole upsampled maps, clamped."""
    from inspose.modeling.level_maps import gather_locations

    params = gather_locations(outputs.params, torch.zeros_like(locations), locations)
    rel_x, rel_y = model.codec.relative_coordinates(locs, locations, outputs.map_size)
    layout = model.predictor.layout
    _, fine = _reference(outputs.kp_features[:1], params, layout, rel_x, rel_y, factor, "bicubic")
    width = fine.shape[3]
    cells = fine.flatten(2).argmax(dim=2)
    rows, cols = (cells // width).float(), (cells % width).float()
    if offset_map is None:
        dx = dy = torch.full_like(rows, 0.5)
    else:
        kinds = torch.arange(layout.num_keypoints)
        flat = offset_map[0].flatten(1)
        dx, dy = flat[2 * kinds, cells], flat[2 * kinds + 1, cells]
    stride = model.codec.output_stride / factor
    return torch.stack([(cols + dx) * stride, (rows + dy) * stride], dim=2)


def _candidates(model, outputs, locs, size=(96, 128)):
    scores = model.predictor.scores(outputs)[0]
    locations = model.predictor.select_candidates(scores, outputs.level_sizes)
    found = model.predictor.candidates(outputs, locs, scores, 0, size)
    return locations, found


def test_factor_2_candidates_equal_the_whole_map_reference():
    model = tiny_model(P + "KPNET_UPSAMPLE_FACTOR", 2, *NO_OFFSETS, P + "SCORE_THRESH_TEST", 0.0,
                       P + "PRE_NMS_TOPK_TEST", 40, P + "KPNET_CHUNK_ELEMENTS", 20_000).eval()  # fmt: skip
    _, outputs, locs = _outputs(model)
    locations, found = _candidates(model, outputs, locs)
    expected = _reference_keypoints(model, outputs, locs, locations, 2)
    expected[..., 0].clamp_(0, 128)
    expected[..., 1].clamp_(0, 96)
    assert locations.numel() == 40
    assert torch.equal(found.keypoints[..., :2], expected)
    assert ((found.keypoints[..., :2] * 2) % 8 == 4).all()  # fine cell centres at stride 4


def test_factor_2_reads_offsets_of_the_fine_size():
    model = tiny_model(P + "KPNET_UPSAMPLE_FACTOR", 2, *NO_OFFSETS, P + "SCORE_THRESH_TEST", 0.0,
                       P + "PRE_NMS_TOPK_TEST", 20).eval()  # fmt: skip
    _, outputs, locs = _outputs(model)
    height, width = outputs.map_size
    g = torch.Generator().manual_seed(0)
    outputs.offsets = torch.rand(1, 2 * 17, 2 * height, 2 * width, generator=g)  # hand-made, stride 4
    locations, found = _candidates(model, outputs, locs)
    expected = _reference_keypoints(model, outputs, locs, locations, 2, outputs.offsets)
    torch.testing.assert_close(found.keypoints[..., :2], expected.clamp(min=0), atol=0, rtol=0)
    outputs.offsets = torch.rand(1, 2 * 17, height, width, generator=g)  # OUTPUT_STRIDE: refused
    with pytest.raises(ValueError, match="KPNET_UPSAMPLE_FACTOR"):
        _candidates(model, outputs, locs)


def test_release_decoding_reads_the_stride_4_heatmap_offsets():
    """The release's combination: factor 2 with the heatmap branch's offsets at stride 4."""
    model = tiny_model(P + "KPNET_UPSAMPLE_FACTOR", 2, P + "HEATMAP_STRIDE", 4, P + "HEATMAP_OFFSETS_ON", True,
                       P + "SCORE_THRESH_TEST", 0.0, P + "PRE_NMS_TOPK_TEST", 20).eval()  # fmt: skip
    _, outputs, locs = _outputs(model)
    assert tuple(outputs.offsets.shape[-2:]) == (2 * outputs.map_size[0], 2 * outputs.map_size[1])
    locations, found = _candidates(model, outputs, locs)
    expected = _reference_keypoints(model, outputs, locs, locations, 2, outputs.offsets)
    expected[..., 0].clamp_(0, 128)
    expected[..., 1].clamp_(0, 96)
    torch.testing.assert_close(found.keypoints[..., :2], expected, atol=1e-5, rtol=0)


def _predict(model, item):
    with torch.no_grad():
        return model([item])[0]["instances"]


def test_factor_2_end_to_end_keypoints_lie_in_the_image_and_factor_1_is_unchanged():
    fast = (P + "SCORE_THRESH_TEST", 0.0, P + "PRE_NMS_TOPK_TEST", 30)
    today = tiny_model(*fast).eval()
    explicit = tiny_model(*fast, P + "KPNET_UPSAMPLE_FACTOR", 1).eval()
    item = batch_item(96, 128, 0, seed=3)
    before, after = _predict(today, item), _predict(explicit, item)
    assert len(before) > 0
    for field in ("pred_keypoints", "scores"):
        assert torch.equal(before.get(field), after.get(field))
    _, outputs, locs = _outputs(explicit)  # factor 1 still equals the OUTPUT_STRIDE argmax + offsets
    locations, found = _candidates(explicit, outputs, locs)
    expected = _reference_keypoints(explicit, outputs, locs, locations, 1, outputs.offsets)
    expected[..., 0].clamp_(0, 128)
    expected[..., 1].clamp_(0, 96)
    torch.testing.assert_close(found.keypoints[..., :2], expected, atol=1e-5, rtol=0)

    upsampled = tiny_model(*fast, P + "KPNET_UPSAMPLE_FACTOR", 2, *NO_OFFSETS).eval()
    result = _predict(upsampled, item)
    xy = result.pred_keypoints[..., :2]
    assert len(result) > 0 and (xy >= 0).all()
    assert (xy[..., 0] <= 128).all() and (xy[..., 1] <= 96).all()
    assert ((result.pred_keypoints[..., 2] >= 0) & (result.pred_keypoints[..., 2] <= 1)).all()


def test_tta_honours_the_factor():
    from inspose.modeling.tta import InsPoseWithTTA

    opts = (P + "KPNET_UPSAMPLE_FACTOR", 2, *NO_OFFSETS, P + "SCORE_THRESH_TEST", 0.0, P + "PRE_NMS_TOPK_TEST", 30,
            "INPUT.MIN_SIZE_TEST", 96, "INPUT.MAX_SIZE_TEST", 128, "TEST.AUG.MIN_SIZES", (96,),
            "TEST.AUG.MAX_SIZE", 128, "TEST.AUG.FLIP", False)  # fmt: skip
    cfg = tiny_cfg(*opts)
    model = tiny_model(*opts).eval()
    item = batch_item(96, 128, 0, seed=3)
    plain = _predict(model, item)
    with torch.no_grad():
        augmented = InsPoseWithTTA(cfg, model)([item])[0]["instances"]
    order_a, order_b = plain.scores.argsort(descending=True), augmented.scores.argsort(descending=True)
    torch.testing.assert_close(augmented.pred_keypoints[order_b], plain.pred_keypoints[order_a])
    assert ((plain.pred_keypoints[..., :2] * 2) % 8 == 4).all()  # stride-4 cell centres


@pytest.mark.parametrize("argmax", ["global", "coarse_cell"])
def test_oks_varifocal_targets_decode_the_upsampled_maps(argmax):
    """VARIFOCAL_TARGET "oks" with factor 2: every positive's OKS of its fine-argmax keypoints (a
    two-image batch, cell centres at stride 4), with positives the budget left untrained; the
    fine argmax found as KPNET_UPSAMPLE_ARGMAX says."""
    from inspose.modeling.level_maps import gather_locations
    from inspose.modeling.quality_targets import oks_scores

    model = tiny_model(P + "CLS_LOSS", "varifocal", P + "VARIFOCAL_TARGET", "oks", P + "KPNET_UPSAMPLE_FACTOR", 2,
                       *NO_OFFSETS, P + "MAX_KPNET_POSITIVES_PER_IMAGE", 3,
                       P + "KPNET_UPSAMPLE_ARGMAX", argmax)  # fmt: skip
    batch = [batch_item(96, 128, 2, seed=1), batch_item(96, 128, 1, seed=2)]
    criterion, codec = model.criterion, model.codec
    with torch.no_grad():
        outputs = model.predict_maps(model.preprocess_image(batch))
        locs = codec.locations(outputs.level_sizes, model.device)
        targets = codec.encode(locs, [b["instances"] for b in batch], [None, None])
        _, trained = criterion.kpnet_loss(outputs, locs, targets)
        quality = criterion.varifocal(outputs, locs, targets, trained)
    assert not targets.pos_trained.all()
    params = gather_locations(outputs.params, targets.pos_image, targets.pos_location)
    rel_x, rel_y = codec.relative_coordinates(locs, targets.pos_location, outputs.map_size)
    expected = torch.zeros_like(quality)
    for b in range(2):  # per image: whole maps of its positives
        rows = (targets.pos_image == b).nonzero().squeeze(1)
        feats = outputs.kp_features[b : b + 1]
        coarse, fine = _reference(feats, params[rows], criterion.layout, rel_x[rows], rel_y[rows], 2, "bicubic")
        cells = fine.flatten(2).argmax(dim=2) if argmax == "global" else _restricted_reference(coarse, fine, 2)
        xy = torch.stack([(cells % fine.shape[3] + 0.5) * 4, (cells // fine.shape[3] + 0.5) * 4], dim=2)
        sigmas = criterion.varifocal.sigmas(xy.device)
        expected[rows] = oks_scores(xy, targets.pos_keypoints[rows], targets.pos_areas[rows], sigmas)
    assert (expected > 0.01).any()
    torch.testing.assert_close(quality, expected)


# ------------------------------------------------------------------ CUDA


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_cuda_banded_upsampled_peaks_equal_whole_maps_and_the_cpu():
    layout = KPNetLayout(8, 8, 17, 3)
    cpu = _kpnets(layout, instances=30, size=(25, 38), seed=1)
    gpu = [t.cuda() for t in cpu]
    bound = _elements_for_rows(3, 30, layout, 38, 2)
    cells, peak, log_norm = kpnet_peaks_upsampled(*gpu[:2], layout, *gpu[2:], bound, 2)
    _, fine = _reference(gpu[0], gpu[1], layout, gpu[2], gpu[3], 2, "bicubic")
    assert torch.equal(cells, fine.flatten(2).argmax(dim=2))
    cpu_cells, cpu_peak, cpu_norm = kpnet_peaks_upsampled(*cpu[:2], layout, *cpu[2:], bound, 2)
    assert (cells.cpu() == cpu_cells).float().mean() >= 0.99  # near-ties may flip between devices
    torch.testing.assert_close(peak.cpu(), cpu_peak, atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(log_norm.cpu(), cpu_norm, atol=1e-4, rtol=1e-5)


# ------------------------------------------------------------------ KPNET_UPSAMPLE_ARGMAX "coarse_cell"


def _restricted_reference(coarse, fine, factor):
    """(n, K) flat fine cells: the whole-map upsampled argmax among the f x f fine cells of each
    coarse argmax cell (a brute force over the reference maps)."""
    n, k, height, width = coarse.shape
    best = coarse.flatten(2).argmax(dim=2)
    rows, cols = best // width, best % width
    out = torch.empty_like(best)
    for i in range(n):
        for j in range(k):
            r, c = int(rows[i, j]), int(cols[i, j])
            block = fine[i, j, r * factor : (r + 1) * factor, c * factor : (c + 1) * factor]
            dy, dx = divmod(int(block.argmax()), factor)
            out[i, j] = (r * factor + dy) * width * factor + c * factor + dx
    return out


@pytest.mark.parametrize("mode,factor", [("bicubic", 2), ("bicubic", 3), ("bilinear", 2)])
@pytest.mark.parametrize("size", [(11, 9), (3, 2), (1, 5)])
def test_coarse_cell_argmax_equals_the_restricted_whole_map_argmax(mode, factor, size):
    """Also on maps so small that every patch is clamped at an edge."""
    layout = KPNetLayout(8, 8, 7, 3)
    features, params, rel_x, rel_y = _kpnets(layout, instances=6, size=size, seed=factor + size[0])
    coarse, fine = _reference(features, params, layout, rel_x, rel_y, factor, mode)
    expected = _restricted_reference(coarse, fine, factor)
    for bound in (None, _elements_for_rows(1, 6, layout, size[1], factor)):
        cells, log_norm = fine_peak_cells(features, params, layout, rel_x, rel_y, factor, mode, "coarse_cell", bound)
        flat = fine.flatten(2)
        # the same cell, or (a float tie: a 1-row map's two fine rows) a cell of the same value
        same = cells == expected
        picked, best = flat.gather(2, cells[..., None])[..., 0], flat.gather(2, expected[..., None])[..., 0]
        coarse_of = (cells // (size[1] * factor) // factor) * size[1] + (cells % (size[1] * factor)) // factor
        assert torch.equal(coarse_of, coarse.flatten(2).argmax(dim=2))
        assert (same | ((picked - best).abs() <= 1e-5)).all() and same.float().mean() > 0.5
        torch.testing.assert_close(log_norm, torch.logsumexp(coarse.flatten(2), dim=2), atol=1e-4, rtol=1e-6)


def _map_kpnet(maps):
    """A depth-1 KP-Net whose logits are ``maps`` (1, K, H, W) themselves: keypoint k reads
    feature channel k (weight 1), no coordinates, no bias."""
    kinds = maps.shape[1]
    layout = KPNetLayout(kinds, 8, kinds, 1)
    weight = torch.zeros(kinds, kinds + 2)
    weight[:, :kinds] = torch.eye(kinds)
    params = torch.cat([weight.flatten(), torch.zeros(kinds)])[None]
    height, width = maps.shape[-2:]
    return layout, params, torch.zeros(1, width), torch.zeros(1, height)


def test_a_sharp_peak_survives_coarse_cell_but_not_the_global_argmax():
    """An isolated coarse peak next to a broad, slightly lower plateau: the coarse softmax puts
    nearly all its mass on the peak, the global bicubic argmax lands on the plateau (the
    release's decode), "coarse_cell" stays on the peak."""
    maps = torch.full((1, 1, 12, 12), -60.0)
    maps[0, 0, 3, 3] = 16.0
    maps[0, 0, 7:12, 7:12] = 5.0
    maps[0, 0, 9, 9] = 14.0
    layout, params, rel_x, rel_y = _map_kpnet(maps)
    assert torch.softmax(maps.flatten(), 0)[3 * 12 + 3] > 0.85
    width = 24
    for bound in (None, 1 << 12):
        globally, _ = fine_peak_cells(maps, params, layout, rel_x, rel_y, 2, "bicubic", "global", bound)
        in_cell, _ = fine_peak_cells(maps, params, layout, rel_x, rel_y, 2, "bicubic", "coarse_cell", bound)
        g_row, g_col = divmod(int(globally), width)
        c_row, c_col = divmod(int(in_cell), width)
        assert (g_row // 2, g_col // 2) != (3, 3)
        assert (c_row // 2, c_col // 2) == (3, 3)


def test_coarse_cell_argmax_through_the_predictor():
    """KPNET_UPSAMPLE_ARGMAX reaches the predictor: with the same weights, each coarse_cell
    keypoint (a stride-4 cell centre) lies within 2 px of the factor-1 model's (the stride-8 centre
    of the coarse argmax cell that holds it)."""
    keep_all = (P + "SCORE_THRESH_TEST", 0.0, P + "PRE_NMS_TOPK_TEST", 30, P + "NMS_THRESH_TEST", 1.0, *NO_OFFSETS)
    plain = tiny_model(*keep_all).eval()
    refined = tiny_model(*keep_all, P + "KPNET_UPSAMPLE_FACTOR", 2, P + "KPNET_UPSAMPLE_ARGMAX", "coarse_cell").eval()
    item = batch_item(96, 128, 0, seed=3)
    coarse, fine = _predict(plain, item), _predict(refined, item)
    assert len(coarse) == len(fine) > 0
    assert torch.equal(coarse.scores, fine.scores)
    difference = (fine.pred_keypoints[..., :2] - coarse.pred_keypoints[..., :2]).abs()
    assert difference.max() <= 2.0 + 1e-4 and difference.max() > 0
