"""The optimizer of a run: detectron2's SGD (or AdamW), plus clipping by the whole model's norm.

detectron2 v0.6 clips each parameter tensor on its own ("value" / "norm"); both public
implementations of InsPose's idea clip the global gradient norm, which is
``SOLVER.CLIP_GRADIENTS.CLIP_TYPE "full_model"`` here. The other types go to detectron2 unchanged.
``SOLVER.OPTIMIZER "AdamW"`` (InsPose's key; detectron2 v0.6 only builds SGD) takes detectron2's
parameter groups with AdamW: the paper's recipes use SGD, the from-scratch CPU demo AdamW.
"""
import itertools

import torch
from detectron2.solver import build_optimizer as detectron2_build_optimizer
from detectron2.solver.build import get_default_optimizer_params, maybe_add_gradient_clipping

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


def _adamw(cfg, model: torch.nn.Module) -> torch.optim.Optimizer:
    params = get_default_optimizer_params(
        model,
        base_lr=cfg.SOLVER.BASE_LR,
        weight_decay_norm=cfg.SOLVER.WEIGHT_DECAY_NORM,
        bias_lr_factor=cfg.SOLVER.BIAS_LR_FACTOR,
        weight_decay_bias=cfg.SOLVER.WEIGHT_DECAY_BIAS,
    )
    optimizer = torch.optim.AdamW(params, lr=cfg.SOLVER.BASE_LR, weight_decay=cfg.SOLVER.WEIGHT_DECAY)
    return maybe_add_gradient_clipping(cfg, optimizer)


def build_optimizer(cfg, model: torch.nn.Module) -> torch.optim.Optimizer:
    """SGD or AdamW from ``cfg.SOLVER``, with "full_model" clipping when asked."""
    clip = cfg.SOLVER.CLIP_GRADIENTS
    full_model = clip.ENABLED and clip.CLIP_TYPE == FULL_MODEL
    if full_model:
        cfg = cfg.clone()
        cfg.defrost()
        cfg.SOLVER.CLIP_GRADIENTS.ENABLED = False
    builders = {"SGD": detectron2_build_optimizer, "AdamW": _adamw}
    # a plain detectron2 config (the benchmark's Keypoint R-CNN) has no SOLVER.OPTIMIZER: SGD
    optimizer = builders[cfg.SOLVER.get("OPTIMIZER", "SGD")](cfg, model)
    if full_model:
        optimizer = _with_global_norm_clipping(optimizer, clip.CLIP_VALUE, clip.NORM_TYPE)
    return optimizer
