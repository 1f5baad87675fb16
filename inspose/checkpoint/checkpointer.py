"""``InsPoseCheckpointer``: detectron2's checkpointer plus torchvision ResNet and official HRNet files.

``MODEL.WEIGHTS`` may then be any of:

* a detectron2 checkpoint (``.pth`` written by detectron2 / InsPose, model-zoo ``.pkl``) or an MSRA /
  Caffe2 ImageNet ``.pkl`` such as ``R-50.pkl``: handled by ``DetectionCheckpointer`` as before;
* a torchvision ResNet ``.pth`` (``torchvision.models.resnet50`` weights): renamed to detectron2's
  ResNet names and matched onto ``backbone.bottom_up.*`` by detectron2's name heuristics;
* the official HRNet ImageNet ``.pth`` (``hrnetv2_w32_imagenet_pretrained.pth``): loaded by name into
  the model's ``HRNet`` (``backbone.bottom_up.*`` in InsPose).

The classification heads of both (torchvision ``fc.*``; HRNet ``incre_modules``,
``downsamp_modules``, ``final_layer``, ``classifier``) are dropped and logged as ignored; other
missing or unexpected keys are logged by name as detectron2 does.

Both were trained on RGB images normalised with torchvision's statistics, and torchvision's
Bottleneck puts the stride in the 3x3 conv. With such weights set::

    INPUT.FORMAT "RGB"
    MODEL.PIXEL_MEAN [123.675, 116.28, 103.53]
    MODEL.PIXEL_STD [58.395, 57.12, 57.375]
    MODEL.RESNETS.STRIDE_IN_1X1 False     # torchvision ResNet only

Given the config (``InsPoseCheckpointer(model, cfg=cfg)``), the checkpointer warns about every one
of these keys that differs when it loads such a file.

Saves are atomic on local folders (``inspose.io_utils.write_atomically``): a checkpoint and the
``last_checkpoint`` tag are written to a hidden ``.<name>.<pid>.partial`` file in the same folder,
flushed to disk (fsync) and renamed over the final name (``os.replace``). A process killed
mid-save (``kill -9``, out of memory, a full disk) therefore leaves the previous checkpoint, and the tag naming it, intact; the next save removes
the partial files it left.
"""
import functools
import os
from typing import Dict, List, Optional

import torch

from detectron2.checkpoint import DetectionCheckpointer

from ..io_utils import remove_partial_files, write_atomically
from .convert import (
    TORCHVISION_RESNET,
    convert_hrnet,
    convert_torchvision_resnet,
    detect_format,
    group_key_names,
    unwrap_state_dict,
)

__all__ = ["InsPoseCheckpointer", "TORCHVISION_INPUT_KEYS", "write_atomically"]

# Config values the torchvision-style checkpoints (torchvision ResNet, official HRNet) need.
TORCHVISION_INPUT_KEYS = {
    "INPUT.FORMAT": "RGB",
    "MODEL.PIXEL_MEAN": [123.675, 116.28, 103.53],
    "MODEL.PIXEL_STD": [58.395, 57.12, 57.375],
}
TORCHVISION_RESNET_KEYS = {"MODEL.RESNETS.STRIDE_IN_1X1": False}
LAST_CHECKPOINT_TAG = "last_checkpoint"


class InsPoseCheckpointer(DetectionCheckpointer):
    """``DetectionCheckpointer`` that also reads torchvision ResNet and official HRNet checkpoints.

    Args:
        model, save_dir, save_to_disk, checkpointables: as ``DetectionCheckpointer``.
        cfg: the model's config (optional); used to warn when the input convention of a
            torchvision / HRNet checkpoint differs from it.
    """

    def __init__(self, model, save_dir: str = "", *, cfg=None, save_to_disk=None, **checkpointables):
        super().__init__(model, save_dir, save_to_disk=save_to_disk, **checkpointables)
        self.cfg = cfg

    def save(self, name: str, **kwargs) -> None:
        """Write ``<save_dir>/<name>.pth`` atomically, then tag it as the last checkpoint.

        Args:
            name: the file name without ``.pth``.
            kwargs: extra data stored beside the model and the checkpointables.
        """
        if not self.save_dir or not self.save_to_disk:
            return
        if not _is_local(self.save_dir):
            super().save(name, **kwargs)  # remote storage: no rename to rely on
            return
        data = self._checkpoint_data(**kwargs)
        basename = f"{name}.pth"
        path = os.path.join(self.save_dir, basename)
        os.makedirs(self.save_dir, exist_ok=True)
        remove_partial_files(self.save_dir)
        self.logger.info(f"Saving checkpoint to {path}")
        write_atomically(path, lambda f: torch.save(data, f))
        self.tag_last_checkpoint(basename)

    def _checkpoint_data(self, **kwargs) -> Dict:
        """What a checkpoint holds: the model's, the checkpointables' state dicts and ``kwargs``."""
        data = {"model": self.model.state_dict()}
        data.update({key: obj.state_dict() for key, obj in self.checkpointables.items()})
        data.update(kwargs)
        return data

    def tag_last_checkpoint(self, last_filename_basename: str) -> None:
        """Point ``<save_dir>/last_checkpoint`` at ``last_filename_basename``, atomically."""
        if not _is_local(self.save_dir):
            super().tag_last_checkpoint(last_filename_basename)
            return
        tag = os.path.join(self.save_dir, LAST_CHECKPOINT_TAG)
        write_atomically(tag, lambda f: f.write(last_filename_basename.encode()))

    def _load_file(self, filename: str) -> Dict:
        loaded = super()._load_file(filename)
        if loaded.get("matching_heuristics") or "__author__" in loaded:
            return loaded  # MSRA / Caffe2 / pycls / detectron2 model zoo: detectron2 handles it
        weights = unwrap_state_dict(loaded["model"])
        fmt = detect_format(weights)
        if fmt is None:
            return loaded
        result = {k: v for k, v in loaded.items() if k != "model"}
        if fmt == TORCHVISION_RESNET:
            converted = convert_torchvision_resnet(weights)
            result.update(model=converted.state_dict, __author__="torchvision")
            result["matching_heuristics"] = True
        else:
            prefix = self._hrnet_prefix()
            converted = convert_hrnet(weights, prefix or "")
            result.update(model=converted.state_dict, __author__="HRNet")
            result["matching_heuristics"] = prefix is None
        self.logger.info(f"Read {filename}: {fmt} checkpoint, {len(converted.state_dict)} keys kept.")
        self._log_ignored(fmt, converted.ignored)
        self._check_input_convention(fmt)
        return result

    def _hrnet_prefix(self) -> Optional[str]:
        """Name prefix of the model's only ``HRNet`` ("" if the model is one); None if not one."""
        from ..modeling.backbone.hrnet import HRNet  # here: inspose.modeling may import this module

        names = [name for name, module in self.model.named_modules() if isinstance(module, HRNet)]
        if len(names) != 1:
            self.logger.warning(
                f"Model has {len(names)} HRNet modules; matching the HRNet checkpoint by name "
                "heuristics instead of loading it into one."
            )
            return None
        return names[0] + "." if names[0] else ""

    def _log_ignored(self, fmt: str, ignored: List[str]) -> None:
        if ignored:
            self.logger.warning(
                f"Ignored {len(ignored)} classification keys of the {fmt} checkpoint "
                f"(not used by InsPose):\n{group_key_names(ignored)}"
            )

    def _check_input_convention(self, fmt: str) -> None:
        needed = dict(TORCHVISION_INPUT_KEYS)
        if fmt == TORCHVISION_RESNET:
            needed.update(TORCHVISION_RESNET_KEYS)
        settings = " ".join(f"{k} {_format_value(v)}" for k, v in needed.items())
        if self.cfg is None:
            self.logger.info(f"{fmt} weights expect (config not given, not checked): {settings}")
            return
        wrong = [
            f"{key} {_format_value(value)} (config has {_format_value(_cfg_value(self.cfg, key))})"
            for key, value in needed.items()
            if not _same_value(_cfg_value(self.cfg, key), value)
        ]
        if wrong:
            self.logger.warning(
                f"The {fmt} weights were trained on RGB images with torchvision's normalisation"
                + (" and the stride in the 3x3 conv" if fmt == TORCHVISION_RESNET else "")
                + "; the config differs. Set:\n  "
                + "\n  ".join(wrong)
                + f"\n(command line: {settings})"
            )


def _is_local(folder: str) -> bool:
    return "://" not in folder


def _cfg_value(cfg, dotted_key: str):
    try:
        return functools.reduce(getattr, dotted_key.split("."), cfg)
    except AttributeError:
        return None


def _same_value(actual, expected) -> bool:
    if isinstance(expected, list):
        return (
            actual is not None
            and len(actual) == len(expected)
            and all(abs(float(a) - e) < 1e-3 for a, e in zip(actual, expected))
        )
    return actual == expected


def _format_value(value) -> str:
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(str(v) for v in value) + "]"  # one shell word
    return str(value)
