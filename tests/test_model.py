"""The InsPose meta-architecture on the CPU: losses, gradients, inference, configs."""
from pathlib import Path

import pytest
import torch
from detectron2.modeling import build_model
from detectron2.utils.events import EventStorage

from inspose.config import load_config
from inspose.modeling import InsPose

from .model_utils import batch_item, runs_at_inference, tiny_model

REPO = Path(__file__).resolve().parents[1]
LOSSES = {"loss_cls", "loss_kpnet", "loss_offset", "loss_heatmap"}


def _losses(model, batch):
    model.train()
    with EventStorage():
        return model(batch)


def test_training_losses_are_finite_and_named():
    model = tiny_model()
    assert isinstance(model, InsPose)
    losses = _losses(model, [batch_item(128, 160, 3), batch_item(128, 160, 1, seed=1)])
    assert set(losses) == LOSSES
    assert all(torch.isfinite(v) and v > 0 for v in losses.values())


def test_gradients_reach_every_head():
    model = tiny_model()
    losses = _losses(model, [batch_item(128, 160, 2)])
    sum(losses.values()).backward()
    for module in (model.head.controller, model.head.cls_logits, model.keypoint_branch.project,
                   model.offset_branch.predict, model.heatmap_branch.predict):  # fmt: skip
        grad = module.weight.grad
        assert grad is not None and grad.abs().sum() > 0, module


@pytest.mark.parametrize("persons", [[0], [0, 0]])
def test_images_without_persons_give_finite_losses(persons):
    model = tiny_model()
    batch = [batch_item(96, 128, n, seed=i, crowd=[10, 10, 50, 50]) for i, n in enumerate(persons)]
    losses = _losses(model, batch)
    total = sum(losses.values())
    assert torch.isfinite(total)
    assert losses["loss_kpnet"] == 0 and losses["loss_offset"] == 0
    total.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_fourteen_keypoints():
    model = tiny_model("MODEL.INSPOSE.NUM_KEYPOINTS", 14)
    losses = _losses(model, [batch_item(96, 128, 2, num_keypoints=14)])
    assert all(torch.isfinite(v) for v in losses.values())
    assert model.head.controller.out_channels == (10 * 8 + 8) + (8 * 8 + 8) + (8 * 14 + 14)
    model.eval()
    model.predictor.score_thresh = 0.0
    with torch.no_grad():
        out = model([batch_item(96, 128, 0)])[0]["instances"]
    assert out.pred_keypoints.shape[1:] == (14, 3)


def _predict(model, batch, **predictor_overrides):
    model.eval()
    for key, value in predictor_overrides.items():
        setattr(model.predictor, key, value)
    with torch.no_grad():
        return [o["instances"] for o in model(batch)]


def test_inference_output_fields():
    model = tiny_model()
    out = _predict(model, [batch_item(128, 160, 0)], score_thresh=0.0, pre_nms_topk=50)[0]
    assert len(out) > 0 and len(out) <= 100
    assert out.pred_keypoints.shape[1:] == (17, 3)
    conf = out.pred_keypoints[..., 2]
    assert (conf >= 0).all() and (conf <= 1).all()
    assert (out.pred_classes == 0).all()
    kps = out.pred_keypoints[..., :2]
    enclosing = torch.cat([kps.amin(1), kps.amax(1)], dim=1)
    assert torch.allclose(out.pred_boxes.tensor, enclosing, atol=1e-4)
    scores = out.scores
    assert (scores[:-1] >= scores[1:]).all()


def test_outputs_are_rescaled_to_the_requested_size():
    model = tiny_model()
    item = batch_item(128, 160, 0)
    item.update(height=256, width=320)
    out = _predict(model, [item], score_thresh=0.0, pre_nms_topk=50)[0]
    assert out.image_size == (256, 320)
    assert out.pred_keypoints[..., 0].max() <= 320 and out.pred_keypoints[..., 1].max() <= 256


def test_batched_inference_equals_one_image_at_a_time():
    model = tiny_model()
    items = [batch_item(128, 160, 0, seed=s) for s in range(3)]
    together = _predict(model, items, score_thresh=0.0, pre_nms_topk=30)
    for item, joint in zip(items, together):
        alone = _predict(model, [item])[0]
        assert len(alone) == len(joint)
        assert torch.allclose(alone.pred_keypoints, joint.pred_keypoints, atol=1e-3)
        assert torch.allclose(alone.scores, joint.scores, atol=1e-5)


def test_banded_kpnets_equal_one_band():
    model = tiny_model()
    item = [batch_item(128, 160, 0)]
    whole = _predict(model, item, score_thresh=0.0, pre_nms_topk=40, chunk_elements=1 << 30)[0]
    banded = _predict(model, item, chunk_elements=17 * 20 * 3)[0]  # a band of a row or two
    assert torch.equal(whole.pred_keypoints[..., :2], banded.pred_keypoints[..., :2])
    assert torch.allclose(whole.pred_keypoints[..., 2], banded.pred_keypoints[..., 2], atol=1e-6)


@pytest.mark.parametrize("stride", [2, 4, 16])
def test_output_strides(stride):
    model = tiny_model("MODEL.INSPOSE.OUTPUT_STRIDE", stride)
    batch = [batch_item(128, 160, 2)]
    model.train()
    with EventStorage():
        losses = model(batch)
    assert all(torch.isfinite(v) for v in losses.values())
    maps = model.predict_maps(model.preprocess_image(batch))
    assert tuple(maps.kp_features.shape[-2:]) == (128 // stride, 160 // stride)
    assert tuple(maps.offsets.shape[-2:]) == (128 // stride, 160 // stride)


def test_box_head_adds_a_loss_and_predicts_boxes():
    model = tiny_model("MODEL.INSPOSE.BOX_HEAD_ON", True)
    losses = _losses(model, [batch_item(128, 160, 2)])
    assert set(losses) == LOSSES | {"loss_box"} and torch.isfinite(losses["loss_box"])
    out = _predict(model, [batch_item(128, 160, 0)], score_thresh=0.0, pre_nms_topk=20)[0]
    assert out.pred_boxes.tensor.shape[1] == 4


def test_ablation_switches_remove_heads():
    model = tiny_model("MODEL.INSPOSE.DISK_OFFSET_ON", False, "MODEL.INSPOSE.HEATMAP_ON", False)
    assert model.offset_branch is None and model.heatmap_branch is None
    losses = _losses(model, [batch_item(96, 128, 1)])
    assert set(losses) == {"loss_cls", "loss_kpnet"}


def test_heatmap_branch_does_not_run_at_inference():
    model = tiny_model()
    assert not runs_at_inference(model, model.heatmap_branch)


@pytest.mark.parametrize(
    "config",
    sorted(
        str(p.relative_to(REPO))
        for p in (REPO / "configs").rglob("*.yaml")
        if "keypoint_rcnn" not in p.parts  # detectron2's Keypoint R-CNN: tests/test_benchmark.py
        and not p.name.endswith("_sweep.yaml")  # tools/sweep.py --variants files: tests/test_sweep.py
    ),
    ids=str,
)
def test_every_config_builds(config):
    cfg = load_config(str(REPO / config), ["MODEL.DEVICE", "cpu", "MODEL.WEIGHTS", ""])
    model = build_model(cfg)
    assert isinstance(model, InsPose)
    assert model.head.controller.out_channels == model.criterion.layout.num_params


@pytest.mark.slow
@pytest.mark.parametrize(
    "config, extra",
    [
        ("configs/InsPose_R_101_36ep.yaml", ["MODEL.RESNETS.NORM", "GN", "MODEL.FPN.NORM", "GN"]),
        ("configs/InsPose_HRNet_W32_36ep.yaml", ["MODEL.HRNET.NORM", "GN", "MODEL.HRNET.FREEZE_AT", 0]),
    ],
    ids=["R-101", "HRNet-W32"],
)
def test_backbones_train_a_few_iterations(config, extra):
    cfg = load_config(str(REPO / config), ["MODEL.DEVICE", "cpu", "MODEL.WEIGHTS", ""] + [str(e) for e in extra])
    torch.manual_seed(0)
    model = build_model(cfg)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.002, momentum=0.9)
    batch = [batch_item(128, 160, 2)]
    history = []
    with EventStorage():
        for _ in range(4):
            losses = model(batch)
            total = sum(losses.values())
            optimizer.zero_grad()
            total.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 35.0)
            optimizer.step()
            history.append(float(total))
    assert all(torch.isfinite(torch.tensor(history)))
    assert history[-1] < history[0]


def test_channels_last_gives_the_same_losses_gradients_and_predictions():
    nchw = tiny_model()
    nhwc = tiny_model("MODEL.INSPOSE.CHANNELS_LAST", True)
    assert nhwc.head.controller.weight.is_contiguous(memory_format=torch.channels_last)
    assert not nchw.head.controller.weight.is_contiguous(memory_format=torch.channels_last)
    batch = [batch_item(128, 160, 3), batch_item(128, 160, 1, seed=1)]
    losses = {name: _losses(model, batch) for name, model in (("nchw", nchw), ("nhwc", nhwc))}
    for key in LOSSES:
        assert torch.allclose(losses["nchw"][key], losses["nhwc"][key], rtol=1e-4, atol=1e-5), key
    sum(losses["nchw"].values()).backward()
    sum(losses["nhwc"].values()).backward()
    for module in ("head.controller", "keypoint_branch.project", "offset_branch.predict"):
        a = nchw.get_submodule(module).weight.grad
        b = nhwc.get_submodule(module).weight.grad
        assert torch.allclose(a, b, rtol=1e-3, atol=1e-4 * a.abs().max()), module
    items = [batch_item(128, 160, 0)]
    ref = _predict(nchw, items, score_thresh=0.0, pre_nms_topk=30)[0]
    out = _predict(nhwc, items, score_thresh=0.0, pre_nms_topk=30)[0]
    assert len(ref) == len(out)
    assert torch.allclose(ref.scores, out.scores, atol=1e-4)
    close = (ref.pred_keypoints[..., :2] - out.pred_keypoints[..., :2]).abs().amax(-1) < 1e-2
    assert close.float().mean() > 0.99  # an argmax may flip between near-equal cells
