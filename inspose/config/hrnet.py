"""``MODEL.HRNET`` config keys of the HRNet trunk (``inspose.modeling.backbone.hrnet``).

``add_hrnet_config(cfg)`` adds them in place; it touches no other key. To use HRNet-W32 + FPN::

    MODEL.BACKBONE.NAME "build_inspose_hrnet_fpn_backbone"
    MODEL.WEIGHTS "hrnetv2_w32_imagenet_pretrained.pth"   # official ImageNet checkpoint
    INPUT.FORMAT "RGB"                                     # that checkpoint's input convention
    MODEL.PIXEL_MEAN [123.675, 116.28, 103.53]
    MODEL.PIXEL_STD [58.395, 57.12, 57.375]

HRNet-W48 is ``MODEL.HRNET.WIDTH 48`` with the same block and module counts.
"""
from detectron2.config import CfgNode as CN

__all__ = ["add_hrnet_config"]


def add_hrnet_config(cfg: CN) -> CN:
    """Add the ``MODEL.HRNET`` keys to ``cfg`` in place (and return it)."""
    _C = cfg.MODEL.HRNET = CN()
    # Channels C of the highest-resolution branch; branch b (b = 0..3) has C * 2**b channels at
    # stride 4 * 2**b. 32 = HRNet-W32 (branches 32/64/128/256), 48 = HRNet-W48.
    _C.WIDTH = 32
    # Normalisation of every conv in the trunk: "BN", "FrozenBN", "GN" (32 groups) or "SyncBN"
    # (detectron2.layers.get_norm). FrozenBN keeps the pretrained statistics fixed, as detectron2's
    # ResNet default does.
    _C.NORM = "FrozenBN"
    # Frozen part of the trunk (no gradient, BatchNorm turned into FrozenBatchNorm2d):
    # 0 = nothing, 1 = stem (conv1/bn1/conv2/bn2), 2 = stem + layer1 (stage 1),
    # 3 = ... + transition1 + stage2, 4 = ... + transition2 + stage3, 5 = everything.
    _C.FREEZE_AT = 2
    # Trunk outputs handed to the FPN: a subset of hr2, hr3, hr4, hr5 (strides 4, 8, 16, 32 and
    # C, 2C, 4C, 8C channels). The FPN uses them as its in_features (hr3..hr5 -> P3..P5).
    _C.OUT_FEATURES = ["hr3", "hr4", "hr5"]
    # Bottleneck blocks of stage 1 (``layer1``, 64 -> 256 channels at stride 4).
    _C.STAGE1_NUM_BLOCKS = 4
    # HighResolutionModules in stages 2, 3, 4 (1, 4, 3 for W32 and W48).
    _C.NUM_MODULES = [1, 4, 3]
    # BasicBlocks per branch in every module of stages 2, 3, 4 (4, 4, 4 for W32 and W48).
    _C.NUM_BLOCKS = [4, 4, 4]
    # True: the last module of stage 4 fuses into all four branches, so hr2..hr5 all exist (the
    # ImageNet / HRNetV2 layout, needed for the FPN). False: it fuses into branch 0 only, as in the
    # pose-estimation HRNet; then only hr2 can be an output.
    _C.FINAL_STAGE_MULTI_SCALE = True
    return cfg
