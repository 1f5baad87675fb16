"""``LossGuard``: training stops at the first NaN or infinite loss term, before it can do harm.

detectron2 v0.6's ``SimpleTrainer`` raises ``FloatingPointError`` for a non-finite *total* loss,
but only on the main process, after the backward pass, and naming the loss dict without saying
which term broke. ``LossGuard`` checks every term right after the model's forward pass (a forward
hook), on every process, so that:

- the error names the non-finite term(s), the iteration and the last checkpoint to resume from;
- no backward pass and no optimizer step run with the bad loss: the weights in memory are those
  after the previous iteration, and no checkpoint is written from a corrupted model;
- with several processes, all of them stop at the same iteration (the per-term flags are
  reduced over processes), instead of the others waiting forever in the next collective.
"""
from typing import Dict, List, Mapping, Optional

import torch
import torch.distributed as dist
from detectron2.engine import HookBase
from detectron2.utils import comm

__all__ = ["LossGuard", "NonFiniteLossError", "non_finite_terms"]


class NonFiniteLossError(FloatingPointError):
    """A loss term that became NaN or infinite (raised before the optimizer step)."""


def _flags_on_any_process(flags: torch.Tensor) -> torch.Tensor:
    """(T,) int flags, set where any process set them (identity with one process)."""
    if comm.get_world_size() > 1 and dist.is_available() and dist.is_initialized():
        dist.all_reduce(flags, op=dist.ReduceOp.MAX)
    return flags


def non_finite_terms(loss_dict: Mapping[str, torch.Tensor]) -> List[str]:
    """Names of the terms of ``loss_dict`` (name -> scalar tensor) that are NaN or infinite.

    With several processes this is a collective: a term is named when it is non-finite on any
    process, so every process gets the same answer.
    """
    names = sorted(loss_dict)
    if not names:
        return []
    finite = torch.stack([torch.isfinite(loss_dict[n].detach()).all() for n in names])
    flags = _flags_on_any_process((~finite).to(torch.int32))
    return [name for name, flag in zip(names, flags.tolist()) if flag]


def _format_terms(loss_dict: Mapping[str, torch.Tensor]) -> str:
    values = {name: loss_dict[name].detach().float().mean().item() for name in sorted(loss_dict)}
    return ", ".join(f"{name}={value:.4g}" for name, value in values.items())


class LossGuard(HookBase):
    """Raises ``NonFiniteLossError`` at the first NaN / infinite loss term (see the module doc).

    Args:
        checkpointer: the trainer's checkpointer, to name the last checkpoint in the message.
    """

    def __init__(self, checkpointer=None):
        self.checkpointer = checkpointer
        self._handle = None

    def before_train(self):
        self._handle = self.trainer.model.register_forward_hook(self._check_output)

    def after_train(self):
        if self._handle is not None:
            self._handle.remove()
            self._handle = None

    def _check_output(self, module: torch.nn.Module, inputs, output) -> None:
        if not module.training or not isinstance(output, Mapping):
            return  # inference (e.g. periodic evaluation) returns predictions
        bad = non_finite_terms(output)
        if bad:  # detectron2's train loop logs the error with its traceback
            raise NonFiniteLossError(self._message(bad, output))

    def _message(self, bad: List[str], loss_dict: Dict[str, torch.Tensor]) -> str:
        where = ", ".join(bad)
        return (
            f"Loss term{'s' if len(bad) > 1 else ''} {where} became NaN or infinite at iteration "
            f"{self.trainer.iter} (this process: {_format_terms(loss_dict)}). Training stopped "
            "before this iteration's backward pass and optimizer step, so no weights were "
            f"updated from it. {self._resume_hint()}"
        )

    def _resume_hint(self) -> str:
        last = self._last_checkpoint()
        if last is None:
            return "No checkpoint has been written yet."
        return f"Last checkpoint: {last} (continue from it with --resume)."

    def _last_checkpoint(self) -> Optional[str]:
        if self.checkpointer is None or not self.checkpointer.has_checkpoint():
            return None
        return self.checkpointer.get_checkpoint_file() or None
