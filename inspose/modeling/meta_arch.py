"""The ``InsPose`` meta-architecture, registered in detectron2's META_ARCH_REGISTRY.

Input: detectron2's list of dicts ("image" (C, H, W) in INPUT.FORMAT, "instances" with gt_boxes,
gt_classes, gt_keypoints in training, optional "crowd_boxes", "height"/"width" for the output size).
Training: heads (``HeadOutputs``) + ``InsPoseCodec.encode`` (targets) -> ``InsPoseCriterion``, which
returns the loss dict. Inference: heads -> ``InsPosePredictor`` (selection, KP-Nets, decoding with
the codec, NMS) -> [{"instances": Instances}] with pred_keypoints (N, K, 3), pred_boxes, scores and
pred_classes at the requested output size. With KEYPOINT_REGRESSION_ON the keypoint-regression
branch runs on the FPN levels before the instance head, whose star convs (STAR_DEFORM_ON) it places.
"""
from typing import Dict, List, Optional

import torch
from detectron2.config import configurable
from detectron2.modeling import META_ARCH_REGISTRY, Backbone, build_backbone
from detectron2.structures import ImageList
from torch import nn

from ..config import validate_inspose_config
from ..config.validation import nms_box_source
from .codec import InsPoseCodec
from .criterion import InsPoseCriterion
from .head_outputs import HeadOutputs
from .heads import (
    DiskOffsetBranch,
    HeatmapBranch,
    InstanceHead,
    KeypointFeatureBranch,
    KeypointRegressionBranch,
    build_heatmap_branch,
    heatmap_maps,
    resample_to,
    star_keypoint_indices,
)
from .inference import InsPosePredictor, rescale_instances
from .kpnet import KPNetLayout

__all__ = ["InsPose"]


@META_ARCH_REGISTRY.register()
class InsPose(nn.Module):
    """Single-stage multi-person pose estimation with instance-aware dynamic KP-Nets."""

    @configurable
    def __init__(
        self,
        *,
        backbone: Backbone,
        in_features: List[str],
        head: InstanceHead,
        keypoint_branch: KeypointFeatureBranch,
        offset_branch: Optional[DiskOffsetBranch],
        heatmap_branch: Optional[HeatmapBranch],
        codec: InsPoseCodec,
        criterion: InsPoseCriterion,
        predictor: InsPosePredictor,
        pixel_mean: List[float],
        pixel_std: List[float],
        channels_last: bool = False,
        keypoint_regression: Optional[KeypointRegressionBranch] = None,
        regression_at_test: bool = False,
        heatmap_at_test: bool = False,
    ):
        """
        Args:
            keypoint_regression: the keypoint-regression branch (KEYPOINT_REGRESSION_ON), or None;
                regression_at_test: run it at test time too (something there reads it).
            heatmap_branch: ``HeatmapBranch`` or ``FineKeypointBranch`` (HEATMAP_ON), or None;
                heatmap_at_test: run it at test time too, for its offsets (HEATMAP_OFFSETS_ON).
        """
        super().__init__()
        self.backbone = backbone
        self.in_features = in_features
        self.head = head
        self.keypoint_branch = keypoint_branch
        self.offset_branch = offset_branch
        self.heatmap_branch = heatmap_branch
        self.keypoint_regression = keypoint_regression
        self.regression_at_test = regression_at_test
        self.heatmap_at_test = heatmap_at_test
        self.codec = codec
        self.criterion = criterion
        self.predictor = predictor
        self.register_buffer("pixel_mean", torch.tensor(pixel_mean).view(-1, 1, 1), False)
        self.register_buffer("pixel_std", torch.tensor(pixel_std).view(-1, 1, 1), False)
        if channels_last:
            # 4-D weights in NHWC order: oneDNN convolutions on the CPU skip their layout
            # conversions, and activations stay NHWC through the network (about 8% faster
            # training steps for the demo model on 2 cores).
            self.to(memory_format=torch.channels_last)

    @classmethod
    def from_config(cls, cfg) -> Dict:
        validate_inspose_config(cfg)
        c = cfg.MODEL.INSPOSE
        backbone = build_backbone(cfg)
        shapes = backbone.output_shape()
        p3 = shapes[c.IN_FEATURES[0]]
        layout = KPNetLayout(c.KP_FEATURE_OUT_CHANNELS, c.KPNET_CHANNELS, c.NUM_KEYPOINTS, c.KPNET_DEPTH)
        codec = InsPoseCodec.from_config(cfg)
        head = InstanceHead(
            p3,
            num_kpnet_params=layout.num_params,
            strides=c.FPN_STRIDES,
            num_convs=c.NUM_TOWER_CONVS,
            channels=c.TOWER_CHANNELS,
            norm=c.NORM,
            prior_prob=c.PRIOR_PROB,
            box_head=c.BOX_HEAD_ON,
            kpnet_layout=layout if c.KPNET_INIT == "he" else None,
            star_taps=star_keypoint_indices(cfg) if c.STAR_DEFORM_ON else None,
            star_grad_mult=c.STAR_GRAD_MULT,
        )
        keypoint_branch = KeypointFeatureBranch(
            p3.channels,
            num_convs=c.KP_FEATURE_CONVS,
            channels=c.KP_FEATURE_CHANNELS,
            out_channels=c.KP_FEATURE_OUT_CHANNELS,
            norm=c.NORM,
            last_conv=c.KP_FEATURE_LAST_CONV,
        )
        offset_branch = heatmap_branch = None
        if c.DISK_OFFSET_ON and not c.HEATMAP_OFFSETS_ON:  # else the heatmap branch's offsets
            offset_branch = DiskOffsetBranch(
                p3.channels,
                num_keypoints=c.NUM_KEYPOINTS,
                num_convs=c.OFFSET_CONVS,
                channels=c.OFFSET_CHANNELS,
                norm=c.NORM,
            )
        if c.HEATMAP_ON:
            heatmap_branch = build_heatmap_branch(c, p3.channels)
        return {
            "backbone": backbone,
            "in_features": list(c.IN_FEATURES),
            "head": head,
            "keypoint_branch": keypoint_branch,
            "offset_branch": offset_branch,
            "heatmap_branch": heatmap_branch,
            "codec": codec,
            "criterion": InsPoseCriterion(cfg, codec=codec, layout=layout),
            "predictor": InsPosePredictor(cfg, codec=codec, layout=layout),
            "pixel_mean": cfg.MODEL.PIXEL_MEAN,
            "pixel_std": cfg.MODEL.PIXEL_STD,
            "channels_last": c.CHANNELS_LAST,
            "heatmap_at_test": c.HEATMAP_ON and c.HEATMAP_OFFSETS_ON,
            **cls._keypoint_regression(cfg, p3.channels),
        }

    @staticmethod
    def _keypoint_regression(cfg, in_channels: int) -> Dict:
        """The keypoint-regression branch's arguments (none with KEYPOINT_REGRESSION_ON off)."""
        c = cfg.MODEL.INSPOSE
        if not c.KEYPOINT_REGRESSION_ON:
            return {}
        branch = KeypointRegressionBranch(
            in_channels,
            num_keypoints=c.NUM_KEYPOINTS,
            num_convs=c.KEYPOINT_REGRESSION_CONVS,
            channels=c.KEYPOINT_REGRESSION_CHANNELS,
            norm=c.NORM,
        )
        read_at_test = c.STAR_DEFORM_ON or nms_box_source(c) == "regression" or c.KPNETS_AFTER_NMS
        return {"keypoint_regression": branch, "regression_at_test": read_at_test}

    @property
    def device(self) -> torch.device:
        return self.pixel_mean.device

    def preprocess_image(self, batched_inputs: List[Dict]) -> ImageList:
        """Normalise and pad the images to the backbone's size divisibility."""
        images = [(x["image"].to(self.device) - self.pixel_mean) / self.pixel_std for x in batched_inputs]
        return ImageList.from_tensors(images, self.backbone.size_divisibility)

    def predict_maps(self, images: ImageList) -> HeadOutputs:
        """Every head's output for a padded batch (B, 3, H, W); the heatmaps (and tags) only in
        training; the heatmap branch runs at test time only for its offsets (HEATMAP_OFFSETS_ON)."""
        features = self.backbone(images.tensor)
        levels = [features[f] for f in self.in_features]
        regression = None
        if self.keypoint_regression is not None and (self.training or self.regression_at_test):
            regression = self.keypoint_regression(levels)
        logits, params, boxes = self.head(levels, regression)
        p3 = levels[0]
        map_size = self.codec.output_map_size(tuple(p3.shape[-2:]))
        offsets = heatmaps = tags = None
        if self.offset_branch is not None:
            offsets = resample_to(self.offset_branch(p3), map_size)
        if self.heatmap_branch is not None and (self.training or self.heatmap_at_test):
            fine = heatmap_maps(self.heatmap_branch, p3, self.training)
            heatmaps, tags = fine.heatmaps, fine.tags
            # HEATMAP_OFFSETS_ON: already on the decode map (HEATMAP_STRIDE, validated).
            offsets = fine.offsets if fine.offsets is not None else offsets
        return HeadOutputs(
            logits=logits,
            params=params,
            boxes=boxes,
            kp_features=resample_to(self.keypoint_branch(p3), map_size),
            offsets=offsets,
            heatmaps=heatmaps,
            level_sizes=[tuple(x.shape[-2:]) for x in levels],
            keypoint_regression=regression,
            heatmap_tags=tags,
        )

    def forward(self, batched_inputs: List[Dict]):
        images = self.preprocess_image(batched_inputs)
        outputs = self.predict_maps(images)
        locs = self.codec.locations(outputs.level_sizes, self.device)
        if self.training:
            gt_instances = [x["instances"].to(self.device) for x in batched_inputs]
            crowd = [x["crowd_boxes"].tensor if "crowd_boxes" in x else None for x in batched_inputs]
            targets = self.codec.encode(locs, gt_instances, crowd)
            return self.criterion(outputs, locs, targets)
        results = self.predictor(outputs, locs, images.image_sizes)
        processed = []
        for result, inputs, size in zip(results, batched_inputs, images.image_sizes):
            height, width = inputs.get("height", size[0]), inputs.get("width", size[1])
            processed.append({"instances": rescale_instances(result, height, width)})
        return processed
