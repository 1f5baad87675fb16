"""Each loss of ``losses.py`` and the criterion's normalisers against an independent computation.

The references are written out from the formulas with explicit loops over a handful of elements
(Python floats or plain torch ops), never with the helper under test.
"""
import math

import pytest
import torch
from detectron2.structures import Boxes, Instances, Keypoints

from inspose.config import get_inspose_cfg
from inspose.modeling.codec import InsPoseCodec
from inspose.modeling.criterion import InsPoseCriterion
from inspose.modeling.head_outputs import HeadOutputs
from inspose.modeling.kpnet import KPNetLayout, relative_coordinate_axes
from inspose.modeling.kpnet_loss import kpnet_loss_sum
from inspose.modeling.losses import (
    focal_loss_sum,
    giou_loss_sum,
    heatmap_focal_loss_sum,
    kpnet_cross_entropy_sum,
    offset_l1_sum,
)

K_SMALL = 6  # keypoints of the hand-made persons: nothing here assumes 17


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def _close(value: torch.Tensor, expected: float, rel=1e-5) -> bool:
    return abs(float(value) - expected) <= rel * max(abs(expected), 1e-8)


# ---------------------------------------------------------------- sigmoid focal loss


def _focal_by_formula(logits, targets, alpha, gamma) -> float:
    """sum_i -alpha_t (1 - p_t)^gamma log(p_t), one element at a time."""
    total = 0.0
    for x, t in zip(logits, targets):
        p = _sigmoid(x)
        p_t = p if t == 1 else 1.0 - p
        alpha_t = alpha if t == 1 else 1.0 - alpha
        total += -alpha_t * (1.0 - p_t) ** gamma * math.log(p_t)
    return total


@pytest.mark.parametrize("alpha, gamma", [(0.25, 2.0), (0.5, 0.0), (0.75, 1.5)])
def test_focal_loss_sum_is_the_retinanet_formula(alpha, gamma):
    logits = [-3.0, -0.5, 0.0, 0.7, 2.5, 4.0]
    targets = [0.0, 1.0, 0.0, 1.0, 1.0, 0.0]
    value = focal_loss_sum(torch.tensor(logits), torch.tensor(targets), alpha, gamma)
    assert _close(value, _focal_by_formula(logits, targets, alpha, gamma))


# ---------------------------------------------------------------- KP-Net cross-entropy


def _cross_entropy_by_loop(logits, cells, labelled):
    """Per instance: mean over labelled keypoints of -log softmax(logits[n, k])[cell]; summed.

    Args: logits (N, K, P) nested lists; cells (N, K) ints; labelled (N, K) bools.
    Returns: (total, number of instances with a labelled keypoint).
    """
    total, counted = 0.0, 0
    for row, row_cells, row_labelled in zip(logits, cells, labelled):
        losses = []
        for scores, cell, is_labelled in zip(row, row_cells, row_labelled):
            if is_labelled:
                log_norm = math.log(sum(math.exp(s) for s in scores))
                losses.append(log_norm - scores[cell])
        if losses:
            total += sum(losses) / len(losses)
            counted += 1
    return total, counted


def _kpnet_example():
    """3 instances x 4 keypoints x 5 positions; instance 2 has no labelled keypoint."""
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(3, 4, 5, generator=g) * 2
    cells = torch.tensor([[0, 4, 2, 1], [3, 3, 0, 2], [1, 1, 1, 1]])
    labelled = torch.tensor([[True, True, False, True], [False, True, False, False], [False] * 4])
    return logits, cells, labelled


def test_kpnet_cross_entropy_is_a_mean_per_instance_over_labelled_keypoints():
    logits, cells, labelled = _kpnet_example()
    total, count = kpnet_cross_entropy_sum(logits, cells, labelled)
    expected_total, expected_count = _cross_entropy_by_loop(logits.tolist(), cells.tolist(), labelled.tolist())
    assert _close(total, expected_total)
    assert int(count) == expected_count == 2


def test_unlabelled_keypoints_and_instances_contribute_nothing():
    logits, cells, labelled = _kpnet_example()
    reference, reference_count = kpnet_cross_entropy_sum(logits, cells, labelled)
    changed = logits.clone()
    changed[0, 2] = torch.tensor([50.0, -40.0, 9.0, 0.0, 30.0])  # unlabelled keypoint
    changed[2] = -changed[2] * 20  # the instance without a labelled keypoint
    other_cells = cells.clone()
    other_cells[0, 2], other_cells[2] = 4, torch.tensor([0, 2, 3, 4])
    changed.requires_grad_()
    total, count = kpnet_cross_entropy_sum(changed, other_cells, labelled)
    assert torch.allclose(total, reference) and int(count) == int(reference_count)
    total.backward()
    assert changed.grad[0, 2].abs().max() == 0 and changed.grad[2].abs().max() == 0
    assert changed.grad[0, 0].abs().max() > 0  # a labelled keypoint does get a gradient


# ---------------------------------------------------------------- the KP-Net loss, chunked


LAYOUT_K14 = KPNetLayout(in_channels=4, channels=5, num_keypoints=14, depth=3)


def _kpnet_maps_by_loop(features, image_index, params, rel_x, rel_y, layout):
    """(M, K, H * W) logits: per instance, explicit 1x1 convolutions on [F_kp, rel x, rel y].

    Parameters are read as [weight (out x in), bias (out)] layer by layer, ReLU between layers.
    """
    height, width = features.shape[-2:]
    widths = [layout.in_channels + 2] + [layout.channels] * (layout.depth - 1) + [layout.num_keypoints]
    maps = []
    for n in range(params.shape[0]):
        x_map = rel_x[n][None, :].expand(height, width)
        y_map = rel_y[n][:, None].expand(height, width)
        x = torch.cat([features[image_index[n]], x_map[None], y_map[None]])  # (C_kp + 2, H, W)
        start = 0
        for layer, (in_ch, out_ch) in enumerate(zip(widths[:-1], widths[1:])):
            weight = params[n, start : start + out_ch * in_ch].view(out_ch, in_ch)
            start += out_ch * in_ch
            bias = params[n, start : start + out_ch]
            start += out_ch
            x = torch.einsum("oi,ihw->ohw", weight, x) + bias[:, None, None]
            if layer < layout.depth - 1:
                x = torch.relu(x)
        maps.append(x.reshape(layout.num_keypoints, height * width))
    return torch.stack(maps)


def _reference_kpnet_loss(inputs, layout):
    features, image_index, params, rel_x, rel_y, cells, labelled = inputs
    maps = _kpnet_maps_by_loop(features, image_index, params, rel_x, rel_y, layout)
    total = features.new_zeros(())
    for n in range(maps.shape[0]):
        kinds = labelled[n].nonzero().squeeze(1)
        if kinds.numel():
            log_probs = torch.log_softmax(maps[n, kinds], dim=1)
            total = total - log_probs[torch.arange(kinds.numel()), cells[n, kinds]].mean()
    return total


def _kpnet_inputs(num=5, batch=2, size=(6, 7), stride=8):
    g = torch.Generator().manual_seed(11)
    k = LAYOUT_K14.num_keypoints
    features = torch.randn(batch, LAYOUT_K14.in_channels, *size, generator=g, requires_grad=True)
    params = (torch.randn(num, LAYOUT_K14.num_params, generator=g) * 0.4).requires_grad_()
    image_index = torch.tensor([0, 1, 1, 0, 1][:num])
    locations = torch.rand(num, 2, generator=g) * torch.tensor([size[1] * stride, size[0] * stride])
    rel_x, rel_y = relative_coordinate_axes(locations, torch.full((num,), 64.0), size, stride)
    cells = torch.randint(0, size[0] * size[1], (num, k), generator=g)
    labelled = torch.rand(num, k, generator=g) > 0.4
    labelled[3] = False  # counts 0, adds 0
    return features, image_index, params, rel_x, rel_y, cells, labelled


def _value_and_grads(loss, features, params):
    grads = torch.autograd.grad(loss, (features, params))
    return loss.detach(), grads


@pytest.mark.parametrize("chunk", [0, 2])
def test_kpnet_loss_sum_matches_a_per_instance_loop(chunk):
    """Chunk 0 (all at once) and chunk 2 (checkpointed 2 + 2 + 1) equal the explicit loop, value
    and gradients, with K = 14."""
    inputs = _kpnet_inputs()
    features, image_index, params, rel_x, rel_y, cells, labelled = inputs
    total, count = kpnet_loss_sum(features, image_index, params, LAYOUT_K14, rel_x, rel_y, cells, labelled, chunk)
    assert int(count) == 4  # five instances, one without a labelled keypoint
    value, grads = _value_and_grads(total, features, params)
    expected, expected_grads = _value_and_grads(_reference_kpnet_loss(inputs, LAYOUT_K14), features, params)
    assert torch.allclose(value, expected, rtol=1e-5)
    for got, want in zip(grads, expected_grads):
        assert (got - want).abs().max() <= 1e-5 * want.abs().max()


# ---------------------------------------------------------------- CornerNet heatmap focal loss


def _heatmap_example():
    """(1, 2, 3, 4) logits and targets with 3 peaks; weight (1, 1, 3, 4) with two 0 cells."""
    g = torch.Generator().manual_seed(5)
    logits = torch.randn(1, 2, 3, 4, generator=g) * 2
    target = torch.zeros(1, 2, 3, 4)
    target[0, 0, 1, 1] = target[0, 1, 2, 3] = target[0, 1, 0, 0] = 1.0
    target[0, 0, 1, 2], target[0, 0, 0, 1], target[0, 1, 2, 2] = 0.6, 0.3, 0.45
    weight = torch.ones(1, 1, 3, 4)
    weight[0, 0, 0, 0] = weight[0, 0, 0, 1] = 0.0  # holds a peak of keypoint 1 and a 0.3 of 0
    return logits, target, weight


def _heatmap_focal_by_loop(logits, target, weight, alpha, beta):
    """Positives: -(1 - p)^a log p; other cells: -w (1 - y)^b p^a log(1 - p). Returns (sum, peaks)."""
    total, peaks = 0.0, 0
    _, kinds, height, width = target.shape
    for k in range(kinds):
        for i in range(height):
            for j in range(width):
                p, y = _sigmoid(float(logits[0, k, i, j])), float(target[0, k, i, j])
                if y == 1.0:
                    total += -((1 - p) ** alpha) * math.log(p)
                    peaks += 1
                else:
                    w = float(weight[0, 0, i, j])
                    total += -w * (1 - y) ** beta * p**alpha * math.log(1 - p)
    return total, peaks


def test_heatmap_focal_loss_is_the_cornernet_formula():
    logits, target, weight = _heatmap_example()
    total, peaks = heatmap_focal_loss_sum(logits, target, weight, alpha=2.0, beta=4.0)
    expected_total, expected_peaks = _heatmap_focal_by_loop(logits, target, weight, 2.0, 4.0)
    assert _close(total, expected_total)
    assert int(peaks) == expected_peaks == 3  # the peak in a weight-0 cell is still a positive


def test_heatmap_negatives_of_weight_zero_are_ignored():
    logits, target, weight = _heatmap_example()
    reference, _ = heatmap_focal_loss_sum(logits, target, weight, 2.0, 4.0)
    changed = logits.clone()
    changed[0, 0, 0, 0], changed[0, 0, 0, 1] = 30.0, 25.0  # negatives of keypoint 0 under weight 0
    assert torch.allclose(heatmap_focal_loss_sum(changed, target, weight, 2.0, 4.0)[0], reference)
    changed[0, 0, 2, 0] = 12.0  # a negative under weight 1: about 12 more
    assert heatmap_focal_loss_sum(changed, target, weight, 2.0, 4.0)[0] > reference + 1.0


# ---------------------------------------------------------------- L1 offsets and GIoU


def test_offset_l1_sum_by_hand():
    predicted = torch.tensor([[0.5, -0.25], [1.0, 0.0], [0.2, 0.9]])
    target = torch.tensor([[0.0, 0.0], [0.25, 0.5], [0.2, 0.4]])
    # |0.5| + |-0.25| + |0.75| + |-0.5| + 0 + |0.5|
    assert _close(offset_l1_sum(predicted, target), 2.5)


def test_giou_loss_sum_by_hand():
    predicted = torch.tensor([[0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 1.0, 1.0]])
    target = torch.tensor([[1.0, 1.0, 3.0, 3.0], [2.0, 0.0, 3.0, 1.0]])
    # overlapping: intersection 1, union 7, enclosing 9 -> GIoU 1/7 - 2/9;
    # disjoint: intersection 0, union 2, enclosing 3 -> GIoU -1/3
    expected = (1 - (1 / 7 - 2 / 9)) + (1 - (-1 / 3))
    assert _close(giou_loss_sum(predicted, target), expected)
    assert float(giou_loss_sum(target, target)) == pytest.approx(0.0, abs=1e-6)
    assert float(giou_loss_sum(torch.zeros(0, 4), torch.zeros(0, 4))) == 0.0


# ---------------------------------------------------------------- the criterion on real targets


def _codec():
    return InsPoseCodec.from_config(get_inspose_cfg())


def _criterion(codec):
    layout = KPNetLayout(in_channels=8, channels=8, num_keypoints=K_SMALL, depth=3)
    weights = dict.fromkeys(["loss_cls", "loss_kpnet", "loss_offset", "loss_heatmap", "loss_box"], 1.0)
    return InsPoseCriterion(codec=codec, layout=layout, loss_weights=weights)


def _person(x0, y0, x1, y1, visible=2.0):
    t = torch.linspace(0, 1, K_SMALL)
    return torch.stack([x0 + t * (x1 - x0), y0 + t * (y1 - y0), torch.full((K_SMALL,), visible)], 1)


IMAGE = (128, 160)
CROWD = [80.0, 80.0, 150.0, 125.0]
NO_KEYPOINTS_BOX = [90.0, 8.0, 150.0, 60.0]


def _encoded():
    """One 128 x 160 image: a labelled person, a keypoint-less person and a crowd box."""
    codec = _codec()
    inst = Instances(IMAGE)
    keypoints = torch.stack([_person(20, 22, 61, 95), _person(100, 20, 140, 50, visible=0.0)])
    inst.gt_keypoints = Keypoints(keypoints)
    inst.gt_boxes = Boxes(torch.tensor([[18.0, 20.0, 64.0, 98.0], NO_KEYPOINTS_BOX]))
    sizes = [(math.ceil(IMAGE[0] / s), math.ceil(IMAGE[1] / s)) for s in codec.fpn_strides]
    locs = codec.locations(sizes, torch.device("cpu"))
    targets = codec.encode(locs, [inst], [torch.tensor([CROWD])])
    return codec, locs, targets, keypoints


def _levels_from_flat(flat: torch.Tensor, sizes):
    """(L,) logits -> [(1, 1, H_i, W_i)] per level, each row-major, levels in order."""
    levels, start = [], 0
    for h, w in sizes:
        levels.append(flat[start : start + h * w].reshape(1, 1, h, w))
        start += h * w
    return levels


def _outputs(logits, sizes, map_size, offsets=None, heatmaps=None):
    return HeadOutputs(
        logits=logits, params=[], boxes=None, kp_features=torch.zeros(1, 8, *map_size),
        offsets=offsets, heatmaps=heatmaps, level_sizes=list(sizes),
    )  # fmt: skip


def _inside(points, box):
    return (points[:, 0] >= box[0]) & (points[:, 0] <= box[2]) & (points[:, 1] >= box[1]) & (points[:, 1] <= box[3])


def test_classification_loss_skips_ignored_locations_and_divides_by_positives():
    codec, locs, targets, _ = _encoded()
    valid, labels = targets.valid[0], targets.labels[0]
    ignored = ~valid
    # the test means something only if both kinds of ignore region hold locations
    assert (ignored & _inside(locs.points, CROWD)).any() and (ignored & _inside(locs.points, NO_KEYPOINTS_BOX)).any()
    assert labels.sum() > 0 and not ignored[labels == 1].any()
    criterion = _criterion(codec)
    map_size = codec.output_map_size(locs.sizes[0])
    flat = torch.randn(valid.numel(), generator=torch.Generator().manual_seed(2))

    def loss_of(flat_logits):
        outputs = _outputs(_levels_from_flat(flat_logits, locs.sizes), locs.sizes, map_size)
        return criterion.classification_loss(outputs, targets)

    reference = loss_of(flat)
    kept = valid.nonzero().squeeze(1).tolist()
    by_formula = _focal_by_formula([float(flat[i]) for i in kept], [float(labels[i]) for i in kept], 0.25, 2.0)
    assert _close(reference, by_formula / float(labels.sum()))
    wild = flat.clone()
    wild[ignored] = torch.where(torch.arange(int(ignored.sum())) % 2 == 0, 60.0, -60.0)
    assert torch.equal(loss_of(wild), reference)
    negative = (valid & (labels == 0)).nonzero()[0, 0]
    wild[negative] = 8.0
    assert loss_of(wild) > reference + 1e-3


def _disk_cell_count(keypoints, stride, map_size, radius):
    """Number of (keypoint, cell) pairs with the cell centre within ``radius`` cells, by loop."""
    height, width = map_size
    count = 0
    for x, y, v in keypoints.tolist():
        if v <= 0:
            continue
        px, py = x / stride, y / stride
        for i in range(height):
            for j in range(width):
                count += math.hypot(j + 0.5 - px, i + 0.5 - py) <= radius
    return count


def _offset_loss_by_loop(offsets, index, target):
    """Sum over entries of |prediction - target|, the (b, k, row, col) of each flat index decoded
    by hand from the (B, K, H, W) layout; offsets are (B, 2K, H, W) with (dx_k, dy_k) at (2k, 2k + 1)."""
    batch, channels, height, width = offsets.shape
    total = 0.0
    for flat, (dx, dy) in zip(index.tolist(), target.tolist()):
        col, rest = flat % width, flat // width
        row, rest = rest % height, rest // height
        k, b = rest % (channels // 2), rest // (channels // 2)
        total += abs(float(offsets[b, 2 * k, row, col]) - dx) + abs(float(offsets[b, 2 * k + 1, row, col]) - dy)
    return total


def test_offset_loss_is_normalised_by_supervised_keypoint_cells():
    codec, locs, targets, keypoints = _encoded()
    map_size = codec.output_map_size(locs.sizes[0])
    disk = targets.disk_offsets
    pairs = _disk_cell_count(keypoints[0], codec.output_stride, map_size, codec.disk_radius)
    assert disk.index.numel() == pairs  # one person: no disks of the same keypoint overlap
    labelled = int((keypoints[..., 2] > 0).sum())
    assert pairs > labelled  # so normalising by keypoints instead would fail
    offsets = torch.randn(1, 2 * K_SMALL, *map_size, generator=torch.Generator().manual_seed(4))
    loss = _criterion(codec).offset_loss(offsets, targets)
    assert _close(loss, _offset_loss_by_loop(offsets, disk.index, disk.offset) / pairs)


def test_heatmap_loss_is_normalised_by_labelled_keypoints():
    codec, locs, targets, keypoints = _encoded()
    heatmaps = torch.randn(1, K_SMALL, *locs.sizes[0], generator=torch.Generator().manual_seed(6))
    loss = _criterion(codec).heatmap_loss(heatmaps, targets)
    total, _ = _heatmap_focal_by_loop(heatmaps, targets.heatmaps, targets.heatmap_weight, 2.0, 4.0)
    labelled = int((keypoints[..., 2] > 0).sum())  # keypoints 8 px or more apart: one peak each
    assert _close(loss, total / labelled, rel=1e-4)
