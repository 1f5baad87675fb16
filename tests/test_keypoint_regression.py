"""The keypoint-regression branch (KEYPOINT_REGRESSION_ON): maps, targets, L1 loss, decoding, NMS
boxes from it (NMS_BOXES) and the KP-Nets after NMS (KPNETS_AFTER_NMS)."""
import pytest
import torch
from detectron2.structures import Keypoints
from detectron2.utils.events import EventStorage

from inspose.config import ConfigError, validate_inspose_config
from inspose.modeling.inference import keypoint_boxes

from .model_utils import batch_item, tiny_cfg, tiny_model

REGRESSION = ["MODEL.INSPOSE.KEYPOINT_REGRESSION_ON", True, "MODEL.INSPOSE.KEYPOINT_REGRESSION_CONVS", 1,
              "MODEL.INSPOSE.KEYPOINT_REGRESSION_CHANNELS", 64]  # fmt: skip
AFTER_NMS = [*REGRESSION, "MODEL.INSPOSE.NMS_BOXES", "regression", "MODEL.INSPOSE.INSTANCE_SCORE", "cls"]


def _train_maps(model, batch):
    """(outputs, locs, targets) of a training forward pass."""
    model.train()
    images = model.preprocess_image(batch)
    outputs = model.predict_maps(images)
    locs = model.codec.locations(outputs.level_sizes, model.device)
    targets = model.codec.encode(locs, [x["instances"] for x in batch], [None] * len(batch))
    return outputs, locs, targets


def _batch(num_keypoints=17):
    """Two images, three persons, some keypoints unlabelled (v = 0, coordinates set to 0)."""
    batch = [batch_item(96, 128, 2, num_keypoints), batch_item(96, 128, 1, num_keypoints, seed=1)]
    keypoints = batch[0]["instances"].gt_keypoints.tensor.clone()
    keypoints[0, ::3] = 0.0
    batch[0]["instances"].gt_keypoints = Keypoints(keypoints)
    return batch


@pytest.mark.parametrize("num_keypoints", [17, 14])
def test_regression_maps_have_2k_channels_on_every_level(num_keypoints):
    model = tiny_model(*REGRESSION, "MODEL.INSPOSE.NUM_KEYPOINTS", num_keypoints)
    outputs, _, _ = _train_maps(model, _batch(num_keypoints))
    assert [tuple(m.shape) for m in outputs.keypoint_regression] == [
        (2, 2 * num_keypoints, h, w) for h, w in outputs.level_sizes
    ]
    model.eval()  # nothing reads the maps at test time with the defaults: not computed
    with torch.no_grad():
        assert model.predict_maps(model.preprocess_image(_batch(num_keypoints))).keypoint_regression is None


def test_targets_decode_back_to_the_persons_keypoints():
    model = tiny_model(*REGRESSION)
    batch = _batch()
    _, locs, targets = _train_maps(model, batch)
    assert targets.pos_regression.shape == (targets.pos_location.shape[0], 17, 2)
    decoded = model.codec.decode_regression(
        locs.points[targets.pos_location], locs.strides[targets.pos_location], targets.pos_regression.flatten(1)
    )
    for b, item in enumerate(batch):
        inst = item["instances"]
        a = model.codec.assign(locs, inst.gt_keypoints.tensor, inst.gt_boxes.tensor)
        rows = targets.pos_image == b
        persons = inst.gt_keypoints.tensor[a.owner[targets.pos_location[rows]]]  # (Q_b, K, 3)
        labelled = persons[..., 2] > 0
        assert rows.any() and torch.equal(targets.pos_regression_labelled[rows], labelled)
        assert torch.allclose(decoded[rows][labelled], persons[..., :2][labelled], atol=1e-4)
    assert (~targets.pos_regression_labelled).any()  # the unlabelled keypoints are in the test
    assert targets.pos_regression[~targets.pos_regression_labelled].abs().max() == 0


def test_l1_loss_equals_a_hand_computation():
    model = tiny_model(*REGRESSION)
    outputs, locs, targets = _train_maps(model, _batch())
    loss = model.criterion.keypoint_regression_loss(outputs, targets)
    total, count = 0.0, 0
    starts = locs.level_offsets()
    for q in range(targets.pos_location.shape[0]):
        location, b = int(targets.pos_location[q]), int(targets.pos_image[q])
        level = int(locs.levels[location])
        row, col = divmod(location - starts[level], locs.sizes[level][1])
        predicted = outputs.keypoint_regression[level][b, :, row, col].view(-1, 2)
        for k in range(predicted.shape[0]):
            if targets.pos_regression_labelled[q, k]:
                total += float((predicted[k].detach() - targets.pos_regression[q, k]).abs().sum())
                count += 2
    assert count > 0 and abs(float(loss.detach()) - total / count) < 1e-4 * max(1.0, total / count)


def test_loss_trains_the_branch_and_is_finite_without_persons():
    model = tiny_model(*REGRESSION)
    model.train()
    with EventStorage():
        losses = model(_batch())
    assert torch.isfinite(losses["loss_keypoint_regression"]) and losses["loss_keypoint_regression"] > 0
    losses["loss_keypoint_regression"].backward()
    for name, parameter in model.keypoint_regression.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name
    with EventStorage():
        empty = model([batch_item(96, 128, 0)])["loss_keypoint_regression"]
    assert empty == 0
    empty.backward()  # the branch stays in the graph (DistributedDataParallel)


def _predict(model, items, **overrides):
    model.eval()
    for key, value in {"score_thresh": 0.0, "pre_nms_topk": 60, **overrides}.items():
        setattr(model.predictor, key, value)
    with torch.no_grad():
        return [o["instances"] for o in model(items)]


def _all_regressed_boxes(model, item):
    """(L, 4) enclosing boxes of the regressed keypoints of every location, read map by map."""
    model.eval()
    with torch.no_grad():
        images = model.preprocess_image([item])
        outputs = model.predict_maps(images)
    height, width = images.image_sizes[0]
    boxes = []
    for stride, regression in zip(model.codec.fpn_strides, outputs.keypoint_regression):
        _, channels, rows, cols = regression.shape
        ys, xs = torch.meshgrid(torch.arange(rows), torch.arange(cols), indexing="ij")
        centre = torch.stack([xs, ys], -1).reshape(-1, 1, 2) * stride + stride // 2
        deltas = regression[0].permute(1, 2, 0).reshape(-1, channels // 2, 2)
        xy = centre + deltas * stride
        xy = torch.stack([xy[..., 0].clamp(0, width), xy[..., 1].clamp(0, height)], -1)
        boxes.append(keypoint_boxes(xy))
    return torch.cat(boxes)


def test_nms_boxes_from_the_regression_are_enclosing_boxes_of_regressed_keypoints():
    model = tiny_model(*REGRESSION, "MODEL.INSPOSE.NMS_BOXES", "regression")
    item = batch_item(96, 128, 0)
    out = _predict(model, [item])[0]
    candidates = _all_regressed_boxes(model, item)
    assert len(out) > 0
    distance = (out.pred_boxes.tensor[:, None, :] - candidates[None]).abs().amax(-1).amin(-1)
    assert distance.max() < 1e-3
    kps = out.pred_keypoints[..., :2]
    assert not torch.allclose(out.pred_boxes.tensor, torch.cat([kps.amin(1), kps.amax(1)], 1))


def test_nms_box_sources_with_the_box_head():
    items = [batch_item(96, 128, 0)]
    box_head = ["MODEL.INSPOSE.BOX_HEAD_ON", True]
    auto = _predict(tiny_model(*box_head), items)[0]
    explicit = _predict(tiny_model(*box_head, "MODEL.INSPOSE.NMS_BOXES", "box_head"), items)[0]
    kpnet = _predict(tiny_model(*box_head, "MODEL.INSPOSE.NMS_BOXES", "kpnet"), items)[0]
    assert torch.equal(auto.pred_boxes.tensor, explicit.pred_boxes.tensor)
    kps = kpnet.pred_keypoints[..., :2]
    assert torch.allclose(kpnet.pred_boxes.tensor, torch.cat([kps.amin(1), kps.amax(1)], 1))
    assert not torch.allclose(auto.pred_boxes.tensor[: len(kpnet)], kpnet.pred_boxes.tensor[: len(auto)])


def test_kpnets_after_nms_give_the_same_detections_from_fewer_kpnets():
    """With boxes and scores that need no KP-Net, NMS keeps the same locations in either order."""
    before = tiny_model(*AFTER_NMS)
    after = tiny_model(*AFTER_NMS, "MODEL.INSPOSE.KPNETS_AFTER_NMS", True)
    items = [batch_item(96, 128, 0, seed=s) for s in range(2)]
    counts = []
    run_kpnets = after.predictor.run_kpnets
    after.predictor.run_kpnets = lambda f, params, *a: counts.append(params.shape[0]) or run_kpnets(f, params, *a)
    expected = _predict(before, items, max_detections=5)
    got = _predict(after, items, max_detections=5)
    assert counts and max(counts) <= 5
    for e, g in zip(expected, got):
        assert len(e) == len(g) == 5
        assert torch.equal(e.pred_boxes.tensor, g.pred_boxes.tensor) and torch.equal(e.scores, g.scores)
        assert torch.allclose(e.pred_keypoints, g.pred_keypoints, atol=1e-5)
    none = _predict(after, items[:1], score_thresh=1.0)[0]
    assert len(none) == 0 and none.pred_keypoints.shape == (0, 17, 3)


@pytest.mark.parametrize(
    "opts, keys",
    [
        (["MODEL.INSPOSE.NMS_BOXES", "regression"], ("NMS_BOXES", "KEYPOINT_REGRESSION_ON")),
        (["MODEL.INSPOSE.NMS_BOXES", "box_head"], ("NMS_BOXES", "BOX_HEAD_ON")),
        ([*REGRESSION, "MODEL.INSPOSE.KPNETS_AFTER_NMS", True, "MODEL.INSPOSE.INSTANCE_SCORE", "cls"],
         ("KPNETS_AFTER_NMS", "NMS_BOXES 'auto'")),
        ([*REGRESSION, "MODEL.INSPOSE.KPNETS_AFTER_NMS", True, "MODEL.INSPOSE.INSTANCE_SCORE", "cls",
          "MODEL.INSPOSE.NMS_BOXES", "kpnet"], ("KPNETS_AFTER_NMS", "NMS_BOXES 'kpnet'")),
        ([*REGRESSION, "MODEL.INSPOSE.KPNETS_AFTER_NMS", True, "MODEL.INSPOSE.NMS_BOXES", "regression"],
         ("KPNETS_AFTER_NMS", "INSTANCE_SCORE 'cls_x_keypoints'")),
    ],
    ids=["regression-boxes", "box-head-boxes", "after-nms-auto", "after-nms-kpnet", "after-nms-score"],
)  # fmt: skip
def test_conflicting_options_name_both_keys(opts, keys):
    with pytest.raises(ConfigError) as error:
        validate_inspose_config(tiny_cfg(*opts))
    for key in keys:
        assert "MODEL.INSPOSE." + key in str(error.value)


def test_kpnets_after_nms_with_the_box_head_is_valid():
    validate_inspose_config(tiny_cfg("MODEL.INSPOSE.BOX_HEAD_ON", True, "MODEL.INSPOSE.KPNETS_AFTER_NMS", True,
                                     "MODEL.INSPOSE.INSTANCE_SCORE", "cls"))  # fmt: skip
