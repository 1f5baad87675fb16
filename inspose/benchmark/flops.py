"""Parameters, FLOPs and the device's convolution rate, from which each latency gets a FLOP floor.

Counts are multiply-accumulates (MACs), as fvcore counts them (it calls one MAC a "flop"); 1 MAC
= 2 FLOPs when set against the measured rate, which is reported in GFLOP/s.

- InsPose: fvcore's ``FlopCountAnalysis`` on a wrapper module that runs the modules of
  ``predict_maps`` on a normalised (1, 3, H, W) tensor and returns their tensors, split into
  backbone + FPN and heads (towers, classification, controller, P3 branches, the keypoint-regression
  branch when inference reads it; the heatmap branch runs only in training, unless its offsets
  are the decoded ones, HEATMAP_OFFSETS_ON: then its offsets head and the convs before it count). fvcore does not know
  torchvision's ``deform_conv2d`` (the star convs): ``deform_conv_macs`` counts it as a conv. The KP-Nets run after those maps and are counted analytically from
  ``KPNetLayout``: per instance the sum over layers of out * in * H * W MACs (H x W the output
  map, the two coordinate channels counted as inputs of layer 1), times the P instances.
- Keypoint R-CNN: fvcore on a wrapper around ``model.inference`` with one forced person. Only the
  keypoint head depends on P (RPN and box head run on the same POST_NMS_TOPK_TEST proposals
  whatever P), so its MACs at P persons are total(1) + (P - 1) * keypoint_head(1). RoIAlign, NMS
  and the heatmap decoding are not counted by fvcore.
- Rate: the median time of one large 3x3 convolution (default 1 x 256 x 200 x 304, 256 -> 256).
"""
import math
from math import prod
from typing import Dict, Iterable, Sequence, Tuple

import torch
from fvcore.nn import FlopCountAnalysis
from fvcore.nn.jit_handles import get_shape
from torch import nn

from .forcing import force_keypoint_rcnn_persons
from .timing import measure

__all__ = [
    "inspose_flops",
    "keypoint_rcnn_flops",
    "conv_rate",
    "floor_ms",
    "output_map_size",
    "inspose_gmac",
    "keypoint_rcnn_gmac",
]

RATE_CONV_SHAPE = (1, 256, 200, 304)


def _params(model: nn.Module, prefixes: Iterable[str]) -> int:
    return sum(p.numel() for n, p in model.named_parameters() if n.startswith(tuple(prefixes)))


def deform_conv_macs(inputs, outputs) -> int:
    """fvcore handle of ``torchvision::deform_conv2d``: the MACs of the convolution it computes,
    output elements x (C_in / groups) x kh x kw, as for a plain conv (the bilinear sampling of
    the input at the offsets is not counted, as fvcore does not count interpolation)."""
    weight_shape = get_shape(inputs[1])
    return prod(get_shape(outputs[0])) * prod(weight_shape[1:])


def _analysis(wrapper: nn.Module, inputs: Tuple) -> FlopCountAnalysis:
    analysis = FlopCountAnalysis(wrapper, inputs)
    analysis.set_op_handle("torchvision::deform_conv2d", deform_conv_macs)
    analysis.unsupported_ops_warnings(False)
    analysis.uncalled_modules_warnings(False)
    return analysis


def _sum_modules(by_module: Dict[str, int], names: Sequence[str]) -> int:
    return sum(by_module.get(f"model.{n}", 0) for n in names)


class _InsPoseMaps(nn.Module):
    """(1, 3, H, W) normalised image -> the tensors of InsPose's per-image maps.

    It calls the modules ``predict_maps`` calls, on the same inputs, but not ``predict_maps``
    itself: under tracing, sizes are tensors and the codec's size arithmetic needs ints. The
    bilinear resampling to OUTPUT_STRIDE other than 8 is left out (no MACs).
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor):
        features = self.model.backbone(image)
        levels = [features[f] for f in self.model.in_features]
        regression = None
        if self.model.keypoint_regression is not None and self.model.regression_at_test:
            regression = self.model.keypoint_regression(levels)
        logits, params, boxes = self.model.head(levels, regression)
        maps = logits + params + (boxes or []) + (regression or [])
        maps.append(self.model.keypoint_branch(levels[0]))
        if self.model.offset_branch is not None:
            maps.append(self.model.offset_branch(levels[0]))
        if self.model.heatmap_branch is not None and self.model.heatmap_at_test:
            maps.append(self.model.heatmap_branch(levels[0], offsets_only=True).offsets)
        return tuple(maps)


class _RCNNInference(nn.Module):
    """(3, H, W) image -> boxes and keypoints of GeneralizedRCNN's inference, as tensors."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor):
        instances = self.model.inference([{"image": image}], do_postprocess=False)[0]
        return instances.pred_boxes.tensor, instances.pred_keypoints


def output_map_size(model: nn.Module, size: Tuple[int, int]) -> Tuple[int, int]:
    """(H, W) of InsPose's keypoint maps for an input of ``size`` after padding."""
    divisor = max(1, model.backbone.size_divisibility)
    padded = [math.ceil(s / divisor) * divisor for s in size]
    stride = model.codec.fpn_strides[0]
    return model.codec.output_map_size((padded[0] // stride, padded[1] // stride))


def _kpnet_macs(layout, cells: int) -> int:
    """MACs of one KP-Net on a map of ``cells`` positions: sum over layers of out * in * cells."""
    return sum(out_ch * in_ch for out_ch, in_ch in layout.layer_shapes()) * cells


def inspose_flops(model: nn.Module, size: Tuple[int, int]) -> Dict:
    """Parameters and MACs of InsPose at ``size``; KP-Net MACs per instance (analytic)."""
    divisor = max(1, model.backbone.size_divisibility)
    padded = [math.ceil(s / divisor) * divisor for s in size]
    image = torch.zeros(1, 3, *padded, device=model.device)
    with torch.no_grad():
        by_module = _analysis(_InsPoseMaps(model).eval(), (image,)).by_module()
    heads = ("head", "keypoint_branch", "offset_branch", "keypoint_regression")
    if model.heatmap_at_test:  # HEATMAP_OFFSETS_ON: the branch's offsets are read at inference
        heads += ("heatmap_branch",)
    map_h, map_w = output_map_size(model, size)
    layout = model.predictor.layout
    return {
        "params_backbone_fpn": _params(model, ["backbone."]),
        "params_heads": _params(model, [f"{h}." for h in heads]),
        "params_heatmap_branch_training_only": 0 if model.heatmap_at_test else _params(model, ["heatmap_branch."]),
        "params_total": _params(model, [""]),
        "kpnet_params_per_instance": layout.num_params,
        "gmac_backbone_fpn": _sum_modules(by_module, ["backbone"]) / 1e9,
        "gmac_heads": _sum_modules(by_module, heads) / 1e9,
        "gmac_kpnet_per_instance": _kpnet_macs(layout, map_h * map_w) / 1e9,
        "kpnet_map_size": [map_h, map_w],
        "kpnet_note": "KP-Net MACs computed analytically: per instance sum over layers of "
        "out * in * H * W (coordinate channels included), times P; not from fvcore",
    }


def keypoint_rcnn_flops(model: nn.Module, size: Tuple[int, int]) -> Dict:
    """Parameters and MACs of Keypoint R-CNN at ``size``, traced with one forced person."""
    force_keypoint_rcnn_persons(model, 1)
    image = torch.zeros(3, *size, device=model.device)
    with torch.no_grad():
        analysis = _analysis(_RCNNInference(model).eval(), (image,))
        total, by_module = analysis.total(), analysis.by_module()
    keypoint_head = _sum_modules(by_module, ["roi_heads.keypoint_head"])
    return {
        "params_backbone_fpn": _params(model, ["backbone."]),
        "params_rpn": _params(model, ["proposal_generator."]),
        "params_box_head": _params(model, ["roi_heads.box_head.", "roi_heads.box_predictor."]),
        "params_keypoint_head": _params(model, ["roi_heads.keypoint_head."]),
        "params_total": _params(model, [""]),
        "gmac_backbone_fpn": _sum_modules(by_module, ["backbone"]) / 1e9,
        "gmac_rpn": _sum_modules(by_module, ["proposal_generator"]) / 1e9,
        "gmac_box_head": _sum_modules(by_module, ["roi_heads.box_head", "roi_heads.box_predictor"])
        / 1e9,
        "gmac_keypoint_head_per_instance": keypoint_head / 1e9,
        "gmac_without_keypoint_head": (total - keypoint_head) / 1e9,
        "note": "fvcore trace at P = 1; MACs at P = gmac_without_keypoint_head + "
        "P * gmac_keypoint_head_per_instance",
    }


def conv_rate(device: torch.device, shape=RATE_CONV_SHAPE, runs: int = 3, warmup: int = 1) -> Dict:
    """GFLOP/s of one (N, C, H, W) 3x3 convolution C -> C (padding 1) on ``device``."""
    batch, channels, height, width = shape
    torch.manual_seed(0)
    conv = nn.Conv2d(channels, channels, 3, padding=1).to(device)
    x = torch.randn(*shape, device=device)
    with torch.inference_mode():
        timing = measure(lambda: conv(x), device, runs, warmup)
    macs = batch * channels * channels * 9 * height * width
    return {
        "shape": list(shape),
        "gmac": macs / 1e9,
        "ms": timing.median_ms,
        "gflops_per_s": 2 * macs / (timing.median_ms / 1e3) / 1e9,
    }


def floor_ms(gmac: float, gflops_per_s: float) -> float:
    """Milliseconds ``gmac`` multiply-accumulates take at the measured rate (2 FLOPs per MAC)."""
    return 2 * gmac / gflops_per_s * 1e3


def inspose_gmac(flops: Dict, persons: int) -> float:
    """InsPose's MACs (G) at ``persons`` KP-Nets."""
    fixed = flops["gmac_backbone_fpn"] + flops["gmac_heads"]
    return fixed + persons * flops["gmac_kpnet_per_instance"]


def keypoint_rcnn_gmac(flops: Dict, persons: int) -> float:
    """Keypoint R-CNN's MACs (G) with ``persons`` boxes in the keypoint head."""
    return flops["gmac_without_keypoint_head"] + persons * flops["gmac_keypoint_head_per_instance"]
