"""Dynamic KP-Nets: the parameter layout, the batched forward pass, and a per-instance reference.

A KP-Net is a stack of ``depth`` 1x1 convolutions (ReLU between, none after the last) on the
keypoint features F_kp (C_kp channels) concatenated with the 2-channel relative-coordinate map.
Its C_f parameters come from the controller at the instance's location, laid out layer by layer
as [weight (out x in), bias (out)].

The batched pass runs every instance of the batch at once:
- layer 1 shares its input (F_kp of the instance's image) across instances, so it is one matrix
  product per image, (N_b * C1, C_kp) @ (C_kp, H * W); the relative-coordinate channels are folded
  in as a per-row plus a per-column term (they depend on x or on y only), so the coordinate map is
  never materialised;
- deeper layers are batched matrix products ``baddbmm`` over instances.
``kpnet_reference`` is the plain per-instance loop with ``conv2d``, kept for tests and benchmarks.
"""
from dataclasses import dataclass
from typing import List, Tuple

import torch
from torch.nn import functional as F

__all__ = [
    "KPNetLayout",
    "relative_coordinate_axes",
    "coordinate_terms",
    "kpnet_forward",
    "kpnet_reference",
]


@dataclass(frozen=True)
class KPNetLayout:
    """Shapes of a KP-Net of ``depth`` layers: (C_kp + 2) -> channels -> ... -> K."""

    in_channels: int  # C_kp (the two coordinate channels are added here)
    channels: int
    num_keypoints: int
    depth: int

    def layer_shapes(self) -> List[Tuple[int, int]]:
        """(out, in) of each layer."""
        widths = [self.in_channels + 2] + [self.channels] * (self.depth - 1) + [self.num_keypoints]
        return [(widths[i + 1], widths[i]) for i in range(self.depth)]

    @property
    def num_params(self) -> int:
        """C_f: 313 for depth 3, 8 channels, C_kp = 8, K = 17."""
        return sum(o * i + o for o, i in self.layer_shapes())

    def split(self, params: torch.Tensor) -> List[Tuple[torch.Tensor, torch.Tensor]]:
        """(N, C_f) -> per layer (weight (N, out, in), bias (N, out))."""
        layers, start = [], 0
        for out_ch, in_ch in self.layer_shapes():
            weight = params[:, start : start + out_ch * in_ch].reshape(-1, out_ch, in_ch)
            start += out_ch * in_ch
            bias = params[:, start : start + out_ch]
            start += out_ch
            layers.append((weight, bias))
        return layers


def relative_coordinate_axes(
    locations: torch.Tensor, norms: torch.Tensor, map_size: Tuple[int, int], stride: float
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Relative coordinates from every map cell to each instance's location, per axis.

    Cell (i, j) sits at ((j + 0.5) * s, (i + 0.5) * s) in the image.

    Args:
        locations: (N, 2) image coordinates (x, y) of the locations that generated the KP-Nets.
        norms: (N,) normaliser of each instance (REL_COORD_NORMS of its FPN level).
    Returns:
        rel_x: (N, W), rel_y: (N, H), so that R[n, 0, i, j] = rel_x[n, j], R[n, 1, i, j] = rel_y[n, i].
    """
    height, width = map_size
    device = locations.device
    xs = (torch.arange(width, device=device, dtype=locations.dtype) + 0.5) * stride
    ys = (torch.arange(height, device=device, dtype=locations.dtype) + 0.5) * stride
    rel_x = (xs[None, :] - locations[:, 0:1]) / norms[:, None]
    rel_y = (ys[None, :] - locations[:, 1:2]) / norms[:, None]
    return rel_x, rel_y


def coordinate_terms(
    weight: torch.Tensor, bias: torch.Tensor, in_ch: int, rel_x: torch.Tensor, rel_y: torch.Tensor
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Layer 1's relative-coordinate channels (and bias) as a per-column and a per-row term.

    Args:
        weight: (N, C1, C_kp + 2) layer-1 weights; bias: (N, C1); in_ch: C_kp.
        rel_x, rel_y: (N, W), (N, H) from ``relative_coordinate_axes``.
    Returns:
        coord_x (N, C1, W) and coord_y (N, C1, H): layer 1 at cell (i, j) is
        W_feat @ F[:, i, j] + coord_x[..., j] + coord_y[..., i].
    """
    coord_x = weight[:, :, in_ch, None] * rel_x[:, None, :]
    coord_y = weight[:, :, in_ch + 1, None] * rel_y[:, None, :] + bias[:, :, None]
    return coord_x, coord_y


def _first_layer(
    features: torch.Tensor,
    image_index: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    rel_x: torch.Tensor,
    rel_y: torch.Tensor,
) -> torch.Tensor:
    """Layer 1 for all instances: (N, C1, H * W), one matmul per image of the batch."""
    batch, in_ch, height, width = features.shape
    num, out_ch = weight.shape[:2]
    flat = features.reshape(batch, in_ch, height * width)
    w_feat = weight[:, :, :in_ch]
    if batch == 1:  # inference and export: no per-image selection
        out = (w_feat.reshape(-1, in_ch) @ flat[0]).view(num, out_ch, height * width)
    else:
        out = features.new_empty(num, out_ch, height * width)
        for b in range(batch):  # a loop over images, never over persons
            rows = (image_index == b).nonzero().squeeze(1)
            picked = w_feat[rows].reshape(rows.shape[0] * out_ch, in_ch)
            out[rows] = (picked @ flat[b]).view(rows.shape[0], out_ch, height * width)
    coord_x, coord_y = coordinate_terms(weight, bias, in_ch, rel_x, rel_y)
    out = out.view(num, out_ch, height, width) + coord_x[:, :, None, :] + coord_y[:, :, :, None]
    return out.view(num, out_ch, height * width)


def kpnet_forward(
    features: torch.Tensor,
    image_index: torch.Tensor,
    params: torch.Tensor,
    layout: KPNetLayout,
    rel_x: torch.Tensor,
    rel_y: torch.Tensor,
) -> torch.Tensor:
    """Keypoint map logits of N instances in one batched pass.

    Args:
        features: (B, C_kp, H, W) keypoint features F_kp at the output stride.
        image_index: (N,) batch index of each instance.
        params: (N, C_f) generated KP-Net parameters.
        rel_x, rel_y: (N, W), (N, H) from ``relative_coordinate_axes``.
    Returns:
        (N, K, H * W) logits.
    """
    layers = layout.split(params)
    hidden = _first_layer(features, image_index, *layers[0], rel_x, rel_y)
    for weight, bias in layers[1:]:
        hidden = torch.baddbmm(bias[:, :, None], weight, F.relu(hidden))
    return hidden


def kpnet_reference(
    features: torch.Tensor,
    image_index: torch.Tensor,
    params: torch.Tensor,
    layout: KPNetLayout,
    rel_x: torch.Tensor,
    rel_y: torch.Tensor,
) -> torch.Tensor:
    """The same as ``kpnet_forward``, one instance at a time with ``conv2d`` (tests, benchmarks)."""
    height, width = features.shape[-2:]
    outputs = []
    for n in range(params.shape[0]):
        coords = torch.stack(
            [rel_x[n][None, :].expand(height, width), rel_y[n][:, None].expand(height, width)]
        )
        x = torch.cat([features[image_index[n]], coords])[None]
        layers = layout.split(params[n : n + 1])
        for i, (weight, bias) in enumerate(layers):
            x = F.conv2d(x, weight[0][:, :, None, None], bias[0])
            if i < len(layers) - 1:
                x = F.relu(x)
        outputs.append(x.reshape(layout.num_keypoints, height * width))
    if not outputs:
        return features.new_zeros(0, layout.num_keypoints, height * width)
    return torch.stack(outputs)
