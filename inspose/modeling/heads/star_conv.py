"""Star deformable convolutions: a 3x3 deformable conv whose 9 taps sit on 9 regressed keypoints.

The keypoint-regression branch (``keypoint_regression.py``) predicts, at every location of an FPN
level, where each keypoint of the location's person lies, in units of the level's stride. Nine of
those keypoints (``MODEL.INSPOSE.STAR_KEYPOINTS``) become the sampling positions of a 3x3
deformable convolution: tap k of the kernel (row-major, tap (i, j) at the regular grid position
(i - 1, j - 1) cells from the centre) samples keypoint ``taps[k]``. The classification and the
controller towers each get one; its output, after normalisation and ReLU, is concatenated to the
tower's output before the classifier / controller conv (the authors' release).

torchvision's ``deform_conv2d`` takes per tap the offset from the regular grid position, (dy, dx):
offset_k = keypoint_k - grid_k. The offsets pass gradient to the regression branch scaled by
``grad_mult`` (``(1 - m) * detached + m * live``: the same value, m times the gradient).
"""
from typing import Sequence

import torch
from detectron2.layers import get_norm
from torch import nn
from torchvision.ops import DeformConv2d

__all__ = ["StarConv", "star_offsets", "as_taps", "regular_grid", "KERNEL_TAPS"]

KERNEL_TAPS = 9  # a 3x3 kernel


def regular_grid(device=None, dtype=torch.float32) -> torch.Tensor:
    """(9, 2) (dy, dx) of the taps of a 3x3 kernel around its centre, row-major."""
    steps = torch.arange(-1, 2, device=device, dtype=dtype)
    grid_y, grid_x = torch.meshgrid(steps, steps, indexing="ij")
    return torch.stack([grid_y.reshape(-1), grid_x.reshape(-1)], dim=1)


def scaled_gradient(x: torch.Tensor, multiplier: float) -> torch.Tensor:
    """``x`` in the forward pass; ``multiplier`` times the gradient in the backward pass."""
    if multiplier == 1.0:
        return x
    return (1.0 - multiplier) * x.detach() + multiplier * x


def star_offsets(regression: torch.Tensor, taps: torch.Tensor, grad_mult: float = 0.1) -> torch.Tensor:
    """The deformable conv offsets that put the 9 taps on the regressed keypoints ``taps``.

    Args:
        regression: (B, 2K, H, W) keypoint positions relative to each location in units of the
            stride, (dx_k, dy_k) in channels (2k, 2k + 1).
        taps: (9,) long, the keypoint index sampled by each tap of the kernel (row-major).
        grad_mult: the gradient multiplier of the offsets.
    Returns:
        (B, 18, H, W) offsets, (dy, dx) of tap k in channels (2k, 2k + 1), as
        ``torchvision.ops.deform_conv2d`` reads them.
    """
    batch, channels, height, width = regression.shape
    per_keypoint = scaled_gradient(regression, grad_mult).view(batch, channels // 2, 2, height, width)
    chosen = per_keypoint[:, taps].flip(2)  # (B, 9, 2, H, W), (dx, dy) -> (dy, dx)
    grid = regular_grid(regression.device, regression.dtype).view(1, KERNEL_TAPS, 2, 1, 1)
    return (chosen - grid).reshape(batch, 2 * KERNEL_TAPS, height, width)


class StarConv(nn.Module):
    """(B, C, H, W) tower output and (B, 18, H, W) star offsets -> (B, C, H, W): a 3x3 deformable
    conv (no bias, weights N(0, 0.1) as the release), normalisation, ReLU."""

    def __init__(self, channels: int, norm: str = "GN", init_std: float = 0.1):
        super().__init__()
        self.conv = DeformConv2d(channels, channels, 3, padding=1, bias=False)
        nn.init.normal_(self.conv.weight, std=init_std)
        self.norm = get_norm(norm, channels) if norm else None

    def forward(self, x: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        y = self.conv(x, offsets)
        if self.norm is not None:
            y = self.norm(y)
        return torch.relu(y)


def as_taps(indices: Sequence[int]) -> torch.Tensor:
    """(9,) long tensor of keypoint indices, one per tap."""
    taps = torch.as_tensor(list(indices), dtype=torch.long)
    if taps.shape != (KERNEL_TAPS,):
        raise ValueError(f"a star conv needs {KERNEL_TAPS} keypoints, got {taps.tolist()}")
    return taps
