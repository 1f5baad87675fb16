"""Star deformable convs (STAR_DEFORM_ON): offsets from regressed keypoints, sampling, gradients,
the names looked up in the dataset metadata, and the config errors."""
import pytest
import torch
from detectron2.modeling import build_model
from detectron2.utils.events import EventStorage
from torch.nn import functional as F
from torchvision.ops import deform_conv2d

from inspose.config import ConfigError, load_config, validate_inspose_config
from inspose.modeling.heads import StarConv, star_keypoint_indices, star_offsets

from .conftest import CROWDPOSE, REPO_ROOT
from .model_utils import batch_item, tiny_cfg, tiny_model

STAR = ["MODEL.INSPOSE.KEYPOINT_REGRESSION_ON", True, "MODEL.INSPOSE.KEYPOINT_REGRESSION_CONVS", 1,
        "MODEL.INSPOSE.KEYPOINT_REGRESSION_CHANNELS", 64, "MODEL.INSPOSE.STAR_DEFORM_ON", True]  # fmt: skip
COCO_TAPS = [0, 5, 6, 9, 10, 11, 12, 15, 16]  # nose, shoulders, wrists, hips, ankles
CROWDPOSE_STAR = ["head", "left_shoulder", "right_shoulder", "left_wrist", "right_wrist", "left_hip",
                  "right_hip", "left_ankle", "right_ankle"]  # fmt: skip


def _regression_on_grid(batch, num_keypoints, height, width, taps, shift=(0.0, 0.0)):
    """(B, 2K, H, W) regression putting keypoint taps[k] on tap k of the 3x3 grid (+ shift (dy, dx)),
    in strides; the other keypoints far away (the star conv must not read them)."""
    regression = torch.full((batch, num_keypoints, 2, height, width), 50.0)
    for k, keypoint in enumerate(taps):
        row, col = divmod(k, 3)
        regression[:, keypoint, 0] = col - 1 + shift[1]  # dx
        regression[:, keypoint, 1] = row - 1 + shift[0]  # dy
    return regression.view(batch, 2 * num_keypoints, height, width)


def test_offsets_are_keypoint_minus_grid_in_y_x_order():
    taps = torch.tensor(COCO_TAPS)
    assert star_offsets(_regression_on_grid(2, 17, 4, 5, COCO_TAPS), taps).abs().max() == 0
    offsets = star_offsets(_regression_on_grid(1, 17, 4, 5, COCO_TAPS, shift=(0.25, -2.0)), taps)
    assert offsets.shape == (1, 18, 4, 5)
    assert torch.allclose(offsets[:, 0::2], torch.full_like(offsets[:, 0::2], 0.25))  # dy
    assert torch.allclose(offsets[:, 1::2], torch.full_like(offsets[:, 1::2], -2.0))  # dx


def test_keypoints_on_the_grid_give_a_plain_3x3_conv():
    torch.manual_seed(0)
    star = StarConv(8, norm="")
    x = torch.randn(2, 8, 6, 7)
    offsets = star_offsets(_regression_on_grid(2, 14, 6, 7, list(range(9))), torch.arange(9))
    plain = F.conv2d(x, star.conv.weight, padding=1)
    assert torch.allclose(star.conv(x, offsets), plain, atol=1e-5)
    assert torch.allclose(star(x, offsets), torch.relu(plain), atol=1e-5)


def test_shifted_keypoints_sample_the_shifted_positions():
    """Every tap moved by (dy, dx) = (1, 2) cells: the output at (y, x) is the plain conv's at
    (y + 1, x + 2) (inside the map), so rows and columns are not swapped."""
    torch.manual_seed(0)
    weight = torch.randn(4, 4, 3, 3)
    x = torch.randn(1, 4, 9, 10)
    offsets = star_offsets(_regression_on_grid(1, 17, 9, 10, COCO_TAPS, shift=(1.0, 2.0)), torch.tensor(COCO_TAPS))
    moved = deform_conv2d(x, offsets, weight, padding=(1, 1))
    plain = F.conv2d(x, weight, padding=1)
    assert torch.allclose(moved[..., :-1, :-2], plain[..., 1:, 2:], atol=1e-5)


def test_offsets_pass_a_tenth_of_the_gradient():
    torch.manual_seed(0)
    weight = torch.randn(4, 4, 3, 3)
    x = torch.randn(1, 4, 6, 6)
    probe = torch.randn(1, 4, 6, 6)
    base = torch.randn(1, 2 * 17, 6, 6) * 0.7

    def gradient(multiplier):
        regression = base.clone().requires_grad_(True)
        out = deform_conv2d(x, star_offsets(regression, torch.tensor(COCO_TAPS), multiplier), weight, padding=(1, 1))
        (out * probe).sum().backward()
        return out.detach(), regression.grad

    out_live, grad_live = gradient(1.0)
    out_scaled, grad_scaled = gradient(0.1)
    assert torch.allclose(out_live, out_scaled, atol=1e-5)  # (1 - m) x + m x = x up to rounding
    assert grad_live.abs().sum() > 0
    assert torch.allclose(grad_scaled, 0.1 * grad_live, rtol=1e-4, atol=1e-7)
    unused = [k for k in range(17) if k not in COCO_TAPS]
    assert grad_live.view(1, 17, 2, 6, 6)[:, unused].abs().max() == 0


def test_star_head_shapes_and_gradients_reach_every_new_parameter():
    model = tiny_model(*STAR)
    head = model.head
    tower = head.cls_star.conv.weight.shape[0]
    assert head.cls_logits.in_channels == head.controller.in_channels == 2 * tower
    assert head.star_taps.tolist() == COCO_TAPS
    assert 0.05 < float(head.cls_star.conv.weight.detach().std()) < 0.15  # N(0, 0.1)
    model.train()
    with EventStorage():
        losses = model([batch_item(96, 128, 2)])
    # classification and KP-Net losses only: the regression branch learns through the offsets too
    (losses["loss_cls"] + losses["loss_kpnet"]).backward()
    for name, parameter in list(head.cls_star.named_parameters()) + list(head.controller_star.named_parameters()):
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name
    for name, parameter in model.keypoint_regression.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def test_default_names_are_looked_up_in_the_dataset_metadata():
    assert star_keypoint_indices(tiny_cfg(*STAR)) == COCO_TAPS
    reordered = COCO_TAPS[::-1]
    names = ["nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
             "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip",
             "left_knee", "right_knee", "left_ankle", "right_ankle"]  # fmt: skip
    cfg = tiny_cfg(*STAR, "MODEL.INSPOSE.STAR_KEYPOINTS", str([names[i] for i in reordered]))
    assert star_keypoint_indices(cfg) == reordered


def test_a_missing_name_names_the_key_the_dataset_and_its_keypoints():
    wanted = ["neck"] + CROWDPOSE_STAR[1:]
    cfg = tiny_cfg(*STAR, "MODEL.INSPOSE.STAR_KEYPOINTS", str(wanted))
    with pytest.raises(ConfigError, match=r"STAR_KEYPOINTS.*'neck'.*synthetic_keypoints_train.*left_ankle"):
        build_model(cfg)


def test_a_wrong_count_is_refused():
    cfg = tiny_cfg(*STAR, "MODEL.INSPOSE.STAR_KEYPOINTS", str(CROWDPOSE_STAR[1:]))
    with pytest.raises(ConfigError, match="STAR_KEYPOINTS.*exactly 9.*got 8"):
        star_keypoint_indices(cfg)


def test_star_convs_without_the_regression_branch_name_both_keys():
    cfg = tiny_cfg("MODEL.INSPOSE.STAR_DEFORM_ON", True)
    with pytest.raises(ConfigError, match="STAR_DEFORM_ON.*KEYPOINT_REGRESSION_ON"):
        validate_inspose_config(cfg)


def test_crowdpose_needs_its_own_nine(crowdpose_mini_dataset):
    opts = ["MODEL.DEVICE", "cpu", "MODEL.WEIGHTS", "", "MODEL.INSPOSE.NUM_KEYPOINTS", 14,
            "DATASETS.TRAIN", f"('{crowdpose_mini_dataset}',)", "DATASETS.TEST", "()", *STAR]  # fmt: skip
    cfg = load_config(str(REPO_ROOT / "configs/quick_schedules/InsPose_R_18_tiny_cpu.yaml"), [str(o) for o in opts])
    with pytest.raises(ConfigError, match="'nose' not among the keypoints"):
        star_keypoint_indices(cfg)
    cfg.merge_from_list(["MODEL.INSPOSE.STAR_KEYPOINTS", str(CROWDPOSE_STAR)])
    assert star_keypoint_indices(cfg) == [CROWDPOSE.names.index(n) for n in CROWDPOSE_STAR]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_star_conv_on_cuda_equals_the_cpu():
    torch.manual_seed(0)
    star = StarConv(32, norm="GN")
    x = torch.randn(2, 32, 9, 11)
    regression = torch.randn(2, 34, 9, 11) * 1.5
    offsets = star_offsets(regression, torch.tensor(COCO_TAPS))
    cpu = star(x, offsets)
    cuda = star.cuda()(x.cuda(), offsets.cuda())
    assert torch.allclose(cuda.cpu(), cpu, atol=1e-4)
