"""ResNet + FPN giving P3-P7, with P6 and P7 computed from P5 as in FCOS."""
from detectron2.layers import ShapeSpec
from detectron2.modeling.backbone import BACKBONE_REGISTRY, FPN, build_resnet_backbone
from detectron2.modeling.backbone.fpn import LastLevelP6P7

__all__ = ["build_inspose_resnet_fpn_backbone"]


@BACKBONE_REGISTRY.register()
def build_inspose_resnet_fpn_backbone(cfg, input_shape: ShapeSpec):
    """detectron2's ResNet (MODEL.RESNETS.*) and FPN (MODEL.FPN.*) on res3-res5, plus P6/P7 from P5.

    Returns:
        a detectron2 ``Backbone`` whose outputs are p3..p7 (strides 8..128, FPN.OUT_CHANNELS each).
    """
    bottom_up = build_resnet_backbone(cfg, input_shape)
    out_channels = cfg.MODEL.FPN.OUT_CHANNELS
    return FPN(
        bottom_up=bottom_up,
        in_features=cfg.MODEL.FPN.IN_FEATURES,
        out_channels=out_channels,
        norm=cfg.MODEL.FPN.NORM,
        top_block=LastLevelP6P7(out_channels, out_channels, in_feature="p5"),
        fuse_type=cfg.MODEL.FPN.FUSE_TYPE,
    )
