"""A stack of 3x3 conv + normalisation + ReLU, the building block of every InsPose head."""
import math
from typing import List

from detectron2.layers import Conv2d, get_norm
from torch import nn

__all__ = ["conv_tower", "init_normal", "init_prior_bias"]


def conv_tower(in_channels: int, channels: int, num_convs: int, norm: str) -> nn.Sequential:
    """``num_convs`` x (3x3 conv, norm, ReLU); (B, in, H, W) -> (B, channels, H, W)."""
    layers: List[nn.Module] = []
    for i in range(num_convs):
        conv = Conv2d(
            in_channels if i == 0 else channels,
            channels,
            kernel_size=3,
            padding=1,
            bias=not norm,
            norm=get_norm(norm, channels) if norm else None,
        )
        layers += [conv, nn.ReLU(inplace=True)]
    tower = nn.Sequential(*layers)
    init_normal(tower)
    return tower


def init_normal(module: nn.Module, std: float = 0.01) -> None:
    """RetinaNet initialisation of new layers: conv weights N(0, std), biases 0."""
    for layer in module.modules():
        if isinstance(layer, nn.Conv2d):
            nn.init.normal_(layer.weight, std=std)
            if layer.bias is not None:
                nn.init.constant_(layer.bias, 0.0)


def init_prior_bias(conv: nn.Conv2d, prior_prob: float) -> None:
    """Bias so that sigmoid(output) starts at ``prior_prob`` (RetinaNet focal-loss prior)."""
    nn.init.constant_(conv.bias, -math.log((1 - prior_prob) / prior_prob))
