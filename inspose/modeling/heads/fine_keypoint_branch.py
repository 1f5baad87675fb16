"""The heatmap branch with the authors' release's options: stride 4, tags and offsets.

``build_heatmap_branch`` returns today's ``HeatmapBranch`` (heatmaps on P3, training only) unless
HEATMAP_STRIDE 4, HEATMAP_OFFSETS_ON or AE_TAGS_ON ask for more; then a ``FineKeypointBranch``:
HEATMAP_CONVS 3x3 convs (+ NORM + ReLU) of HEATMAP_CHANNELS on P3; at HEATMAP_STRIDE 4 a bilinear
x2 and HEATMAP_UPSAMPLED_CONVS more (the release: 2 x 512, x2, 1 x 512, GN); then 3x3 convs to K
heatmap logits, K associative-embedding tags (AE_TAGS_ON) and 2K offsets (HEATMAP_OFFSETS_ON, in
cells of HEATMAP_STRIDE, (dx_k, dy_k) in channels (2k, 2k + 1), the disk-offset convention).
"""
from dataclasses import dataclass
from typing import Optional, Union

import torch
from torch import nn
from torch.nn import functional as F

from .p3_branches import HeatmapBranch
from .tower import conv_tower, init_normal, init_prior_bias

__all__ = ["FineKeypointMaps", "FineKeypointBranch", "build_heatmap_branch", "heatmap_maps"]


@dataclass
class FineKeypointMaps:
    """The heatmap branch's maps on the (H_h, W_h) map of HEATMAP_STRIDE.

    Attributes:
        heatmaps: (B, K, H_h, W_h) logits, or None (inference, where only offsets are needed).
        tags: (B, K, H_h, W_h) associative-embedding tags, or None.
        offsets: (B, 2K, H_h, W_h) offsets in cells, or None.
    """

    heatmaps: Optional[torch.Tensor] = None
    tags: Optional[torch.Tensor] = None
    offsets: Optional[torch.Tensor] = None


class FineKeypointBranch(nn.Module):
    """P3 (B, C, H, W) -> ``FineKeypointMaps`` of size (H * upsample, W * upsample)."""

    def __init__(
        self,
        in_channels: int,
        *,
        num_keypoints: int,
        num_convs: int,
        channels: int,
        norm: str,
        upsample: int = 1,
        upsampled_convs: int = 1,
        offsets_on: bool = False,
        tags_on: bool = False,
        prior_prob: float = 0.1,
    ):
        super().__init__()
        self.upsample = upsample
        self.tower = conv_tower(in_channels, channels, num_convs, norm)
        width = channels if num_convs else in_channels
        self.refine = nn.Sequential()
        if upsample > 1 and upsampled_convs:
            self.refine = conv_tower(width, channels, upsampled_convs, norm)
            width = channels
        self.predict = nn.Conv2d(width, num_keypoints, 3, padding=1)
        init_normal(self.predict)
        init_prior_bias(self.predict, prior_prob)
        self.tags = nn.Conv2d(width, num_keypoints, 3, padding=1) if tags_on else None
        self.offsets = nn.Conv2d(width, 2 * num_keypoints, 3, padding=1) if offsets_on else None
        for head in (self.tags, self.offsets):
            if head is not None:
                init_normal(head)

    def trunk(self, p3: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, channels, H * upsample, W * upsample) shared features."""
        x = self.tower(p3)
        if self.upsample > 1:
            x = F.interpolate(x, scale_factor=self.upsample, mode="bilinear", align_corners=False)
            x = self.refine(x)
        return x

    def forward(self, p3: torch.Tensor, offsets_only: bool = False) -> FineKeypointMaps:
        """All maps, or with ``offsets_only`` (inference) only the offsets."""
        x = self.trunk(p3)
        offsets = self.offsets(x) if self.offsets is not None else None
        if offsets_only:
            return FineKeypointMaps(offsets=offsets)
        tags = self.tags(x) if self.tags is not None else None
        return FineKeypointMaps(self.predict(x), tags, offsets)


HeatmapModule = Union[HeatmapBranch, FineKeypointBranch]


def build_heatmap_branch(c, in_channels: int) -> HeatmapModule:
    """The heatmap branch of MODEL.INSPOSE ``c`` (HEATMAP_ON): today's ``HeatmapBranch`` at the
    defaults, else a ``FineKeypointBranch``."""
    common = dict(
        num_keypoints=c.NUM_KEYPOINTS, num_convs=c.HEATMAP_CONVS, channels=c.HEATMAP_CHANNELS, norm=c.NORM
    )
    if c.HEATMAP_STRIDE == c.FPN_STRIDES[0] and not c.HEATMAP_OFFSETS_ON and not c.AE_TAGS_ON:
        return HeatmapBranch(in_channels, **common)
    return FineKeypointBranch(
        in_channels,
        **common,
        upsample=c.FPN_STRIDES[0] // c.HEATMAP_STRIDE,
        upsampled_convs=c.HEATMAP_UPSAMPLED_CONVS,
        offsets_on=c.HEATMAP_OFFSETS_ON,
        tags_on=c.AE_TAGS_ON,
    )


def heatmap_maps(branch: HeatmapModule, p3: torch.Tensor, training: bool) -> FineKeypointMaps:
    """Either branch's maps of P3 (B, C, H, W); outside training only the offsets."""
    if isinstance(branch, FineKeypointBranch):
        return branch(p3, offsets_only=not training)
    return FineKeypointMaps(heatmaps=branch(p3))
