"""The branches on P3: keypoint features F_kp, disk offsets, auxiliary heatmaps.

The keypoint features and the offsets are produced on P3 (stride 8) and bilinearly resampled to the
output stride when it differs (Table 3); the heatmaps stay on P3 and exist only in training.
"""
from typing import Tuple

import torch
from torch import nn
from torch.nn import functional as F

from .tower import conv_tower, init_normal, init_prior_bias

__all__ = ["KeypointFeatureBranch", "DiskOffsetBranch", "HeatmapBranch", "resample_to"]


def resample_to(x: torch.Tensor, size: Tuple[int, int]) -> torch.Tensor:
    """Bilinear resampling of (B, C, H, W) to ``size``; the identity when the size matches."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class KeypointFeatureBranch(nn.Module):
    """P3 (B, C, H, W) -> F_kp (B, C_kp, H, W): convs of ``channels``, then a conv to C_kp.

    ``last_conv`` (KP_FEATURE_LAST_CONV): "linear_1x1", a 1x1 conv with bias (default), or
    "conv3x3_gn_relu", a 3x3 conv without bias, GroupNorm of 2 groups and ReLU (the release).
    """

    def __init__(
        self,
        in_channels: int,
        *,
        num_convs: int,
        channels: int,
        out_channels: int,
        norm: str,
        last_conv: str = "linear_1x1",
    ):
        super().__init__()
        self.tower = conv_tower(in_channels, channels, num_convs, norm)
        width = channels if num_convs else in_channels
        self.finish = None
        if last_conv == "conv3x3_gn_relu":
            self.project = nn.Conv2d(width, out_channels, 3, padding=1, bias=False)
            self.finish = nn.Sequential(nn.GroupNorm(2, out_channels), nn.ReLU(inplace=True))
        else:
            self.project = nn.Conv2d(width, out_channels, 1)
        init_normal(self.project)

    def forward(self, p3: torch.Tensor) -> torch.Tensor:
        features = self.project(self.tower(p3))
        return self.finish(features) if self.finish is not None else features


class DiskOffsetBranch(nn.Module):
    """P3 -> (B, 2K, H, W) offsets in output cells: ``num_convs`` 3x3 convs, the last to 2K."""

    def __init__(self, in_channels: int, *, num_keypoints: int, num_convs: int, channels: int, norm: str):
        super().__init__()
        self.tower = conv_tower(in_channels, channels, num_convs - 1, norm)
        self.predict = nn.Conv2d(channels if num_convs > 1 else in_channels, 2 * num_keypoints, 3, padding=1)
        init_normal(self.predict)

    def forward(self, p3: torch.Tensor) -> torch.Tensor:
        return self.predict(self.tower(p3))


class HeatmapBranch(nn.Module):
    """P3 -> (B, K, H, W) heatmap logits: ``num_convs`` 3x3 convs of ``channels``, a 3x3 conv to K."""

    def __init__(
        self,
        in_channels: int,
        *,
        num_keypoints: int,
        num_convs: int,
        channels: int,
        norm: str,
        prior_prob: float = 0.1,
    ):
        super().__init__()
        self.tower = conv_tower(in_channels, channels, num_convs, norm)
        self.predict = nn.Conv2d(channels if num_convs else in_channels, num_keypoints, 3, padding=1)
        init_normal(self.predict)
        init_prior_bias(self.predict, prior_prob)

    def forward(self, p3: torch.Tensor) -> torch.Tensor:
        return self.predict(self.tower(p3))
