"""The heads shared across FPN levels: classification, KP-Net controller and the optional box head."""
import math
from typing import List, Optional, Tuple

import torch
from detectron2.layers import ShapeSpec
from torch import nn
from torch.nn import functional as F

from .star_conv import StarConv, as_taps, star_offsets
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

    With ``star_taps`` (9 keypoint indices, STAR_DEFORM_ON) each tower's output is concatenated
    with a star deformable conv of it (``star_conv.py``), placed by the keypoint regression of the
    same level, so the classifier and the controller take twice the tower's channels; the box
    head stays on the plain controller tower.
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
        star_taps: Optional[List[int]] = None,
        star_grad_mult: float = 0.1,
    ):
        super().__init__()
        in_channels = input_shape.channels
        self.cls_tower = conv_tower(in_channels, channels, num_convs, norm)
        self.controller_tower = conv_tower(in_channels, channels, num_convs, norm)
        tower_out = channels if num_convs > 0 else in_channels
        self.cls_star = self.controller_star = None
        if star_taps is not None:
            self.cls_star, self.controller_star = StarConv(tower_out, norm), StarConv(tower_out, norm)
            self.register_buffer("star_taps", as_taps(star_taps), persistent=False)
            self.star_grad_mult = star_grad_mult
        head_in = 2 * tower_out if star_taps is not None else tower_out
        self.cls_logits = nn.Conv2d(head_in, 1, 3, padding=1)
        self.controller = nn.Conv2d(head_in, num_kpnet_params, 3, padding=1)
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
        self, features: List[torch.Tensor], keypoint_regression: Optional[List[torch.Tensor]] = None
    ) -> Tuple[List[torch.Tensor], List[torch.Tensor], Optional[List[torch.Tensor]]]:
        """Per level: logits (B, 1, H_i, W_i), params (B, C_f, H_i, W_i), and boxes
        (B, 4, H_i, W_i) with the box head (else None instead of the list).

        Args:
            keypoint_regression: per level (B, 2K, H_i, W_i) regressed keypoints in strides
                (``KeypointRegressionBranch``); needed with the star convs, else unused.
        """
        if self.cls_star is not None and keypoint_regression is None:
            raise ValueError("the star deformable convs need the keypoint regression of every level")
        logits, params, boxes = [], [], []
        for level, x in enumerate(features):
            offsets = None
            if self.cls_star is not None:
                offsets = star_offsets(keypoint_regression[level], self.star_taps, self.star_grad_mult)
            logits.append(self.cls_logits(self._with_star(self.cls_tower(x), self.cls_star, offsets)))
            tower = self.controller_tower(x)
            params.append(self.controller(self._with_star(tower, self.controller_star, offsets)))
            if self.box_pred is not None:
                distances = F.relu(self.box_scales[level](self.box_pred(tower))) * self.strides[level]
                boxes.append(distances)
        return logits, params, boxes if self.box_pred is not None else None

    @staticmethod
    def _with_star(tower: torch.Tensor, star: Optional[StarConv], offsets) -> torch.Tensor:
        """(B, C, H, W) -> (B, 2C, H, W) [tower, star conv of it] with the star convs, else itself."""
        if star is None:
            return tower
        return torch.cat([tower, star(tower, offsets)], dim=1)
