"""``Trainer``: detectron2's ``DefaultTrainer`` with InsPose's data, evaluation and checkpoints.

What differs from ``DefaultTrainer``:
- data: ``InsPoseDatasetMapper`` for training and testing; the datasets' keypoint count is checked
  against ``MODEL.INSPOSE.NUM_KEYPOINTS`` before anything is built;
- evaluation: ``KeypointEvaluator`` (OKS sigmas from metadata, AP and AR), and with periodic
  evaluation a ``model_best.pth`` kept by ``TEST.BEST_CHECKPOINT_METRIC``;
- checkpoints: ``InsPoseCheckpointer`` (torchvision / HRNet ImageNet weights, atomic saves);
- the model is wrapped for data parallelism with ``device_ids=None`` on the CPU (gloo), which
  detectron2 v0.6's ``DefaultTrainer.__init__`` cannot do, and AMP is used on CUDA only.
"""
import logging
import os
import weakref

import torch
from detectron2.data import build_detection_test_loader, build_detection_train_loader
from detectron2.engine import AMPTrainer, DefaultTrainer, SimpleTrainer, TrainerBase, hooks
from detectron2.engine.defaults import create_ddp_model
from detectron2.utils import comm
from detectron2.utils.logger import setup_logger

from ..checkpoint import InsPoseCheckpointer
from ..data import InsPoseDatasetMapper
from ..data.checks import check_datasets_match_config
from ..evaluation import KeypointEvaluator
from .optimizer import build_optimizer

__all__ = ["Trainer", "wrap_data_parallel"]

logger = logging.getLogger(__name__)


def wrap_data_parallel(model: torch.nn.Module) -> torch.nn.Module:
    """DistributedDataParallel over every process (device_ids=None on the CPU); identity for one."""
    if comm.get_world_size() == 1:
        return model
    if next(model.parameters()).device.type == "cpu":
        return create_ddp_model(model, broadcast_buffers=False, device_ids=None)
    return create_ddp_model(model, broadcast_buffers=False)


class Trainer(DefaultTrainer):
    """Trains and evaluates InsPose; used by ``tools/train_net.py`` as DefaultTrainer is."""

    def __init__(self, cfg):
        TrainerBase.__init__(self)
        if not logging.getLogger("detectron2").isEnabledFor(logging.INFO):
            setup_logger()
        check_datasets_match_config(cfg)
        cfg = DefaultTrainer.auto_scale_workers(cfg, comm.get_world_size())
        model = self.build_model(cfg)
        optimizer = self.build_optimizer(cfg, model)
        data_loader = self.build_train_loader(cfg)
        model = wrap_data_parallel(model)
        use_amp = cfg.SOLVER.AMP.ENABLED and cfg.MODEL.DEVICE.startswith("cuda")
        if cfg.SOLVER.AMP.ENABLED and not use_amp:
            logger.warning("SOLVER.AMP.ENABLED is ignored on %s: AMP runs on CUDA only", cfg.MODEL.DEVICE)
        self._trainer = (AMPTrainer if use_amp else SimpleTrainer)(model, data_loader, optimizer)
        self.scheduler = self.build_lr_scheduler(cfg, optimizer)
        self.checkpointer = InsPoseCheckpointer(model, cfg.OUTPUT_DIR, cfg=cfg, trainer=weakref.proxy(self))
        self.start_iter = 0
        self.max_iter = cfg.SOLVER.MAX_ITER
        self.cfg = cfg
        self.register_hooks(self.build_hooks())

    @classmethod
    def build_optimizer(cls, cfg, model):
        return build_optimizer(cfg, model)

    @classmethod
    def build_train_loader(cls, cfg):
        return build_detection_train_loader(cfg, mapper=InsPoseDatasetMapper(cfg, is_train=True))

    @classmethod
    def build_test_loader(cls, cfg, dataset_name):
        mapper = InsPoseDatasetMapper(cfg, is_train=False, dataset_names=[dataset_name])
        return build_detection_test_loader(cfg, dataset_name, mapper=mapper)

    @classmethod
    def build_evaluator(cls, cfg, dataset_name, output_folder=None):
        folder = output_folder or os.path.join(cfg.OUTPUT_DIR, "inference", dataset_name)
        return KeypointEvaluator(dataset_name, output_dir=folder)

    def build_hooks(self):
        hook_list = super().build_hooks()
        if self.cfg.TEST.EVAL_PERIOD > 0 and comm.is_main_process():
            best = hooks.BestCheckpointer(
                self.cfg.TEST.EVAL_PERIOD, self.checkpointer, self.cfg.TEST.BEST_CHECKPOINT_METRIC
            )
            writer_at = next(
                (i for i, h in enumerate(hook_list) if isinstance(h, hooks.PeriodicWriter)),
                len(hook_list),
            )
            hook_list.insert(writer_at, best)
        return hook_list
