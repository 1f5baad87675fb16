"""InsPoseCheckpointer on torchvision ResNet, official HRNet and detectron2 checkpoints.

No downloads: the checkpoints are written here with the published key names and shapes.
"""
import inspose  # noqa: F401  (compat shim before detectron2)

import logging

import pytest
import torch
import torchvision
from torch import nn

from detectron2.config import get_cfg
from detectron2.layers import ShapeSpec
from detectron2.modeling.backbone.fpn import build_resnet_fpn_backbone

from inspose.checkpoint import InsPoseCheckpointer, convert_torchvision_resnet, detect_format
from inspose.checkpoint.convert import HRNET, TORCHVISION_RESNET
from inspose.modeling.backbone import add_hrnet_config, build_inspose_hrnet_fpn_backbone
from inspose.modeling.backbone.hrnet import HRNet

HRNET_CLASSIFICATION_KEYS = {
    "incre_modules.0.0.conv1.weight": (32, 32, 1, 1),
    "downsamp_modules.0.0.weight": (256, 128, 3, 3),
    "final_layer.0.weight": (2048, 1024, 1, 1),
    "classifier.weight": (1000, 2048),
    "classifier.bias": (1000,),
}


class TinyDetector(nn.Module):
    """Names its backbone like the real model does: ``backbone.bottom_up.*``."""

    def __init__(self, backbone: nn.Module):
        super().__init__()
        self.backbone = backbone
        self.head = nn.Conv2d(256, 1, 3, padding=1)


class LogRecorder(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records = []

    def emit(self, record):
        self.records.append(record)

    def text(self, level=logging.DEBUG):
        return "\n".join(r.getMessage() for r in self.records if r.levelno >= level)


def recorded_checkpointer(model, **kwargs):
    """A checkpointer whose log (its own and detectron2's name matcher) is recorded."""
    checkpointer = InsPoseCheckpointer(model, **kwargs)
    recorder = LogRecorder()
    checkpointer.logger.addHandler(recorder)
    checkpointer.logger.setLevel(logging.DEBUG)
    return checkpointer, recorder


def randomize_(state_dict):
    """Random values everywhere, so that a default-initialised tensor never matches by chance."""
    generator = torch.Generator().manual_seed(0)
    for value in state_dict.values():
        if value.is_floating_point():
            value.copy_(torch.rand(value.shape, generator=generator) + 0.5)
    return state_dict


def resnet_cfg():
    cfg = get_cfg()
    cfg.MODEL.RESNETS.DEPTH = 50
    cfg.MODEL.RESNETS.OUT_FEATURES = ["res3", "res4", "res5"]
    cfg.MODEL.FPN.IN_FEATURES = ["res3", "res4", "res5"]
    return cfg


def hrnet_cfg(final_multi_scale=True):
    cfg = get_cfg()
    add_hrnet_config(cfg)
    cfg.MODEL.HRNET.FINAL_STAGE_MULTI_SCALE = final_multi_scale
    if not final_multi_scale:
        cfg.MODEL.HRNET.OUT_FEATURES = ["hr2"]
    return cfg


# ------------------------------------------------------------------ torchvision ResNet


@pytest.fixture(scope="module")
def torchvision_r50():
    return randomize_(torchvision.models.resnet50(weights=None).state_dict())


@pytest.fixture(scope="module")
def resnet_detector():
    return TinyDetector(build_resnet_fpn_backbone(resnet_cfg(), ShapeSpec(channels=3)))


def test_torchvision_names_map_one_to_one_onto_detectron2_resnet(torchvision_r50, resnet_detector):
    assert detect_format(torchvision_r50) == TORCHVISION_RESNET
    converted = convert_torchvision_resnet(torchvision_r50)
    assert converted.ignored == ["fc.bias", "fc.weight"]
    d2_keys = set(resnet_detector.backbone.bottom_up.state_dict())
    assert set(converted.state_dict) == d2_keys
    assert "res2.0.shortcut.norm.running_var" in d2_keys and "res5.2.conv3.norm.bias" in d2_keys


def test_torchvision_resnet_loads_into_backbone(tmp_path, torchvision_r50, resnet_detector):
    path = tmp_path / "resnet50-torchvision.pth"
    torch.save({**torchvision_r50, "extra_branch.weight": torch.ones(3)}, path)
    checkpointer, log = recorded_checkpointer(resnet_detector, cfg=resnet_cfg())
    checkpointer.load(str(path))

    state = resnet_detector.state_dict()
    pairs = {
        "res2.0.conv1.weight": "layer1.0.conv1.weight",
        "stem.conv1.weight": "conv1.weight",
        "stem.conv1.norm.running_mean": "bn1.running_mean",
        "res2.0.shortcut.weight": "layer1.0.downsample.0.weight",
        "res2.0.shortcut.norm.weight": "layer1.0.downsample.1.weight",
        "res4.5.conv2.norm.running_var": "layer3.5.bn2.running_var",
        "res5.2.conv3.weight": "layer4.2.conv3.weight",
    }
    for d2_name, tv_name in pairs.items():
        assert torch.equal(state["backbone.bottom_up." + d2_name], torchvision_r50[tv_name]), d2_name
    warnings = log.text(logging.WARNING)
    assert "fc.{bias, weight}" in warnings  # classification head ignored, by name
    assert "extra_branch.weight" in warnings  # unexpected key reported
    assert "backbone.fpn_lateral3" in warnings and "head" in warnings  # missing keys reported
    for key in ("INPUT.FORMAT RGB", "MODEL.PIXEL_MEAN [123.675,116.28,103.53]", "MODEL.RESNETS.STRIDE_IN_1X1 False"):
        assert key in warnings


def test_no_input_warning_when_config_matches_torchvision(tmp_path, torchvision_r50, resnet_detector):
    path = tmp_path / "r50.pth"
    torch.save(torchvision_r50, path)
    cfg = resnet_cfg()
    cfg.INPUT.FORMAT = "RGB"
    cfg.MODEL.PIXEL_MEAN = [123.675, 116.28, 103.53]
    cfg.MODEL.PIXEL_STD = [58.395, 57.12, 57.375]
    cfg.MODEL.RESNETS.STRIDE_IN_1X1 = False
    checkpointer, log = recorded_checkpointer(resnet_detector, cfg=cfg)
    checkpointer.load(str(path))
    assert "INPUT.FORMAT" not in log.text(logging.WARNING)
    assert "torchvision ResNet checkpoint" in log.text()


# ------------------------------------------------------------------ official HRNet


def official_hrnet_checkpoint():
    """HRNet-W32 ImageNet-style state dict: trunk keys + BN counters + classification keys."""
    weights = randomize_(HRNet(norm="BN").state_dict())
    assert "stage2.0.branches.0.0.bn1.num_batches_tracked" in weights
    weights.update({k: torch.randn(shape) for k, shape in HRNET_CLASSIFICATION_KEYS.items()})
    return weights


@pytest.fixture(scope="module")
def hrnet_weights():
    return official_hrnet_checkpoint()


def test_official_hrnet_loads_into_backbone_bottom_up(tmp_path, hrnet_weights):
    """Through the public ``load``: what it loaded is read back from the model and from the log."""
    assert detect_format(hrnet_weights) == HRNET
    path = tmp_path / "hrnetv2_w32_imagenet_pretrained.pth"
    torch.save(hrnet_weights, path)
    model = TinyDetector(build_inspose_hrnet_fpn_backbone(hrnet_cfg(), ShapeSpec(channels=3)))
    checkpointer, log = recorded_checkpointer(model, cfg=hrnet_cfg())
    checkpointer.load(str(path))

    state = model.state_dict()
    for key in (
        "stage3.0.fuse_layers.0.1.0.weight",
        "bn1.running_mean",
        "transition1.1.0.1.running_var",
        "stage4.2.fuse_layers.3.0.2.0.weight",
        "layer1.0.downsample.1.weight",
    ):
        assert torch.equal(state["backbone.bottom_up." + key], hrnet_weights[key]), key
    # No trunk key is missing (or skipped for its shape): every one holds the checkpoint's values.
    trunk_keys = [k for k in state if k.startswith("backbone.bottom_up.")]
    assert trunk_keys
    for key in trunk_keys:
        source = key[len("backbone.bottom_up."):]
        assert source in hrnet_weights and torch.equal(state[key], hrnet_weights[source]), key
    warnings = log.text(logging.WARNING)
    missing = [r.getMessage() for r in log.records if "not found in the checkpoint" in r.getMessage()]
    assert len(missing) == 1 and "head" in missing[0] and "backbone.fpn_lateral" in missing[0]
    assert "bottom_up" not in missing[0]  # only the FPN and the head miss
    assert "not used by the model" not in warnings  # no unexpected keys
    assert "incompatible shapes" not in warnings  # no incorrect shapes
    assert "classifier.{bias, weight}" in warnings and "incre_modules.0.0.conv1.weight" in warnings
    assert "final_layer.0.weight" in warnings and "downsamp_modules.0.0.weight" in warnings
    assert "INPUT.FORMAT RGB" in warnings and "STRIDE_IN_1X1" not in warnings


def test_hrnet_keys_the_model_lacks_are_reported(tmp_path, hrnet_weights):
    wrapped = {"state_dict": {"module." + k: v for k, v in hrnet_weights.items()}}
    path = tmp_path / "hrnet_wrapped.pth"
    torch.save(wrapped, path)
    pose_trunk = HRNet(norm="FrozenBN", out_features=["hr2"], final_multi_scale=False)
    checkpointer, log = recorded_checkpointer(pose_trunk)  # a bare HRNet: no prefix
    checkpointer.load(str(path))
    assert torch.equal(pose_trunk.state_dict()["stage2.0.fuse_layers.0.1.0.weight"],
                       hrnet_weights["stage2.0.fuse_layers.0.1.0.weight"])
    warnings = log.text(logging.WARNING)
    assert "stage4.2.fuse_layers.1.0.0.0.weight" in warnings  # unexpected: not in the pose variant
    assert "num_batches_tracked" not in warnings  # counters are dropped, not reported


def test_detectron2_checkpoint_still_round_trips(tmp_path):
    cfg = hrnet_cfg()
    source = TinyDetector(build_inspose_hrnet_fpn_backbone(cfg, ShapeSpec(channels=3)))
    randomize_(source.state_dict())
    InsPoseCheckpointer(source, save_dir=str(tmp_path)).save("model_final")
    target = TinyDetector(build_inspose_hrnet_fpn_backbone(cfg, ShapeSpec(channels=3)))
    checkpointer, log = recorded_checkpointer(target)
    checkpointer.load(str(tmp_path / "model_final.pth"))
    for key, value in source.state_dict().items():
        assert torch.equal(target.state_dict()[key], value), key
    assert "HRNet checkpoint" not in log.text()  # not mistaken for a third-party file
