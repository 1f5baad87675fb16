"""Training and evaluation engine: the trainer, set-up helpers and the process launcher."""
from .setup import build_model_with_weights, setup_cfg, setup_loggers
from .trainer import Trainer

__all__ = ["Trainer", "build_model_with_weights", "setup_cfg", "setup_loggers"]
