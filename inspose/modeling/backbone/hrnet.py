"""HRNet trunk (high-resolution network, W32 by default) as a detectron2 ``Backbone``.

Layout (W = ``MODEL.HRNET.WIDTH``; branch b has ``W * 2**b`` channels at stride ``4 * 2**b``)::

    image (N, 3, H, W_img)
    stem    conv1 3x3/2 + bn1 + ReLU, conv2 3x3/2 + bn2 + ReLU   -> (N, 64, H/4, W_img/4)
    layer1  4 Bottlenecks (64 -> 256), ``layer1.0.downsample``   -> (N, 256, H/4, W_img/4)
    transition1, stage2: 2 branches (W, 2W),            1 module
    transition2, stage3: 3 branches (W, 2W, 4W),        4 modules
    transition3, stage4: 4 branches (W, 2W, 4W, 8W),    3 modules
    outputs hr2, hr3, hr4, hr5 = the stage4 branches, strides 4, 8, 16, 32

Every module of a stage runs 4 BasicBlocks per branch, then fuses all branches into each output
branch: a lower-resolution input is brought up by a 1x1 conv + norm + nearest upsampling, a
higher-resolution input down by a chain of strided 3x3 conv + norm (ReLU between them), and the
sum goes through a ReLU.

Module names follow the official HRNet checkpoints (``stage2.0.branches.1.3.conv2.weight``,
``stage2.0.fuse_layers.0.1.0.weight``, ``transition1.1.0.0.weight``, ...), so an ImageNet
checkpoint loads by name (see ``inspose.checkpoint``). Branches that keep their width between
stages and the ``i == j`` fuse entries are ``nn.Identity`` (no parameters, so no keys).

``final_multi_scale=False`` builds the pose-estimation variant, whose last stage4 module fuses into
branch 0 only; it then has the single output ``hr2``.
"""
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from detectron2.layers import FrozenBatchNorm2d, ShapeSpec, get_norm
from detectron2.modeling.backbone import Backbone
from detectron2.modeling.backbone.build import BACKBONE_REGISTRY

__all__ = [
    "BasicBlock",
    "Bottleneck",
    "HighResolutionModule",
    "HRNet",
    "build_inspose_hrnet_backbone",
    "FREEZE_GROUPS",
]

STEM_CHANNELS = 64
BOTTLENECK_EXPANSION = 4
MAX_BRANCHES = 4

# FREEZE_AT = k freezes the first k groups (0 = nothing frozen).
FREEZE_GROUPS = (
    ("conv1", "bn1", "conv2", "bn2"),  # 1: stem
    ("layer1",),  # 2: stage1
    ("transition1", "stage2"),  # 3
    ("transition2", "stage3"),  # 4
    ("transition3", "stage4"),  # 5: everything
)


def conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    """3x3 convolution, padding 1, no bias (a norm follows)."""
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)


def conv1x1(in_channels: int, out_channels: int) -> nn.Conv2d:
    """1x1 convolution, no bias (a norm follows)."""
    return nn.Conv2d(in_channels, out_channels, 1, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 conv + norm with an identity shortcut: (N, C, H, W) -> (N, C, H, W)."""

    def __init__(self, channels: int, norm: str):
        super().__init__()
        self.conv1 = conv3x3(channels, channels)
        self.bn1 = get_norm(norm, channels)
        self.conv2 = conv3x3(channels, channels)
        self.bn2 = get_norm(norm, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu_(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu_(out + x)


class Bottleneck(nn.Module):
    """1x1 -> 3x3 -> 1x1 bottleneck: (N, C_in, H, W) -> (N, 4 * planes, H, W).

    A 1x1 conv + norm shortcut (``downsample.0`` / ``downsample.1``) is added when C_in differs
    from ``4 * planes``.
    """

    def __init__(self, in_channels: int, planes: int, norm: str):
        super().__init__()
        out_channels = planes * BOTTLENECK_EXPANSION
        self.conv1 = conv1x1(in_channels, planes)
        self.bn1 = get_norm(norm, planes)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = get_norm(norm, planes)
        self.conv3 = conv1x1(planes, out_channels)
        self.bn3 = get_norm(norm, out_channels)
        self.downsample = None
        if in_channels != out_channels:
            self.downsample = nn.Sequential(
                conv1x1(in_channels, out_channels), get_norm(norm, out_channels)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu_(self.bn1(self.conv1(x)))
        out = F.relu_(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return F.relu_(out + shortcut)


def _fuse_layer(channels: Sequence[int], src: int, dst: int, norm: str) -> nn.Module:
    """The path that brings branch ``src`` to branch ``dst`` in a fuse.

    ``src > dst``: 1x1 conv + norm (keys ``.0`` / ``.1``); nearest upsampling happens in forward.
    ``src < dst``: ``dst - src`` strided 3x3 conv + norm steps (keys ``.<k>.0`` / ``.<k>.1``),
    ReLU after every step but the last; only the last step changes the channels.
    """
    if src == dst:
        return nn.Identity()
    if src > dst:
        return nn.Sequential(conv1x1(channels[src], channels[dst]), get_norm(norm, channels[dst]))
    steps = []
    for k in range(dst - src):
        last = k == dst - src - 1
        out_channels = channels[dst] if last else channels[src]
        step = [conv3x3(channels[src], out_channels, stride=2), get_norm(norm, out_channels)]
        if not last:
            step.append(nn.ReLU(inplace=True))
        steps.append(nn.Sequential(*step))
    return nn.Sequential(*steps)


class HighResolutionModule(nn.Module):
    """One HRNet module: parallel BasicBlock branches, then multi-resolution fusion.

    Input and output: a list of B tensors, branch b of shape (N, channels[b], H / 2**b, W / 2**b).
    With ``multi_scale_output=False`` only branch 0 is fused and returned (a list of one tensor).
    """

    def __init__(
        self, channels: Sequence[int], num_blocks: int, norm: str, multi_scale_output: bool = True
    ):
        super().__init__()
        self.num_branches = len(channels)
        self.branches = nn.ModuleList(
            nn.Sequential(*[BasicBlock(c, norm) for _ in range(num_blocks)]) for c in channels
        )
        num_outputs = self.num_branches if multi_scale_output else 1
        self.fuse_layers = nn.ModuleList(
            nn.ModuleList(_fuse_layer(channels, j, i, norm) for j in range(self.num_branches))
            for i in range(num_outputs)
        )

    def forward(self, xs: List[torch.Tensor]) -> List[torch.Tensor]:
        assert len(xs) == self.num_branches, (len(xs), self.num_branches)
        xs = [branch(x) for branch, x in zip(self.branches, xs)]
        return [self._fuse(i, xs) for i in range(len(self.fuse_layers))]

    def _fuse(self, i: int, xs: List[torch.Tensor]) -> torch.Tensor:
        out = xs[i]
        for j, x in enumerate(xs):
            if j == i:
                continue
            y = self.fuse_layers[i][j](x)
            if j > i:
                y = F.interpolate(y, size=out.shape[-2:], mode="nearest")
            out = out + y
        return F.relu(out)


def _transition(prev: Sequence[int], new: Sequence[int], norm: str) -> nn.ModuleList:
    """Maps the previous stage's branches to the next stage's.

    An existing branch gets a 3x3 conv + norm + ReLU if its width changes (``.<b>.0/.1``), else
    ``nn.Identity``. A new branch is made from the previous stage's last branch by strided 3x3
    conv + norm + ReLU steps (``.<b>.<k>.0/.1``), one per halving of the resolution.
    """
    layers = []
    for b, out_channels in enumerate(new):
        if b < len(prev):
            if prev[b] == out_channels:
                layers.append(nn.Identity())
            else:
                layers.append(_conv_norm_relu(prev[b], out_channels, 1, norm))
            continue
        steps = []
        for k in range(b + 1 - len(prev)):
            last = k == b - len(prev)
            steps.append(_conv_norm_relu(prev[-1], out_channels if last else prev[-1], 2, norm))
        layers.append(nn.Sequential(*steps))
    return nn.ModuleList(layers)


def _conv_norm_relu(in_channels: int, out_channels: int, stride: int, norm: str) -> nn.Sequential:
    return nn.Sequential(
        conv3x3(in_channels, out_channels, stride), get_norm(norm, out_channels), nn.ReLU(inplace=True)
    )


class HRNet(Backbone):
    """HRNet trunk; outputs a dict of the requested ``hr2``..``hr5`` features.

    Args:
        width: channels of the highest-resolution branch (32 for W32, 48 for W48).
        stage1_blocks: Bottlenecks in ``layer1``.
        num_modules: HighResolutionModules in stages 2, 3, 4.
        num_blocks: BasicBlocks per branch per module in stages 2, 3, 4.
        norm: "BN", "FrozenBN", "GN" or "SyncBN" (``detectron2.layers.get_norm``).
        freeze_at: 0 = train everything; k freezes the first k of ``FREEZE_GROUPS``.
        out_features: subset of hr2, hr3, hr4, hr5 (strides 4, 8, 16, 32).
        final_multi_scale: False builds the pose variant (only hr2 available).
        in_channels: image channels.
    """

    def __init__(
        self,
        width: int = 32,
        stage1_blocks: int = 4,
        num_modules: Sequence[int] = (1, 4, 3),
        num_blocks: Sequence[int] = (4, 4, 4),
        norm: str = "BN",
        freeze_at: int = 0,
        out_features: Sequence[str] = ("hr3", "hr4", "hr5"),
        final_multi_scale: bool = True,
        in_channels: int = 3,
    ):
        super().__init__()
        assert len(num_modules) == len(num_blocks) == MAX_BRANCHES - 1, (num_modules, num_blocks)
        self._build_stem(in_channels, stage1_blocks, norm)
        prev = [STEM_CHANNELS * BOTTLENECK_EXPANSION]
        for s, (modules, blocks) in enumerate(zip(num_modules, num_blocks), start=2):
            channels = [width * 2**b for b in range(s)]
            multi_scale = final_multi_scale or s < MAX_BRANCHES
            setattr(self, f"transition{s - 1}", _transition(prev, channels, norm))
            setattr(self, f"stage{s}", _make_stage(channels, modules, blocks, norm, multi_scale))
            prev = channels
        available = {f"hr{b + 2}": c for b, c in enumerate(prev if final_multi_scale else prev[:1])}
        self._set_outputs(out_features, available)
        self._init_weights()
        self.freeze(freeze_at)

    def _build_stem(self, in_channels: int, stage1_blocks: int, norm: str) -> None:
        self.conv1 = conv3x3(in_channels, STEM_CHANNELS, stride=2)
        self.bn1 = get_norm(norm, STEM_CHANNELS)
        self.conv2 = conv3x3(STEM_CHANNELS, STEM_CHANNELS, stride=2)
        self.bn2 = get_norm(norm, STEM_CHANNELS)
        blocks, c_in = [], STEM_CHANNELS
        for _ in range(stage1_blocks):
            blocks.append(Bottleneck(c_in, STEM_CHANNELS, norm))
            c_in = STEM_CHANNELS * BOTTLENECK_EXPANSION
        self.layer1 = nn.Sequential(*blocks)

    def _set_outputs(self, out_features: Sequence[str], available: Dict[str, int]) -> None:
        unknown = [f for f in out_features if f not in available]
        if not out_features or unknown:
            raise ValueError(
                f"HRNet out_features {list(out_features)}: {unknown or 'empty'} not available; "
                f"this HRNet provides {sorted(available)} (hr3..hr5 need final_multi_scale=True)"
            )
        self._out_features = list(out_features)
        self._out_feature_channels = {f: available[f] for f in out_features}
        self._out_feature_strides = {f: 2 ** int(f[2:]) for f in out_features}

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    @property
    def size_divisibility(self) -> int:
        return 32

    def freeze(self, freeze_at: int = 0) -> "HRNet":
        """Freeze the first ``freeze_at`` groups of ``FREEZE_GROUPS``.

        Their parameters get ``requires_grad = False`` and their BatchNorms (BN, SyncBN) become
        ``FrozenBatchNorm2d``; GroupNorm keeps its module type, its affine parameters are frozen.
        """
        if not 0 <= freeze_at <= len(FREEZE_GROUPS):
            raise ValueError(f"HRNet freeze_at must be in [0, {len(FREEZE_GROUPS)}], got {freeze_at}")
        for group in FREEZE_GROUPS[:freeze_at]:
            for name in group:
                module = getattr(self, name)
                for p in module.parameters():
                    p.requires_grad = False
                setattr(self, name, FrozenBatchNorm2d.convert_frozen_batchnorm(module))
        return self

    def forward(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        """(N, C, H, W) with H, W divisible by 32 -> {"hr<k>": (N, C_k, H / 2**k, W / 2**k)}."""
        assert x.dim() == 4, f"HRNet takes (N, C, H, W) input, got {tuple(x.shape)}"
        x = F.relu_(self.bn1(self.conv1(x)))
        x = F.relu_(self.bn2(self.conv2(x)))
        xs = [self.layer1(x)]
        for s in range(2, MAX_BRANCHES + 1):
            xs = _apply_transition(getattr(self, f"transition{s - 1}"), xs)
            xs = getattr(self, f"stage{s}")(xs)
        return self._select_outputs({f"hr{b + 2}": y for b, y in enumerate(xs)})

    def _select_outputs(self, outputs: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        """The requested outputs. In training, the others join the first one with weight 0.

        The last module fuses into every branch, requested or not; the zero-weighted term gives
        the fuse paths of the unrequested branches a (zero) gradient, since DistributedDataParallel
        needs a gradient for every trainable parameter in every step.
        """
        selected = {name: outputs[name] for name in self._out_features}
        unused = [y for name, y in outputs.items() if name not in selected]
        if unused and self.training and torch.is_grad_enabled():
            first = self._out_features[0]
            selected[first] = selected[first] + 0.0 * sum(y.sum() for y in unused)
        return selected


def _make_stage(
    channels: Sequence[int], num_modules: int, num_blocks: int, norm: str, multi_scale: bool
) -> nn.Sequential:
    """``num_modules`` HighResolutionModules; only the last one may drop the low-res outputs."""
    modules = [
        HighResolutionModule(channels, num_blocks, norm, multi_scale or m < num_modules - 1)
        for m in range(num_modules)
    ]
    return nn.Sequential(*modules)


def _apply_transition(transition: nn.ModuleList, xs: List[torch.Tensor]) -> List[torch.Tensor]:
    """Existing branches map one to one; new branches start from the last existing one."""
    return [layer(xs[b] if b < len(xs) else xs[-1]) for b, layer in enumerate(transition)]


def build_hrnet_from_cfg(cfg, input_shape: Optional[ShapeSpec] = None) -> HRNet:
    """An ``HRNet`` from the ``MODEL.HRNET`` keys (see ``inspose.config.hrnet.add_hrnet_config``)."""
    c = cfg.MODEL.HRNET
    in_channels = input_shape.channels if input_shape is not None else len(cfg.MODEL.PIXEL_MEAN)
    return HRNet(
        width=c.WIDTH,
        stage1_blocks=c.STAGE1_NUM_BLOCKS,
        num_modules=tuple(c.NUM_MODULES),
        num_blocks=tuple(c.NUM_BLOCKS),
        norm=c.NORM,
        freeze_at=c.FREEZE_AT,
        out_features=tuple(c.OUT_FEATURES),
        final_multi_scale=c.FINAL_STAGE_MULTI_SCALE,
        in_channels=in_channels,
    )


@BACKBONE_REGISTRY.register()
def build_inspose_hrnet_backbone(cfg, input_shape: ShapeSpec) -> HRNet:
    """detectron2 backbone builder: the HRNet trunk alone (``MODEL.BACKBONE.NAME``)."""
    return build_hrnet_from_cfg(cfg, input_shape)
