"""One run of ``tools/train_net.py``: train (continuing with ``resume``), or evaluate weights.

``--eval-only`` evaluates ``MODEL.WEIGHTS`` (or, with ``--resume``, OUTPUT_DIR's last checkpoint)
on DATASETS.TEST, and with ``TEST.AUG.ENABLED`` also with test-time augmentation.
"""
from detectron2.evaluation import verify_results
from detectron2.utils import comm

from .setup import build_model_with_weights
from .trainer import Trainer

__all__ = ["evaluate", "train", "train_or_evaluate"]


def evaluate(cfg, *, resume: bool = False) -> dict:
    """``Trainer.test`` results of the weights (plus the ``*_TTA`` results with TEST.AUG)."""
    model = build_model_with_weights(cfg, resume=resume, save_dir=cfg.OUTPUT_DIR)
    results = Trainer.test(cfg, model)
    if cfg.TEST.AUG.ENABLED:
        results.update(Trainer.test_with_TTA(cfg, model))
    if comm.is_main_process():
        verify_results(cfg, results)
    return results


def train(cfg, *, resume: bool = False):
    """Train with ``Trainer``; ``resume`` continues from OUTPUT_DIR's last checkpoint."""
    trainer = Trainer(cfg)
    trainer.resume_or_load(resume=resume)
    return trainer.train()


def train_or_evaluate(cfg, *, eval_only: bool, resume: bool):
    """``evaluate`` with ``eval_only``, else ``train``."""
    return evaluate(cfg, resume=resume) if eval_only else train(cfg, resume=resume)
