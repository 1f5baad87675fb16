"""Recognise and rename third-party ImageNet checkpoints (pure functions on state dicts).

Two formats besides detectron2's own:

* torchvision ResNet (``resnet50-*.pth``: ``conv1.weight``, ``bn1.*``, ``layer1.0.conv1.weight``,
  ``layer1.0.downsample.{0,1}.*``, ``fc.*``) -> detectron2 ResNet names (``stem.conv1.weight``,
  ``stem.conv1.norm.*``, ``res2.0.conv1.weight``, ``res2.0.conv1.norm.*``, ``res2.0.shortcut.*``,
  ``res2.0.shortcut.norm.*``); ``fc.*`` is the classifier and is dropped.
* official HRNet (``hrnetv2_w32_imagenet_pretrained.pth``; also the pose HRNet checkpoints):
  ``conv1``, ``bn1``, ``conv2``, ``bn2``, ``layer1``, ``transition1..3``, ``stage2..4`` already
  match ``inspose.modeling.backbone.hrnet.HRNet``; the classification parts (``incre_modules``,
  ``downsamp_modules``, ``final_layer``, ``classifier``) are dropped.

``num_batches_tracked`` counters are dropped in both (BatchNorm restores them, FrozenBN has none).
"""
import re
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional

__all__ = [
    "TORCHVISION_RESNET",
    "HRNET",
    "HRNET_CLASSIFICATION_PREFIXES",
    "ConvertedWeights",
    "unwrap_state_dict",
    "detect_format",
    "convert_torchvision_resnet",
    "convert_hrnet",
    "group_key_names",
]

TORCHVISION_RESNET = "torchvision ResNet"
HRNET = "official HRNet"
TORCHVISION_CLASSIFICATION_PREFIXES = ("fc.",)
HRNET_CLASSIFICATION_PREFIXES = ("incre_modules.", "downsamp_modules.", "final_layer.", "classifier.")


@dataclass
class ConvertedWeights:
    """A renamed state dict and the checkpoint keys deliberately left out of it.

    Attributes:
        state_dict: new name -> tensor.
        ignored: original names of the dropped classification-head keys.
    """

    state_dict: Dict[str, object]
    ignored: List[str] = field(default_factory=list)


def unwrap_state_dict(obj: Mapping) -> Dict[str, object]:
    """The name -> tensor mapping of a checkpoint, without ``state_dict`` nesting or ``module.``."""
    if "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        obj = obj["state_dict"]
    if obj and all(k.startswith("module.") for k in obj):
        obj = {k[len("module."):]: v for k, v in obj.items()}
    return dict(obj)


def _has_prefix(keys, prefix: str) -> bool:
    return any(k.startswith(prefix) for k in keys)


def detect_format(state_dict: Mapping) -> Optional[str]:
    """``HRNET``, ``TORCHVISION_RESNET`` or None (anything else, detectron2 names included)."""
    keys = list(state_dict.keys())
    if _has_prefix(keys, "transition1.") and _has_prefix(keys, "stage2."):
        return HRNET
    if "conv1.weight" in state_dict and "bn1.weight" in state_dict and _has_prefix(keys, "layer1.0."):
        return TORCHVISION_RESNET
    return None


def _torchvision_name(key: str) -> str:
    """One torchvision ResNet key -> its detectron2 ResNet name (unknown keys unchanged)."""
    if key.startswith("conv1."):
        return "stem." + key
    if key.startswith("bn1."):
        return "stem.conv1.norm." + key[len("bn1."):]
    match = re.match(r"layer(\d+)\.(.+)$", key)
    if match is None:
        return key
    rest = re.sub(r"\.bn(\d+)\.", r".conv\1.norm.", "." + match.group(2))[1:]
    rest = rest.replace(".downsample.0.", ".shortcut.").replace(".downsample.1.", ".shortcut.norm.")
    return f"res{int(match.group(1)) + 1}.{rest}"


def convert_torchvision_resnet(state_dict: Mapping) -> ConvertedWeights:
    """torchvision ResNet names -> detectron2 ResNet names (``fc.*`` ignored)."""
    converted, ignored = {}, []
    for key, value in state_dict.items():
        if key.endswith("num_batches_tracked"):
            continue
        if key.startswith(TORCHVISION_CLASSIFICATION_PREFIXES):
            ignored.append(key)
            continue
        converted[_torchvision_name(key)] = value
    return ConvertedWeights(converted, sorted(ignored))


def convert_hrnet(state_dict: Mapping, prefix: str = "") -> ConvertedWeights:
    """Official HRNet names (kept) with ``prefix`` prepended; classification keys ignored."""
    converted, ignored = {}, []
    for key, value in state_dict.items():
        if key.endswith("num_batches_tracked"):
            continue
        if key.startswith(HRNET_CLASSIFICATION_PREFIXES):
            ignored.append(key)
            continue
        converted[prefix + key] = value
    return ConvertedWeights(converted, sorted(ignored))


def group_key_names(keys: List[str], limit: Optional[int] = None) -> str:
    """One line per module: ``fc.{bias, weight}``; with ``limit``, at most that many lines."""
    groups: Dict[str, List[str]] = {}
    for key in sorted(keys):
        head, _, tail = key.rpartition(".")
        groups.setdefault(head, []).append(tail)
    lines = []
    for head, tails in groups.items():
        names = tails[0] if len(tails) == 1 else "{" + ", ".join(tails) + "}"
        lines.append(f"{head}.{names}" if head else names)
    if limit is not None and len(lines) > limit:
        lines = lines[:limit] + [f"... and {len(lines) - limit} more modules"]
    return "\n".join("  " + line for line in lines)
