"""Building the config of a run from the command line, as detectron2's tools do."""
import logging

import torch
from detectron2.engine import default_setup

from ..config import load_config

__all__ = ["setup_cfg", "resolve_device"]

logger = logging.getLogger(__name__)


def resolve_device(cfg) -> None:
    """Fall back to the CPU when the config asks for CUDA on a machine without it (logged)."""
    if cfg.MODEL.DEVICE.startswith("cuda") and not torch.cuda.is_available():
        logger.warning("MODEL.DEVICE %s is not available here: running on the CPU", cfg.MODEL.DEVICE)
        cfg.MODEL.DEVICE = "cpu"


def setup_cfg(args, *, default_setup_fn=default_setup):
    """Config from ``--config-file`` and trailing ``KEY VALUE`` overrides, frozen.

    Runs detectron2's ``default_setup`` (logging, output folder, config dump, seeds).
    """
    cfg = load_config(args.config_file, args.opts)
    resolve_device(cfg)
    cfg.freeze()
    if default_setup_fn is not None:
        default_setup_fn(cfg, args)
    return cfg
