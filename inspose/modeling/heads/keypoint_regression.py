"""The keypoint-regression branch: every location regresses its person's K keypoints (the release).

A tower of 3x3 convs (shared by all FPN levels, like the classification tower), then a 3x3 conv to
2K channels: (dx_k, dy_k) from the location to keypoint k, in units of the level's stride
(``InsPoseCodec.regression_targets`` / ``decode_regression``). It feeds the star deformable convs
(``star_conv.py``) and can give the boxes NMS compares (``MODEL.INSPOSE.NMS_BOXES "regression"``).
"""
from typing import List

import torch
from torch import nn

from .tower import conv_tower, init_normal

__all__ = ["KeypointRegressionBranch"]


class KeypointRegressionBranch(nn.Module):
    """Per level (B, C, H_i, W_i) -> (B, 2K, H_i, W_i): ``num_convs`` x (3x3 conv of ``channels``,
    norm, ReLU), then a 3x3 conv to 2K (weights N(0, 0.01), bias 0)."""

    def __init__(self, in_channels: int, *, num_keypoints: int, num_convs: int, channels: int, norm: str):
        super().__init__()
        self.tower = conv_tower(in_channels, channels, num_convs, norm)
        self.predict = nn.Conv2d(channels if num_convs else in_channels, 2 * num_keypoints, 3, padding=1)
        init_normal(self.predict)

    def forward(self, features: List[torch.Tensor]) -> List[torch.Tensor]:
        return [self.predict(self.tower(x)) for x in features]
