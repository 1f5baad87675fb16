"""The heads shared across FPN levels: classification, KP-Net controller and the optional box head."""
import math
from typing import List, Optional, Tuple

import torch
from detectron2.layers import ShapeSpec
from torch import nn
from torch.nn import functional as F

from .tower import conv_tower, init_normal, init_prior_bias

__all__ = ["InstanceHead"]


def init_kpnet_bias(controller: nn.Conv2d, layout) -> None:
    """Controller bias = the parameters of a He-initialised KP-Net, so every generated KP-Net
    starts as a working network whose gradients reach all its layers (with RetinaNet's zero bias
    the generated weights are ~0.01 and a 3-layer KP-Net barely learns at first)."""
    chunks = []
    for index, (out_ch, in_ch) in enumerate(layout.layer_shapes()):
        gain = 2.0 if index < layout.depth - 1 else 1.0
        chunks.append(torch.randn(out_ch * in_ch) * math.sqrt(gain / in_ch))
        chunks.append(torch.zeros(out_ch))
    with torch.no_grad():
        controller.bias.copy_(torch.cat(chunks))


class Scale(nn.Module):
    """A learnable scalar per FPN level for the box regression (FCOS)."""

    def __init__(self, value: float = 1.0):
        super().__init__()
        self.value = nn.Parameter(torch.tensor(float(value)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.value


class InstanceHead(nn.Module):
    """Classification tower + controller tower, shared by P3..P7.

    Outputs per level (B, 1, H_i, W_i) person logits, (B, C_f, H_i, W_i) KP-Net parameters and,
    with the box head, (B, 4, H_i, W_i) distances (l, t, r, b) in pixels from the controller tower
    (regressed in units of the level's stride, as FCOS does).
    """

    def __init__(
        self,
        input_shape: ShapeSpec,
        *,
        num_kpnet_params: int,
        strides: List[int],
        num_convs: int = 4,
        channels: int = 256,
        norm: str = "GN",
        prior_prob: float = 0.01,
        box_head: bool = False,
        kpnet_layout=None,
    ):
        super().__init__()
        in_channels = input_shape.channels
        self.cls_tower = conv_tower(in_channels, channels, num_convs, norm)
        self.controller_tower = conv_tower(in_channels, channels, num_convs, norm)
        tower_out = channels if num_convs > 0 else in_channels
        self.cls_logits = nn.Conv2d(tower_out, 1, 3, padding=1)
        self.controller = nn.Conv2d(tower_out, num_kpnet_params, 3, padding=1)
        init_normal(self.cls_logits)
        init_normal(self.controller)
        init_prior_bias(self.cls_logits, prior_prob)
        if kpnet_layout is not None:
            init_kpnet_bias(self.controller, kpnet_layout)
        self.box_pred = None
        if box_head:
            self.box_pred = nn.Conv2d(tower_out, 4, 3, padding=1)
            self.box_scales = nn.ModuleList([Scale() for _ in strides])
            init_normal(self.box_pred)
        self.strides = list(strides)

    def forward(
        self, features: List[torch.Tensor]
    ) -> Tuple[List[torch.Tensor], List[torch.Tensor], Optional[List[torch.Tensor]]]:
        """Per level: logits (B, 1, H_i, W_i), params (B, C_f, H_i, W_i), and boxes
        (B, 4, H_i, W_i) with the box head (else None instead of the list)."""
        logits, params, boxes = [], [], []
        for level, x in enumerate(features):
            logits.append(self.cls_logits(self.cls_tower(x)))
            tower = self.controller_tower(x)
            params.append(self.controller(tower))
            if self.box_pred is not None:
                distances = F.relu(self.box_scales[level](self.box_pred(tower))) * self.strides[level]
                boxes.append(distances)
        return logits, params, boxes if self.box_pred is not None else None
