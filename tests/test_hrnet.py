"""HRNet-W32 trunk and HRNet-FPN backbone: key names, shapes, norms, freezing, parameter counts."""
import inspose  # noqa: F401  (compat shim before detectron2)

import pytest
import torch
from torch import nn

from detectron2.config import get_cfg
from detectron2.layers import FrozenBatchNorm2d, ShapeSpec
from detectron2.modeling import BACKBONE_REGISTRY, build_backbone

from inspose.modeling.backbone import add_hrnet_config
from inspose.modeling.backbone.hrnet import HighResolutionModule, HRNet

# Exact counts of this implementation (weights and biases; BN running stats are buffers).
W32_MULTI_SCALE_PARAMS = 29_305_536  # ImageNet / HRNetV2 layout, all 4 stage4 outputs
W32_POSE_PARAMS_WITH_HEAD = 28_536_113  # pose HRNet-W32 + 1x1 conv 32 -> 17 (published: 28.5M)


def hrnet_cfg(norm="BN", freeze_at=0):
    cfg = get_cfg()
    add_hrnet_config(cfg)
    cfg.MODEL.BACKBONE.NAME = "build_inspose_hrnet_fpn_backbone"
    cfg.MODEL.HRNET.NORM = norm
    cfg.MODEL.HRNET.FREEZE_AT = freeze_at
    return cfg


def num_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.fixture(scope="module")
def w32():
    return HRNet(norm="BN")


def test_backbones_are_registered():
    assert "build_inspose_hrnet_fpn_backbone" in BACKBONE_REGISTRY
    assert "build_inspose_hrnet_backbone" in BACKBONE_REGISTRY


def test_key_names_and_shapes_follow_the_official_layout(w32):
    shapes = {k: tuple(v.shape) for k, v in w32.state_dict().items()}
    expected = {
        "conv1.weight": (64, 3, 3, 3),
        "bn2.running_var": (64,),
        "layer1.0.conv3.weight": (256, 64, 1, 1),
        "layer1.0.downsample.0.weight": (256, 64, 1, 1),
        "layer1.0.downsample.1.running_mean": (256,),
        "transition1.0.0.weight": (32, 256, 3, 3),
        "transition1.1.0.0.weight": (64, 256, 3, 3),
        "transition2.2.0.0.weight": (128, 64, 3, 3),
        "transition3.3.0.1.weight": (256,),
        "stage2.0.branches.1.3.conv2.weight": (64, 64, 3, 3),
        "stage2.0.fuse_layers.0.1.0.weight": (32, 64, 1, 1),
        "stage2.0.fuse_layers.1.0.0.0.weight": (64, 32, 3, 3),
        "stage3.3.fuse_layers.0.2.1.running_mean": (32,),
        "stage4.2.fuse_layers.0.3.0.weight": (32, 256, 1, 1),
        "stage4.2.fuse_layers.3.0.1.0.weight": (32, 32, 3, 3),
        "stage4.2.fuse_layers.3.0.2.0.weight": (256, 32, 3, 3),
        "stage4.2.branches.3.3.bn2.bias": (256,),
    }
    for key, shape in expected.items():
        assert shapes.get(key) == shape, key
    # Unchanged branches (identity transitions) and i == j fuse entries carry no weights.
    assert not any(k.startswith(("transition2.0.", "transition2.1.", "transition3.2.")) for k in shapes)
    assert not any(".fuse_layers.1.1." in k or k.startswith("layer1.1.downsample") for k in shapes)
    assert {k.split(".")[0] for k in shapes} == {
        "conv1", "bn1", "conv2", "bn2", "layer1", "transition1", "transition2", "transition3",
        "stage2", "stage3", "stage4",
    }
    assert [len(getattr(w32, f"stage{s}")) for s in (2, 3, 4)] == [1, 4, 3]


def test_trunk_outputs_and_shapes(w32):
    w32.eval()
    with torch.no_grad():
        out = w32(torch.randn(1, 3, 128, 160))
    assert list(out) == ["hr3", "hr4", "hr5"]
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "hr3": (1, 64, 16, 20), "hr4": (1, 128, 8, 10), "hr5": (1, 256, 4, 5)
    }
    assert w32.size_divisibility == 32
    all_four = HRNet(norm="FrozenBN", out_features=["hr2", "hr3", "hr4", "hr5"]).output_shape()
    assert {k: (s.channels, s.stride) for k, s in all_four.items()} == {
        "hr2": (32, 4), "hr3": (64, 8), "hr4": (128, 16), "hr5": (256, 32)
    }


def test_fusion_adds_upsampled_low_resolution_branch():
    torch.manual_seed(0)
    module = HighResolutionModule([4, 8], num_blocks=1, norm="BN").eval()
    xs = [torch.randn(1, 4, 8, 8), torch.randn(1, 8, 4, 4)]
    with torch.no_grad():
        out = module(xs)
        b0, b1 = module.branches[0](xs[0]), module.branches[1](xs[1])
        conv_up, norm_up = module.fuse_layers[0][1]  # 1x1 conv + norm, then nearest x2
        up = norm_up(conv_up(b1)).repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)
        (conv_down, norm_down), = module.fuse_layers[1][0]  # one strided 3x3 conv + norm, no ReLU
        down = norm_down(conv_down(b0))
    assert conv_up.kernel_size == (1, 1) and conv_down.stride == (2, 2)
    assert [tuple(o.shape) for o in out] == [(1, 4, 8, 8), (1, 8, 4, 4)]
    torch.testing.assert_close(out[0], torch.relu(b0 + up))
    torch.testing.assert_close(out[1], torch.relu(down + b1))


def test_two_step_downsampling_has_relu_between_steps_only():
    module = HighResolutionModule([4, 8, 16], num_blocks=1, norm="BN")
    first, last = module.fuse_layers[2][0]  # branch 0 -> branch 2: two strided steps
    assert [type(m) for m in first] == [nn.Conv2d, nn.BatchNorm2d, nn.ReLU]
    assert [type(m) for m in last] == [nn.Conv2d, nn.BatchNorm2d]
    assert (first[0].out_channels, last[0].out_channels) == (4, 16)


@pytest.mark.parametrize("norm", ["BN", "FrozenBN", "GN", "SyncBN"])
def test_fpn_levels_for_each_norm(norm):
    cfg = hrnet_cfg(norm=norm)
    backbone = build_backbone(cfg, ShapeSpec(channels=3))
    expected_norm = {
        "BN": nn.BatchNorm2d, "FrozenBN": FrozenBatchNorm2d, "GN": nn.GroupNorm,
        "SyncBN": nn.SyncBatchNorm,
    }[norm]
    assert isinstance(backbone.bottom_up.stage3[0].branches[2][0].bn1, expected_norm)
    shapes = backbone.output_shape()
    assert {k: (s.channels, s.stride) for k, s in shapes.items()} == {
        "p3": (256, 8), "p4": (256, 16), "p5": (256, 32), "p6": (256, 64), "p7": (256, 128)
    }
    backbone.eval()
    with torch.no_grad():
        out = backbone(torch.randn(1, 3, 128, 160))
    assert {k: tuple(v.shape[-2:]) for k, v in out.items()} == {
        "p3": (16, 20), "p4": (8, 10), "p5": (4, 5), "p6": (2, 3), "p7": (1, 2)
    }
    assert all(v.shape[:2] == (1, 256) and torch.isfinite(v).all() for v in out.values())


def _frozen_prefixes(backbone: HRNet):
    frozen = {n.split(".")[0] for n, p in backbone.named_parameters() if not p.requires_grad}
    trainable = {n.split(".")[0] for n, p in backbone.named_parameters() if p.requires_grad}
    return frozen, trainable


@pytest.mark.parametrize(
    "freeze_at, frozen",
    [
        (0, set()),
        (1, {"conv1", "bn1", "conv2", "bn2"}),
        (2, {"conv1", "bn1", "conv2", "bn2", "layer1"}),
        (3, {"conv1", "bn1", "conv2", "bn2", "layer1", "transition1", "stage2"}),
    ],
)
def test_freeze_at_freezes_the_named_groups(freeze_at, frozen):
    trunk = HRNet(norm="BN", freeze_at=freeze_at)
    got_frozen, trainable = _frozen_prefixes(trunk)
    # Frozen bn1 / bn2 become FrozenBatchNorm2d, whose affine terms are buffers, not parameters.
    assert got_frozen == frozen - {"bn1", "bn2"}
    assert isinstance(trunk.bn2, FrozenBatchNorm2d) == (freeze_at >= 1)
    assert not (frozen & trainable)  # a group is frozen entirely
    for name, module in trunk.named_modules():
        if isinstance(module, nn.BatchNorm2d):
            assert name.split(".")[0] not in frozen, f"{name} should be FrozenBatchNorm2d"
        if isinstance(module, FrozenBatchNorm2d):
            assert name.split(".")[0] in frozen, f"{name} should still be trainable BN"
    assert (freeze_at >= 2) == isinstance(trunk.layer1[0].downsample[1], FrozenBatchNorm2d)


def test_freeze_everything_and_group_norm():
    everything = HRNet(norm="GN", freeze_at=5)
    assert not any(p.requires_grad for p in everything.parameters())
    assert isinstance(everything.stage4[2].branches[0][0].bn1, nn.GroupNorm)
    with pytest.raises(ValueError, match="freeze_at"):
        HRNet(norm="BN", freeze_at=6)


def test_parameter_counts_of_both_variants(w32):
    pose = HRNet(norm="BN", out_features=["hr2"], final_multi_scale=False)
    pose_with_head = num_params(pose) + num_params(nn.Conv2d(32, 17, 1))
    assert abs(pose_with_head - 28.5e6) <= 0.1e6
    assert pose_with_head == W32_POSE_PARAMS_WITH_HEAD
    assert num_params(w32) == W32_MULTI_SCALE_PARAMS
    # The only difference: the last stage4 module's fuse layers into branches 1..3.
    assert len(pose.stage4[2].fuse_layers) == 1 and len(pose.stage3[3].fuse_layers) == 3
    dropped = sum(num_params(w32.stage4[2].fuse_layers[i]) for i in (1, 2, 3))
    assert num_params(w32) - num_params(pose) == dropped == 769_984
    with pytest.raises(ValueError, match="hr3"):
        HRNet(norm="BN", out_features=["hr3"], final_multi_scale=False)


def test_width_48_is_a_config_change():
    cfg = hrnet_cfg(norm="FrozenBN")
    cfg.MODEL.HRNET.WIDTH = 48
    cfg.MODEL.HRNET.OUT_FEATURES = ["hr5"]
    cfg.MODEL.BACKBONE.NAME = "build_inspose_hrnet_backbone"
    trunk = build_backbone(cfg)
    assert trunk.output_shape()["hr5"].channels == 384
    assert tuple(trunk.state_dict()["stage2.0.fuse_layers.0.1.0.weight"].shape) == (48, 96, 1, 1)


@pytest.mark.slow
def test_forward_backward_on_cpu():
    torch.manual_seed(0)
    backbone = build_backbone(hrnet_cfg(norm="BN", freeze_at=2))
    backbone.train()
    out = backbone(torch.randn(2, 3, 128, 128))
    sum(v.square().mean() for v in out.values()).backward()
    trunk = backbone.bottom_up
    assert trunk.conv1.weight.grad is None and trunk.layer1[0].conv1.weight.grad is None
    for param in (
        trunk.transition1[1][0][0].weight,
        trunk.stage2[0].branches[0][0].conv1.weight,
        trunk.stage4[2].fuse_layers[3][0][2][0].weight,  # hr5 <- hr2 path
        trunk.stage4[2].branches[3][3].bn2.weight,
        backbone.top_block.p7.weight,
    ):
        assert param.grad is not None and torch.isfinite(param.grad).all()
        assert param.grad.abs().sum() > 0
