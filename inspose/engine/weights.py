"""Refusing to evaluate or draw with untrained weights (an empty ``MODEL.WEIGHTS``, or a file with
none of InsPose's head parameters, such as ImageNet weights) unless asked to.

``check_trained_weights`` is shared by ``tools/train_net.py --eval-only``, ``tools/demo.py`` and
``tools/make_submission.py``.
"""
import os
import pickle
from typing import Iterable, Optional

import torch

__all__ = ["HEAD_PREFIXES", "UntrainedWeightsError", "check_trained_weights", "has_head_parameters"]

# Top-level modules of InsPose's heads (meta_arch.InsPose): trained weights have at least one.
HEAD_PREFIXES = ("head.", "keypoint_branch.", "offset_branch.", "heatmap_branch.")
_WRAPPERS = ("module.", "model.")
FIX = (
    "pass trained InsPose weights (MODEL.WEIGHTS output/<run>/model_final.pth, written by "
    "tools/train_net.py or make demo)"
)


class UntrainedWeightsError(ValueError):
    """``MODEL.WEIGHTS`` is empty, missing, or holds no InsPose head parameters."""


def _strip(name: str) -> str:
    for wrapper in _WRAPPERS:
        if name.startswith(wrapper):
            return name[len(wrapper):]
    return name


def has_head_parameters(names: Iterable[str]) -> bool:
    """Whether any parameter name (optionally under ``module.`` / ``model.``) is a head's."""
    return any(_strip(n).startswith(HEAD_PREFIXES) for n in names)


def checkpoint_names(path: str) -> Optional[list]:
    """The parameter names of a local checkpoint (.pth / .pkl), or None when it cannot be read."""
    try:
        if path.endswith(".pkl"):
            with open(path, "rb") as f:
                data = pickle.load(f, encoding="latin1")
        else:
            data = torch.load(path, map_location="cpu", weights_only=False)
    except Exception:  # noqa: BLE001  (the checkpointer reports unreadable files itself)
        return None
    if isinstance(data, dict):
        data = data.get("model", data.get("blobs", data))
    return list(data) if isinstance(data, dict) else None


def check_trained_weights(weights: str, *, flag: Optional[str] = "--allow-untrained") -> None:
    """Raise ``UntrainedWeightsError`` naming the fix (and ``flag``, the tool's way to skip this
    check; None: the tool has none)."""
    unless = f"; or pass {flag} to run with untrained weights anyway" if flag else ""
    if not weights:
        raise UntrainedWeightsError(f"MODEL.WEIGHTS is empty: {FIX}{unless}")
    if "ImageNetPretrained" in weights:
        raise UntrainedWeightsError(f"MODEL.WEIGHTS {weights} are ImageNet weights: {FIX}{unless}")
    if "://" in weights:
        return  # a URL: the checkpointer downloads and reports it
    if not os.path.isfile(weights):
        raise UntrainedWeightsError(f"MODEL.WEIGHTS {weights} does not exist: {FIX}")
    names = checkpoint_names(weights)
    if names is not None and not has_head_parameters(names):
        raise UntrainedWeightsError(
            f"MODEL.WEIGHTS {weights} has none of InsPose's head parameters "
            f"({', '.join(p.rstrip('.') for p in HEAD_PREFIXES)}; ImageNet weights?): {FIX}{unless}"
        )
