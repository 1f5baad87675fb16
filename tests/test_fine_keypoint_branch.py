"""The release's heatmap branch: stride 4, size-adaptive radii, heatmap offsets, AE tags.

Targets against brute-force / per-person references, the AE losses against a hand computation,
shapes, gradients, a training step and inference with every key on, validation, the paper's model
unchanged at the defaults, CUDA parity."""
import math

import numpy as np
import pytest
import torch
from detectron2.utils.events import EventStorage
from torchvision.ops import box_iou

from inspose.config import validate_inspose_config
from inspose.config.errors import ConfigError
from inspose.modeling.ae_loss import ae_pull_push_sums
from inspose.modeling.codec import InsPoseCodec
from inspose.modeling.codec.adaptive_targets import (
    AdaptiveRadius,
    adaptive_gaussian_heatmaps,
    gaussian_radius,
    person_radii,
    tag_targets,
    window_offset_targets,
)
from inspose.modeling.codec.assignment import grow_boxes, pseudo_boxes_from_keypoints
from inspose.modeling.heads import FineKeypointBranch, HeatmapBranch

from .model_utils import batch_item, person_instances, runs_at_inference, tiny_cfg, tiny_model

P = "MODEL.INSPOSE."
# Every new key on, decoding at stride 4 (OUTPUT_STRIDE 4, KPNET_UPSAMPLE_FACTOR 1).
ALL_ON = [P + "HEATMAP_STRIDE", 4, P + "HEATMAP_RADIUS_MODE", "adaptive", P + "HEATMAP_OFFSETS_ON", True,
          P + "AE_TAGS_ON", True, P + "OUTPUT_STRIDE", 4]  # fmt: skip
TINY_PARAMETERS = 12_000_117  # the tiny config's paper model (measured before these options existed)
NEW_LOSSES = {"loss_heatmap_offset", "loss_ae_pull", "loss_ae_push"}


def _losses(model, batch):
    model.train()
    with EventStorage():
        return model(batch)


def _persons(num_keypoints=3, seed=0):
    """(P, K, 3) keypoints of two images' persons (some unlabelled), image index, map size."""
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(5, num_keypoints, 2, generator=g) * torch.tensor([60.0, 44.0])
    xy[1] = xy[0] + 3.0  # persons 0 and 1 close together: their windows overlap
    v = torch.full((5, num_keypoints, 1), 2.0)
    v[2, 0] = 0
    v[3, 1] = 0
    return torch.cat([xy, v], dim=2), torch.tensor([0, 0, 0, 1, 1]), (12, 16)


# ---------------------------------------------------------------------------- radius
def _brute_force_radius(h: float, w: float, o: float, steps: int = 20001):
    """The largest r on a grid keeping IoU >= o for the shifted, shrunk and grown boxes, and the
    grid step."""
    r = torch.linspace(0, min(h, w) / 2, steps, dtype=torch.float64)
    gt = torch.tensor([[0.0, 0.0, w, h]], dtype=torch.float64)
    shifted = torch.stack([r, r, w + r, h + r], 1)
    shrunk = torch.stack([r, r, w - r, h - r], 1)
    grown = torch.stack([-r, -r, w + r, h + r], 1)
    ious = [box_iou(gt, b)[0] for b in (shifted, shrunk, grown)]
    ok = (ious[0] >= o) & (ious[1] >= o) & (ious[2] >= o)
    first_bad = int((~ok).nonzero()[0]) if (~ok).any() else steps
    return float(r[first_bad - 1]), float(r[1] - r[0])


@pytest.mark.parametrize("o", [0.5, 0.7, 0.9])
def test_exact_radius_is_the_largest_keeping_the_min_overlap(o):
    for h, w in [(1.5, 2.0), (4.0, 10.0), (25.0, 62.0), (60.0, 30.0), (7.0, 7.0)]:
        expected, step = _brute_force_radius(h, w, o)
        got = float(gaussian_radius(torch.tensor([h]), torch.tensor([w]), o, "exact"))
        assert abs(got - expected) <= 2 * step, (h, w, o, got, expected)


def test_cornernet_radius_is_each_case_b_plus_root_over_two():
    """CornerNet's code: min over cases of a * (larger root), the roots from numpy."""
    for (h, w), o in zip([(4.0, 10.0), (25.0, 62.0), (60.0, 30.0)], [0.9, 0.7, 0.5]):
        quadratics = [(1, -(h + w), w * h * (1 - o) / (1 + o)), (4, -2 * (h + w), (1 - o) * w * h),
                      (4 * o, 2 * o * (h + w), (o - 1) * w * h)]  # fmt: skip
        expected = min(a * max(np.roots([a, b, c]).real) for a, b, c in quadratics)
        got = float(gaussian_radius(torch.tensor([h]), torch.tensor([w]), o, "cornernet"))
        assert got == pytest.approx(expected, rel=1e-5)
        a3, b3, c3 = quadratics[2]
        assert got == pytest.approx(a3 * max(np.roots([a3, b3, c3]).real), rel=1e-5)  # case 3's
        assert got > float(gaussian_radius(torch.tensor([h]), torch.tensor([w]), o, "exact"))


def test_person_radii_floor_and_clamp_in_cells():
    boxes = torch.tensor([[0.0, 0.0, 400.0, 1000.0], [0.0, 0.0, 8.0, 8.0], [10.0, 10.0, 110.0, 250.0]])
    spec = AdaptiveRadius(min_radius=1, max_radius=3, min_overlap=0.7, formula="exact")
    got = person_radii(boxes, 4, spec)
    raw = gaussian_radius(torch.tensor([250.0, 2.0, 60.0]), torch.tensor([100.0, 2.0, 25.0]), 0.7)
    assert got.tolist() == raw.floor().clamp(1, 3).long().tolist()
    assert got.tolist()[:2] == [3, 1]


# ---------------------------------------------------------------------------- targets
def _reference_heatmaps(keypoints, radii, image_index, batch, stride, size):
    """Dense per-person, per-keypoint loops over every cell."""
    height, width = size
    out = torch.zeros(batch, keypoints.shape[1], height, width)
    for p in range(keypoints.shape[0]):
        r = int(radii[p])
        sigma = (2 * r + 1) / 6
        for k in range(keypoints.shape[1]):
            if keypoints[p, k, 2] <= 0:
                continue
            x, y = float(keypoints[p, k, 0]) / stride, float(keypoints[p, k, 1]) / stride
            for i in range(height):
                for j in range(width):
                    if max(abs(j - math.floor(x)), abs(i - math.floor(y))) > r:
                        continue
                    d2 = (j + 0.5 - x) ** 2 + (i + 0.5 - y) ** 2
                    peak = j == math.floor(x) and i == math.floor(y)
                    value = 1.0 if peak else math.exp(-d2 / (2 * sigma**2))
                    out[image_index[p], k, i, j] = max(float(out[image_index[p], k, i, j]), value)
    return out


def test_adaptive_heatmaps_match_a_per_person_computation():
    keypoints, image_index, size = _persons()
    radii = torch.tensor([2, 1, 0, 3, 1])
    got = adaptive_gaussian_heatmaps(keypoints, radii, image_index, 2, 4, size)
    expected = _reference_heatmaps(keypoints, radii, image_index, 2, 4, size)
    assert torch.allclose(got, expected, atol=1e-6)
    assert int((got == 1).sum()) == int((keypoints[..., 2] > 0).sum())


def _reference_window_offsets(keypoints, radii, image_index, batch, stride, size):
    """Brute force: each cell takes the keypoint nearest its centre among the squares covering it."""
    height, width = size
    num_keypoints = keypoints.shape[1]
    offsets = torch.zeros(batch, num_keypoints, height, width, 2)
    best = torch.full((batch, num_keypoints, height, width), math.inf)
    for p in range(keypoints.shape[0]):
        for k in range(num_keypoints):
            if keypoints[p, k, 2] <= 0:
                continue
            x, y = float(keypoints[p, k, 0]) / stride, float(keypoints[p, k, 1]) / stride
            for i in range(height):
                for j in range(width):
                    if max(abs(j - math.floor(x)), abs(i - math.floor(y))) > int(radii[p]):
                        continue
                    d = math.hypot(j + 0.5 - x, i + 0.5 - y)
                    b = int(image_index[p])
                    if d < best[b, k, i, j]:  # strict: ties keep the first person
                        best[b, k, i, j] = d
                        offsets[b, k, i, j] = torch.tensor([x - j, y - i])
    return offsets, torch.isfinite(best)


def test_window_offsets_nearest_keypoint_wins():
    keypoints, image_index, size = _persons()
    radii = torch.tensor([2, 2, 1, 3, 0])
    sparse = window_offset_targets(keypoints, radii, image_index, 4, size)
    expected, supervised = _reference_window_offsets(keypoints, radii, image_index, 2, 4, size)
    mask = torch.zeros(supervised.numel(), dtype=torch.bool)
    mask[sparse.index] = True
    assert torch.equal(mask.view_as(supervised), supervised)
    assert sparse.index.unique().numel() == sparse.index.numel()
    dense = sparse.dense(2, keypoints.shape[1], size).view(2, keypoints.shape[1], 2, *size)
    assert torch.allclose(dense.permute(0, 1, 3, 4, 2), expected, atol=1e-6)


def test_codec_encodes_stride_4_targets_with_the_pseudo_box_radii():
    cfg = tiny_cfg(*ALL_ON, P + "HEATMAP_RADIUS_FORMULA", "cornernet")
    codec = InsPoseCodec.from_config(cfg)
    instances = [person_instances(96, 128, 3, seed=4), person_instances(96, 128, 1, seed=5)]
    p3 = (12, 16)
    locs = codec.locations([p3, (6, 8), (3, 4), (2, 2), (1, 1)], torch.device("cpu"))
    targets = codec.encode(locs, instances, [None, None])
    keypoints = torch.cat([i.gt_keypoints.tensor for i in instances])
    image_index = torch.tensor([0, 0, 0, 1])
    boxes = grow_boxes(pseudo_boxes_from_keypoints(keypoints), cfg.MODEL.INSPOSE.PSEUDO_BOX_MIN_SIZE)
    radii = person_radii(boxes, 4, AdaptiveRadius(0, 3, 0.9, "cornernet"))
    assert targets.heatmaps.shape == (2, 17, 24, 32) and targets.heatmap_weight.shape == (2, 1, 24, 32)
    assert torch.allclose(targets.heatmaps, _reference_heatmaps(keypoints, radii, image_index, 2, 4, (24, 32)))
    expected = window_offset_targets(keypoints, radii, image_index, 4, (24, 32))
    assert torch.equal(targets.heatmap_offsets.index, expected.index)
    tags = targets.ae_tags
    assert tags.index.numel() == 4 * 17 and tags.person_image.tolist() == [0, 0, 0, 1]


# ---------------------------------------------------------------------------- AE losses
def test_ae_pull_and_push_against_a_hand_computation():
    """Image 0: persons A (tags 1, 3) and B (tag 0); image 1: C (tags 5, 5, 8)."""
    stride, size = 4, (6, 8)
    keypoints = torch.zeros(3, 3, 3)
    cells = {(0, 0): (1, 2), (0, 1): (5, 4), (1, 2): (7, 0), (2, 0): (0, 5), (2, 1): (3, 3), (2, 2): (6, 1)}
    for (p, k), (col, row) in cells.items():
        keypoints[p, k] = torch.tensor([(col + 0.7) * stride, (row + 0.2) * stride, 2.0])
    values = {(0, 0): 1.0, (0, 1): 3.0, (1, 2): 0.0, (2, 0): 5.0, (2, 1): 5.0, (2, 2): 8.0}
    image_index = torch.tensor([0, 0, 1])
    tags = torch.randn(2, 3, *size) * 10  # elsewhere: noise (an off-by-one gather would read it)
    for (p, k), (col, row) in cells.items():
        tags[image_index[p], k, row, col] = values[(p, k)]
    pull, persons, push, pairs = ae_pull_push_sums(tags, tag_targets(keypoints, image_index, stride, size))
    # pull: variances 1 (A), 0 (B), 2 (C); push: the one pair (A, B) of image 0, means 2 and 0.
    assert float(persons) == 3 and float(pairs) == 1
    assert float(pull) / 3 == pytest.approx(1.0)
    assert float(push) == pytest.approx(math.exp(-4.0))


# ---------------------------------------------------------------------------- branch and model
def test_branch_shapes_at_stride_4():
    branch = FineKeypointBranch(32, num_keypoints=5, num_convs=2, channels=32, norm="GN", upsample=2,
                                upsampled_convs=1, offsets_on=True, tags_on=True)  # fmt: skip
    maps = branch(torch.randn(2, 32, 12, 16))
    assert maps.heatmaps.shape == maps.tags.shape == (2, 5, 24, 32)
    assert maps.offsets.shape == (2, 10, 24, 32)
    only = branch(torch.randn(1, 32, 12, 16), offsets_only=True)
    assert only.heatmaps is None and only.tags is None and only.offsets.shape == (1, 10, 24, 32)


def test_every_key_on_trains_a_step_and_reaches_every_new_parameter():
    model = tiny_model(*ALL_ON)
    assert isinstance(model.heatmap_branch, FineKeypointBranch) and model.offset_branch is None
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    losses = _losses(model, [batch_item(96, 128, 3), batch_item(96, 128, 2, seed=1)])
    assert set(losses) == {"loss_cls", "loss_kpnet", "loss_heatmap"} | NEW_LOSSES
    assert all(torch.isfinite(v) for v in losses.values()), losses
    optimizer.zero_grad()
    sum(losses.values()).backward()
    for name, parameter in model.heatmap_branch.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name
    before = model.heatmap_branch.offsets.weight.detach().clone()
    optimizer.step()
    assert not torch.equal(before, model.heatmap_branch.offsets.weight)


def test_images_without_persons_give_finite_losses_and_keep_the_branch_in_the_graph():
    model = tiny_model(*ALL_ON)
    losses = _losses(model, [batch_item(96, 128, 0), batch_item(96, 128, 0, seed=1)])
    assert NEW_LOSSES <= set(losses) and all(torch.isfinite(v) for v in losses.values()), losses
    sum(losses.values()).backward()
    assert all(p.grad is not None for p in model.heatmap_branch.parameters())


def test_training_maps_are_at_stride_4():
    model = tiny_model(*ALL_ON).train()
    outputs = model.predict_maps(model.preprocess_image([batch_item(96, 128, 1)]))
    assert outputs.heatmaps.shape == outputs.heatmap_tags.shape == (1, 17, 24, 32)
    assert outputs.offsets.shape == (1, 34, 24, 32) and outputs.map_size == (24, 32)


def test_inference_decodes_with_the_branch_offsets():
    """The branch runs at inference and its offsets move the keypoints: a constant dx of the
    offset head shifts every (unclamped) x by dx * HEATMAP_STRIDE."""
    model = tiny_model(*ALL_ON, P + "SCORE_THRESH_TEST", 0.0).eval()
    calls = []
    model.heatmap_branch.register_forward_hook(lambda *a: calls.append(1))
    head = model.heatmap_branch.offsets
    xs = []
    for dx in (0.25, 0.75):
        with torch.no_grad():
            head.weight.zero_()
            head.bias.zero_()
            head.bias[0::2] = dx
            xs.append(model([batch_item(96, 128, 0)])[0]["instances"].pred_keypoints[..., 0])
    assert calls and xs[0].numel() > 0
    inside = (xs[0] > 0) & (xs[1] < 126)  # away from the clamp at the image border
    assert inside.any() and torch.allclose(xs[1][inside] - xs[0][inside], torch.tensor(2.0))


def test_the_heatmap_branch_still_skips_inference_without_its_offsets():
    model = tiny_model(P + "HEATMAP_STRIDE", 4, P + "AE_TAGS_ON", True)
    assert not runs_at_inference(model, model.heatmap_branch)


@pytest.mark.parametrize(
    "opts, keys",
    [
        ([P + "HEATMAP_OFFSETS_ON", True, P + "HEATMAP_ON", False], ("HEATMAP_OFFSETS_ON", "HEATMAP_ON")),
        ([P + "AE_TAGS_ON", True, P + "HEATMAP_ON", False], ("AE_TAGS_ON", "HEATMAP_ON")),
        ([P + "HEATMAP_OFFSETS_ON", True, P + "DISK_OFFSET_ON", False], ("HEATMAP_OFFSETS_ON", "DISK_OFFSET_ON")),
        ([P + "HEATMAP_OFFSETS_ON", True, P + "HEATMAP_STRIDE", 4],
         ("HEATMAP_OFFSETS_ON", "HEATMAP_STRIDE", "OUTPUT_STRIDE", "KPNET_UPSAMPLE_FACTOR")),
        ([P + "HEATMAP_OFFSETS_ON", True, P + "OUTPUT_STRIDE", 4],
         ("HEATMAP_OFFSETS_ON", "HEATMAP_STRIDE", "OUTPUT_STRIDE")),
        ([P + "HEATMAP_MIN_RADIUS", 2, P + "HEATMAP_MAX_RADIUS", 1], ("HEATMAP_MAX_RADIUS", "HEATMAP_MIN_RADIUS")),
        ([P + "HEATMAP_STRIDE", 2], ("HEATMAP_STRIDE",)),
        ([P + "HEATMAP_RADIUS_MODE", "size"], ("HEATMAP_RADIUS_MODE",)),
        ([P + "HEATMAP_MIN_OVERLAP", 1.0], ("HEATMAP_MIN_OVERLAP",)),
    ],
    ids=["offsets-no-heatmap", "tags-no-heatmap", "offsets-no-disk", "stride-4-decode-8", "stride-8-decode-4",
         "radius-range", "stride-2", "mode", "overlap"],
)  # fmt: skip
def test_invalid_combinations_name_the_keys(opts, keys):
    with pytest.raises(ConfigError) as error:
        validate_inspose_config(tiny_cfg(*opts))
    for key in keys:
        assert P + key in str(error.value)


def test_the_paper_model_is_unchanged_at_the_defaults():
    default = tiny_model()
    assert sum(p.numel() for p in default.parameters()) == TINY_PARAMETERS
    assert isinstance(default.heatmap_branch, HeatmapBranch) and not default.heatmap_at_test
    reference = HeatmapBranch(64, num_keypoints=17, num_convs=2, channels=64, norm="GN")
    assert [k for k in default.state_dict() if k.startswith("heatmap_branch.")] == [
        "heatmap_branch." + k for k in reference.state_dict()
    ]
    # Adaptive radii alone change the heatmap targets only: same parameters and other losses.
    adaptive = tiny_model(P + "HEATMAP_RADIUS_MODE", "adaptive")
    assert list(adaptive.state_dict()) == list(default.state_dict())
    batch = [batch_item(96, 128, 2)]
    a, b = _losses(default, batch), _losses(adaptive, batch)
    assert set(a) == set(b) == {"loss_cls", "loss_kpnet", "loss_offset", "loss_heatmap"}
    assert all(torch.equal(a[k], b[k]) for k in ("loss_cls", "loss_kpnet", "loss_offset"))
    assert not torch.equal(a["loss_heatmap"], b["loss_heatmap"])


def test_tags_add_their_losses_and_leave_the_others_alone():
    default, tagged = tiny_model(), tiny_model(P + "AE_TAGS_ON", True)
    shared = {k: v for k, v in tagged.state_dict().items() if not k.startswith("heatmap_branch.tags")}
    assert list(shared) == list(default.state_dict())
    assert all(torch.equal(v, default.state_dict()[k]) for k, v in shared.items())
    batch = [batch_item(96, 128, 3)]
    a, b = _losses(default, batch), _losses(tagged, batch)
    assert set(b) == set(a) | {"loss_ae_pull", "loss_ae_push"}
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    keypoints, image_index, size = _persons()
    radii = torch.tensor([2, 1, 0, 3, 1])
    cpu = adaptive_gaussian_heatmaps(keypoints, radii, image_index, 2, 4, size)
    gpu = adaptive_gaussian_heatmaps(keypoints.cuda(), radii.cuda(), image_index.cuda(), 2, 4, size)
    assert torch.allclose(cpu, gpu.cpu(), atol=1e-6)
    a = window_offset_targets(keypoints, radii, image_index, 4, size)
    b = window_offset_targets(keypoints.cuda(), radii.cuda(), image_index.cuda(), 4, size)
    assert torch.equal(a.index, b.index.cpu()) and torch.allclose(a.offset, b.offset.cpu(), atol=1e-6)
    batch = [batch_item(96, 128, 3), batch_item(96, 128, 2, seed=1)]
    model = tiny_model(*ALL_ON)
    on_cpu = _losses(model, batch)
    model.cuda()
    on_gpu = _losses(model, batch)
    for key in on_cpu:
        assert float(on_gpu[key]) == pytest.approx(float(on_cpu[key]), rel=1e-3, abs=1e-5), key
