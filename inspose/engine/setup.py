"""What every tool does first: load the run's config, set up logging, build the model with weights.

``setup_cfg(args)`` is "load the config" for a tool's ``--config-file`` and trailing overrides;
``build_model_with_weights(cfg)`` is "build the model and load ``MODEL.WEIGHTS``" for evaluation,
prediction and the demo.
"""
import logging
from typing import Sequence

import torch
from detectron2.engine import default_setup
from detectron2.utils import comm
from detectron2.utils.logger import setup_logger

from ..checkpoint import InsPoseCheckpointer
from ..config import load_config
from .dataset_names import check_datasets_registered
from .trainer import Trainer

__all__ = ["build_model_with_weights", "resolve_device", "setup_cfg", "setup_loggers"]

logger = logging.getLogger(__name__)
LOGGERS = ("detectron2", "fvcore", "inspose")


def resolve_device(cfg) -> None:
    """Fall back to the CPU when the config asks for CUDA on a machine without it (logged)."""
    if cfg.MODEL.DEVICE.startswith("cuda") and not torch.cuda.is_available():
        logger.warning("MODEL.DEVICE %s is not available here: running on the CPU", cfg.MODEL.DEVICE)
        cfg.MODEL.DEVICE = "cpu"


def setup_cfg(args, *, extra_opts: Sequence[str] = (), default_setup_fn=default_setup):
    """The frozen config of ``args.config_file`` with ``extra_opts``, then ``args.opts``, merged.

    CUDA falls back to the CPU where there is none. ``default_setup_fn(cfg, args)`` follows
    (detectron2's ``default_setup``: logging, output folder, config dump, seeds); None skips it.

    Raises:
        ConfigError: the config cannot be loaded, or ``UnknownDatasetError`` (a ``ConfigError``):
            a name of DATASETS.TRAIN / TEST is not registered (checked after ``load_config``, which
            registers the config's dataset descriptions), before any model is built.
    """
    cfg = load_config(args.config_file, [*extra_opts, *(args.opts or [])])
    check_datasets_registered(cfg)
    resolve_device(cfg)
    cfg.freeze()
    if default_setup_fn is not None:
        default_setup_fn(cfg, args)
    return cfg


def setup_loggers(output_dir=None, names: Sequence[str] = LOGGERS) -> None:
    """detectron2's log format for ``names`` on this process (and into ``output_dir``/log.txt)."""
    for name in names:
        setup_logger(output_dir, distributed_rank=comm.get_rank(), name=name)


def build_model_with_weights(cfg, *, resume: bool = False, save_dir: str = "") -> torch.nn.Module:
    """``Trainer.build_model(cfg)`` with ``cfg.MODEL.WEIGHTS`` loaded by ``InsPoseCheckpointer``.

    Args:
        resume: load ``save_dir``'s last checkpoint instead when there is one (``--resume``).
        save_dir: the checkpoint folder ``resume`` looks in (``cfg.OUTPUT_DIR`` for train_net).
    """
    model = Trainer.build_model(cfg)
    InsPoseCheckpointer(model, save_dir=save_dir, cfg=cfg).resume_or_load(cfg.MODEL.WEIGHTS, resume=resume)
    return model
