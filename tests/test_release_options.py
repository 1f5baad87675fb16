"""The authors' release components together: the paper's model unchanged with them off, the keypoint
feature ending (KP_FEATURE_LAST_CONV), training and export with every one on, CUDA parity."""
import pytest
import torch
from detectron2.utils.events import EventStorage

from inspose.deploy.export import ExportError, check_opset, export_model

from .model_utils import batch_item, tiny_cfg, tiny_model

P = "MODEL.INSPOSE."
# Every new key at its default, written out.
DEFAULTS = [P + "KEYPOINT_REGRESSION_ON", False, P + "KEYPOINT_REGRESSION_CONVS", 4,
            P + "KEYPOINT_REGRESSION_CHANNELS", 512, P + "LOSS_WEIGHT_KEYPOINT_REGRESSION", 1.0,
            P + "NMS_BOXES", "auto", P + "KPNETS_AFTER_NMS", False, P + "KP_FEATURE_LAST_CONV", "linear_1x1",
            P + "STAR_DEFORM_ON", False, P + "STAR_GRAD_MULT", 0.1]  # fmt: skip
# Every option on, at the tiny model's width.
ALL_ON = [P + "KEYPOINT_REGRESSION_ON", True, P + "KEYPOINT_REGRESSION_CONVS", 1,
          P + "KEYPOINT_REGRESSION_CHANNELS", 64, P + "STAR_DEFORM_ON", True, P + "NMS_BOXES", "regression",
          P + "KPNETS_AFTER_NMS", True, P + "INSTANCE_SCORE", "cls",
          P + "KP_FEATURE_LAST_CONV", "conv3x3_gn_relu"]  # fmt: skip
NEW_MODULES = ("keypoint_regression", "head.cls_star", "head.controller_star", "keypoint_branch.project",
               "keypoint_branch.finish")  # fmt: skip
TINY_PARAMETERS = 12_000_117  # the tiny config's paper model (measured before these options existed)


def _count(model):
    return sum(p.numel() for p in model.parameters())


def _losses(model, batch):
    model.train()
    with EventStorage():
        return model(batch)


def _predict(model, items):
    model.eval()
    model.predictor.score_thresh = 0.0
    with torch.no_grad():
        return [o["instances"] for o in model(items)]


def test_the_paper_model_is_unchanged_with_the_keys_at_their_defaults():
    default, explicit = tiny_model(), tiny_model(*DEFAULTS)
    assert _count(default) == _count(explicit) == TINY_PARAMETERS
    assert default.keypoint_regression is None and default.head.cls_star is None
    state, other = default.state_dict(), explicit.state_dict()
    assert list(state) == list(other) and all(torch.equal(state[k], other[k]) for k in state)
    batch = [batch_item(96, 128, 2)]
    a, b = _losses(default, batch), _losses(explicit, batch)
    assert set(a) == {"loss_cls", "loss_kpnet", "loss_offset", "loss_heatmap"} and set(b) == set(a)
    assert all(torch.equal(a[k], b[k]) for k in a)
    x, y = _predict(default, [batch_item(96, 128, 0)])[0], _predict(explicit, [batch_item(96, 128, 0)])[0]
    assert torch.equal(x.pred_keypoints, y.pred_keypoints) and torch.equal(x.scores, y.scores)
    assert torch.equal(x.pred_boxes.tensor, y.pred_boxes.tensor)


def test_keypoint_features_end_with_a_3x3_conv_groupnorm_and_relu():
    linear = tiny_model()
    release = tiny_model(P + "KP_FEATURE_LAST_CONV", "conv3x3_gn_relu")
    c, c_kp = 64, 8  # the tiny config's KP_FEATURE_CHANNELS and C_kp
    assert release.keypoint_branch.project.kernel_size == (3, 3)
    assert release.keypoint_branch.finish[0].num_groups == 2
    assert _count(release) - _count(linear) == (9 * c * c_kp + 2 * c_kp) - (c * c_kp + c_kp)
    maps = release.predict_maps(release.preprocess_image([batch_item(96, 128, 0)]))
    assert maps.kp_features.shape[1] == c_kp and maps.kp_features.min() >= 0
    assert (maps.kp_features > 0).any()


def test_two_training_iterations_with_every_option_on():
    model = tiny_model(*ALL_ON)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    batch = [batch_item(96, 128, 2), batch_item(96, 128, 1, seed=1)]
    before = model.keypoint_regression.predict.weight.detach().clone()
    for _ in range(2):
        losses = _losses(model, batch)
        assert "loss_keypoint_regression" in losses
        assert all(torch.isfinite(v) for v in losses.values()), losses
        optimizer.zero_grad()
        sum(losses.values()).backward()
        for prefix in NEW_MODULES:
            for name, parameter in model.get_submodule(prefix).named_parameters():
                assert parameter.grad is not None and parameter.grad.abs().sum() > 0, f"{prefix}.{name}"
        optimizer.step()
    assert not torch.equal(before, model.keypoint_regression.predict.weight)
    out = _predict(model, [batch_item(96, 128, 0)])[0]
    assert 0 < len(out) <= 100 and out.pred_keypoints.shape[1:] == (17, 3)


def test_star_convs_need_opset_19():
    cfg = tiny_cfg(*ALL_ON)
    with pytest.raises(ExportError, match="STAR_DEFORM_ON.*opset 17"):
        check_opset(cfg, "onnx", 17)
    check_opset(cfg, "onnx", 19)
    check_opset(cfg, "torch_export", 17)


@pytest.mark.slow
def test_every_option_exports_to_onnx(tmp_path):
    """ONNX Runtime equals eager with every option on (about 30 s to export)."""
    ort = pytest.importorskip("onnxruntime")
    opts = ALL_ON + [P + "PRE_NMS_TOPK_TEST", 50, "TEST.DETECTIONS_PER_IMAGE", 10, P + "SCORE_THRESH_TEST", 0.0]
    cfg, model = tiny_cfg(*opts), tiny_model(*opts).eval()
    path = tmp_path / "release.onnx"
    export_model(cfg, model, "onnx", str(path), (128, 160))
    item = batch_item(128, 160, 0)
    with torch.no_grad():
        eager = model([item])[0]["instances"]
    session = ort.InferenceSession(str(path))
    keypoints, scores, boxes, count = session.run(
        None, {"image": item["image"].float().numpy(), "original_size": torch.tensor([128.0, 160.0]).numpy()}
    )
    n = int(count)
    assert n == len(eager) == 10
    assert abs(scores[:n] - eager.scores.numpy()).max() < 1e-4
    assert abs(keypoints[:n] - eager.pred_keypoints.numpy()).max() < 1e-2
    assert abs(boxes[:n] - eager.pred_boxes.tensor.numpy()).max() < 1e-2


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_every_option_on_cuda_equals_the_cpu():
    model = tiny_model(*ALL_ON, "MODEL.DEVICE", "cuda")
    batch = [batch_item(96, 128, 2), batch_item(96, 128, 1, seed=1)]
    cuda_losses = _losses(model, batch)
    sum(cuda_losses.values()).backward()
    cpu_losses = _losses(model.to("cpu"), batch)
    for name, value in cpu_losses.items():
        assert torch.allclose(cuda_losses[name].cpu(), value, rtol=1e-3, atol=1e-4), name
    cpu_out = _predict(model, [batch_item(96, 128, 0)])[0]
    cuda_out = _predict(model.to("cuda"), [batch_item(96, 128, 0)])[0]
    assert cuda_out.pred_keypoints.is_cuda and len(cuda_out) == len(cpu_out)
    assert torch.allclose(cuda_out.scores.cpu(), cpu_out.scores, atol=1e-4)
