"""``Trainer``: detectron2's ``DefaultTrainer`` with InsPose's data, evaluation and checkpoints.

What differs from ``DefaultTrainer``:
- data: ``InsPoseDatasetMapper`` for training and testing; the datasets' keypoint count is checked
  against ``MODEL.INSPOSE.NUM_KEYPOINTS`` before anything is built;
- evaluation: ``KeypointEvaluator`` (OKS sigmas from metadata, AP and AR), and with periodic
  evaluation a ``model_best.pth`` kept by ``TEST.BEST_CHECKPOINT_METRIC``; ``TEST.EXAMPLE_PICTURES``
  pictures of the predictions under OUTPUT_DIR/inference/<dataset>/examples/ and in TensorBoard;
- checkpoints: ``InsPoseCheckpointer`` (torchvision / HRNet ImageNet weights, atomic saves);
- logging: the model printout goes to OUTPUT_DIR/log.txt only (not the console), and progress lines
  come every LOG.PERIOD iterations or LOG.PERIOD_SECONDS seconds (``TimedPeriodicWriter``);
- the model is wrapped for data parallelism with ``device_ids=None`` on the CPU (gloo), which
  detectron2 v0.6's ``DefaultTrainer.__init__`` cannot do, and AMP is used on CUDA only.
"""
import logging
import os
import weakref
from collections import OrderedDict

import torch
from detectron2.data import (
    DatasetFromList,
    build_detection_test_loader,
    build_detection_train_loader,
    get_detection_dataset_dicts,
)
from detectron2.data.samplers import TrainingSampler
from detectron2.engine import AMPTrainer, DefaultTrainer, SimpleTrainer, TrainerBase, hooks
from detectron2.engine.defaults import create_ddp_model
from detectron2.modeling import build_model
from detectron2.utils import comm
from detectron2.utils.logger import setup_logger

from ..checkpoint import InsPoseCheckpointer
from ..data import InsPoseDatasetMapper
from ..data.skipping_dataset import SkippingMapDataset
from ..data.checks import check_datasets_match_config
from ..evaluation import KeypointEvaluator
from ..modeling.tta import InsPoseWithTTA
from .example_pictures import draw_examples, publish_examples
from .file_log import log_to_files_only
from .hooks import LossGuard
from .optimizer import build_optimizer
from .timed_writer import TimedPeriodicWriter

__all__ = ["Trainer", "wrap_data_parallel", "check_sync_batchnorm"]

logger = logging.getLogger(__name__)


def check_sync_batchnorm(model: torch.nn.Module) -> None:
    """Raise when ``model`` has ``nn.SyncBatchNorm`` on the CPU in a multi-process run.

    torch synchronises SyncBatchNorm on GPUs only (it raises on CPU tensors in training), so a
    config with "SyncBN" cannot train with several CPU processes; this fails before training.
    """
    if comm.get_world_size() == 1 or next(model.parameters()).device.type != "cpu":
        return
    names = [n for n, m in model.named_modules() if isinstance(m, torch.nn.SyncBatchNorm)]
    if names:
        raise ValueError(
            f"{len(names)} SyncBatchNorm layers ({names[0]}, ...) cannot train with several "
            "CPU processes: torch synchronises them on GPUs only. Set the norms (MODEL.RESNETS.NORM, "
            'MODEL.FPN.NORM, MODEL.INSPOSE.NORM, MODEL.HRNET.NORM) to "naiveSyncBN" (detectron2\'s '
            'all-reduce BatchNorm, works on gloo), "GN" (batch-independent) or "BN" (per-process '
            "statistics)."
        )


def wrap_data_parallel(model: torch.nn.Module) -> torch.nn.Module:
    """DistributedDataParallel over every process (device_ids=None on the CPU); identity for one."""
    if comm.get_world_size() == 1:
        return model
    check_sync_batchnorm(model)
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
    def build_model(cls, cfg):
        """detectron2's ``build_model``; the printout goes to the log files, not the console."""
        model = build_model(cfg)
        log_to_files_only(logging.getLogger("detectron2.engine.defaults"), "Model:\n%s", model)
        return model

    @classmethod
    def build_optimizer(cls, cfg, model):
        return build_optimizer(cfg, model)

    @classmethod
    def build_train_loader(cls, cfg):
        """detectron2's train loader over a ``SkippingMapDataset`` (unreadable images skipped)."""
        records = get_detection_dataset_dicts(
            cfg.DATASETS.TRAIN,
            filter_empty=cfg.DATALOADER.FILTER_EMPTY_ANNOTATIONS,
            min_keypoints=cfg.MODEL.ROI_KEYPOINT_HEAD.MIN_KEYPOINTS_PER_IMAGE if cfg.MODEL.KEYPOINT_ON else 0,
        )
        dataset = SkippingMapDataset(DatasetFromList(records, copy=False), InsPoseDatasetMapper(cfg, is_train=True))
        return build_detection_train_loader(
            dataset,
            mapper=None,
            sampler=TrainingSampler(len(dataset)),
            total_batch_size=cfg.SOLVER.IMS_PER_BATCH,
            aspect_ratio_grouping=cfg.DATALOADER.ASPECT_RATIO_GROUPING,
            num_workers=cfg.DATALOADER.NUM_WORKERS,
        )

    @classmethod
    def build_test_loader(cls, cfg, dataset_name):
        check_datasets_match_config(cfg, [dataset_name])  # evaluation-only runs check here
        mapper = InsPoseDatasetMapper(cfg, is_train=False, dataset_names=[dataset_name])
        return build_detection_test_loader(cfg, dataset_name, mapper=mapper)

    @classmethod
    def build_evaluator(cls, cfg, dataset_name, output_folder=None):
        folder = output_folder or os.path.join(cfg.OUTPUT_DIR, "inference", dataset_name)
        return KeypointEvaluator(dataset_name, output_dir=folder)

    @classmethod
    def test(cls, cfg, model, evaluators=None):
        """``DefaultTrainer.test``, then ``TEST.EXAMPLE_PICTURES`` pictures of the predictions on
        each dataset (main process)."""
        results = super().test(cfg, model, evaluators)
        count = cfg.TEST.EXAMPLE_PICTURES
        if count > 0 and comm.is_main_process():
            for name in cfg.DATASETS.TEST:
                folder = os.path.join(cfg.OUTPUT_DIR, "inference", name, "examples")
                paths = draw_examples(model, cls.build_test_loader(cfg, name), name, count, folder)
                if paths:
                    publish_examples(paths, name, cfg.OUTPUT_DIR)
                    logger.info("%d pictures of the predictions on %s in %s", len(paths), name, folder)
        return results

    @classmethod
    def test_with_TTA(cls, cfg, model):
        """Evaluate ``InsPoseWithTTA(cfg, model)`` (TEST.AUG.*) on every dataset of DATASETS.TEST.

        Each dataset gets its own flip indices and evaluator, writing under
        OUTPUT_DIR/inference_TTA/<dataset>. Returns ``test``'s results with "_TTA" appended to its
        keys ({"keypoints_TTA": {...}} for one dataset, {"<dataset>_TTA": {...}} for several).
        """
        logger.info("Evaluating with test-time augmentation: %s", cfg.TEST.AUG)
        results = OrderedDict()
        for name in cfg.DATASETS.TEST:
            single = cfg.clone()
            single.defrost()
            single.DATASETS.TEST = (name,)
            folder = os.path.join(cfg.OUTPUT_DIR, "inference_TTA", name)
            evaluator = cls.build_evaluator(single, name, output_folder=folder)
            results[name] = cls.test(single, InsPoseWithTTA(single, model, name), [evaluator])
        if len(results) == 1:
            results = next(iter(results.values()))
        return OrderedDict((f"{key}_TTA", value) for key, value in results.items())

    def build_hooks(self):
        hook_list = [LossGuard(self.checkpointer)] + [self._timed(h) for h in super().build_hooks()]
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

    def _timed(self, hook):
        """``hook``, or a ``TimedPeriodicWriter`` with LOG.* for detectron2's ``PeriodicWriter``."""
        if type(hook) is not hooks.PeriodicWriter:
            return hook
        return TimedPeriodicWriter(hook._writers, self.cfg.LOG.PERIOD, self.cfg.LOG.PERIOD_SECONDS)
