"""Training and evaluation engine: the trainer, set-up helpers and the process launcher."""
from .setup import setup_cfg
from .trainer import Trainer

__all__ = ["Trainer", "setup_cfg"]
