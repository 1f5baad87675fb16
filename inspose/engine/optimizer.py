"""The optimizer of a run: detectron2's, plus gradient clipping by the norm of the whole model.

detectron2 v0.6 clips each parameter tensor on its own ("value" / "norm"); both public
implementations of InsPose's idea clip the global gradient norm, which is
``SOLVER.CLIP_GRADIENTS.CLIP_TYPE "full_model"`` here. The other types go to detectron2 unchanged.
"""
import itertools

import torch
from detectron2.solver import build_optimizer as detectron2_build_optimizer

__all__ = ["build_optimizer", "FULL_MODEL"]

FULL_MODEL = "full_model"


def _with_global_norm_clipping(optimizer: torch.optim.Optimizer, max_norm: float, norm_type: float):
    base = type(optimizer)

    def step(self, closure=None):
        params = itertools.chain.from_iterable(group["params"] for group in self.param_groups)
        torch.nn.utils.clip_grad_norm_(params, max_norm, norm_type)
        return base.step(self, closure)

    optimizer.__class__ = type(base.__name__ + "WithFullModelClipping", (base,), {"step": step})
    return optimizer


def build_optimizer(cfg, model: torch.nn.Module) -> torch.optim.Optimizer:
    """detectron2's SGD (or AdamW) from ``cfg.SOLVER``, with "full_model" clipping when asked."""
    clip = cfg.SOLVER.CLIP_GRADIENTS
    if not (clip.ENABLED and clip.CLIP_TYPE == FULL_MODEL):
        return detectron2_build_optimizer(cfg, model)
    cfg = cfg.clone()
    cfg.defrost()
    cfg.SOLVER.CLIP_GRADIENTS.ENABLED = False
    optimizer = detectron2_build_optimizer(cfg, model)
    return _with_global_norm_clipping(optimizer, clip.CLIP_VALUE, clip.NORM_TYPE)
