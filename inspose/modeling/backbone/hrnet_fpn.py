"""HRNet + FPN backbone giving P3..P7 (FCOS layout), registered in detectron2's BACKBONE_REGISTRY.

``MODEL.BACKBONE.NAME "build_inspose_hrnet_fpn_backbone"`` builds detectron2's own ``FPN`` with
the HRNet trunk as ``bottom_up``::

    image (N, 3, H, W), H and W divisible by 32 (size_divisibility)
    bottom_up: hr3, hr4, hr5  (strides 8, 16, 32; 2C, 4C, 8C channels, C = MODEL.HRNET.WIDTH)
    FPN:       p3, p4, p5     (N, MODEL.FPN.OUT_CHANNELS, H / s, W / s), s = 8, 16, 32
    top block: p6, p7 from p5 (LastLevelP6P7, strides 64, 128)

State-dict keys: ``bottom_up.*`` (the HRNet, official checkpoint names), ``fpn_lateral{3,4,5}``,
``fpn_output{3,4,5}``, ``top_block.p6`` / ``top_block.p7``.
"""
from detectron2.layers import ShapeSpec
from detectron2.modeling.backbone import FPN
from detectron2.modeling.backbone.build import BACKBONE_REGISTRY
from detectron2.modeling.backbone.fpn import LastLevelP6P7

from .hrnet import build_hrnet_from_cfg

__all__ = ["build_inspose_hrnet_fpn_backbone"]


@BACKBONE_REGISTRY.register()
def build_inspose_hrnet_fpn_backbone(cfg, input_shape: ShapeSpec) -> FPN:
    """HRNet (``MODEL.HRNET``) + FPN (``MODEL.FPN.OUT_CHANNELS``, ``MODEL.FPN.NORM``) + P6/P7.

    The FPN's in_features are ``MODEL.HRNET.OUT_FEATURES`` (``MODEL.FPN.IN_FEATURES`` is not read:
    it names ResNet features by default).
    """
    bottom_up = build_hrnet_from_cfg(cfg, input_shape)
    out_channels = cfg.MODEL.FPN.OUT_CHANNELS
    return FPN(
        bottom_up=bottom_up,
        in_features=list(cfg.MODEL.HRNET.OUT_FEATURES),
        out_channels=out_channels,
        norm=cfg.MODEL.FPN.NORM,
        top_block=LastLevelP6P7(out_channels, out_channels, in_feature="p5"),
        fuse_type=cfg.MODEL.FPN.FUSE_TYPE,
    )
