"""The two release configs (configs/release/) train and evaluate, shrunk to the tiny CPU model.

Each config is loaded as it is, with only its size overridden: the tiny model's backbone
(tests/model_utils.py's tiny config: ResNet-18, 64-channel FPN), towers, heatmap branch and one
keypoint-regression conv of 32 channels (the star convs' deformable convs are slow on the CPU),
inputs of 128-160 px, batch 2, no ImageNet weights. The
release's backbone settings stay: BatchNorm trainable in train mode, stem and res2 frozen. Two
iterations on coco_kp_mini through the project's Trainer, whose Trainer.test after the last
iteration (pycocotools OKS AP) evaluates four of them, with SCORE_THRESH_TEST and
SOFT_NMS_MIN_SCORE 0: after two iterations every classification score is near the 0.01 prior,
below the configs' 0.05 (and times a keypoint confidence, below soft-NMS's 0.001), so nothing
would be evaluated.
"""
from pathlib import Path

import pytest
import torch
from detectron2.layers import FrozenBatchNorm2d

from inspose.config import load_config
from inspose.engine.optimizer import build_optimizer

from .conftest import REPO_ROOT, register_once
from .trained_models import overfit_subset, train_cfg

P = "MODEL.INSPOSE."
RELEASE = REPO_ROOT / "configs/release/InsPose_R_50_3x_release.yaml"
PLUS = REPO_ROOT / "configs/release/InsPose_R_50_3x_plus.yaml"
TINY_SIZE = [
    "MODEL.DEVICE", "cpu", "MODEL.WEIGHTS", "",
    "MODEL.RESNETS.DEPTH", 18, "MODEL.RESNETS.RES2_OUT_CHANNELS", 64, "MODEL.RESNETS.STEM_OUT_CHANNELS", 64,
    "MODEL.FPN.OUT_CHANNELS", 64,
    P + "NUM_TOWER_CONVS", 2, P + "TOWER_CHANNELS", 32, P + "KP_FEATURE_CONVS", 2, P + "KP_FEATURE_CHANNELS", 64,
    P + "OFFSET_CHANNELS", 64, P + "HEATMAP_CHANNELS", 32,
    P + "KEYPOINT_REGRESSION_CONVS", 1, P + "KEYPOINT_REGRESSION_CHANNELS", 32,
    P + "SCORE_THRESH_TEST", 0.0, P + "SOFT_NMS_MIN_SCORE", 0.0,
    "SOLVER.IMS_PER_BATCH", 2, "SOLVER.MAX_ITER", 2, "SOLVER.STEPS", "(1,)", "SOLVER.WARMUP_ITERS", 1,
    "SOLVER.CHECKPOINT_PERIOD", 1000000,
    "INPUT.MIN_SIZE_TRAIN", "(128, 160)", "INPUT.MAX_SIZE_TRAIN", 192,
    "INPUT.MIN_SIZE_TEST", 128, "INPUT.MAX_SIZE_TEST", 192,
    "DATALOADER.NUM_WORKERS", 0, "TEST.EVAL_PERIOD", 0, "TEST.EXAMPLE_PICTURES", 0, "SEED", 5,
]  # fmt: skip
# The loss terms each config trains: the paper's (classification, KP-Nets, heatmaps) and the
# release's (keypoint regression, stride-4 offsets, associative-embedding tags).
EXPECTED_LOSSES = {
    "loss_cls", "loss_kpnet", "loss_heatmap", "loss_keypoint_regression", "loss_heatmap_offset",
    "loss_ae_pull", "loss_ae_push",
}  # fmt: skip


def tiny_release_cfg(config: Path, train: str, test: str, output_dir: Path, *opts):
    """``config`` at the tiny size (``TINY_SIZE``), trained on ``train``, tested on ``test``."""
    data = ["DATASETS.TRAIN", f"('{train}',)", "DATASETS.TEST", f"('{test}',)", "OUTPUT_DIR", str(output_dir)]
    return load_config(str(config), [str(o) for o in TINY_SIZE + data + list(opts)])


def check_backbone_norms(model) -> None:
    """The release's backbone: stem and res2 frozen (FrozenBN), BatchNorm from res3 on trainable and
    in train mode during training."""
    bottom_up = model.backbone.bottom_up
    assert isinstance(bottom_up.stem.conv1.norm, FrozenBatchNorm2d)
    assert all(not p.requires_grad for p in bottom_up.res2.parameters())
    norms = [m for m in bottom_up.res3.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert norms and all(m.weight.requires_grad and m.bias.requires_grad for m in norms)
    assert all((m.running_mean != 0).any() for m in norms)  # in train mode: statistics updated


def check_norm_weight_decay(cfg, model) -> None:
    """Every norm parameter (BatchNorm, GroupNorm) is decayed at SOLVER.WEIGHT_DECAY_NORM."""
    norms = (torch.nn.BatchNorm2d, torch.nn.GroupNorm)
    norm_params = {id(p) for m in model.modules() if isinstance(m, norms) for p in m.parameters() if p.requires_grad}
    groups = build_optimizer(cfg, model).param_groups
    decays = {g["weight_decay"] for g in groups for p in g["params"] if id(p) in norm_params}
    assert norm_params and decays == {cfg.SOLVER.WEIGHT_DECAY_NORM}


def train_and_evaluate(config: Path, train: str, test: str, output_dir: Path, *opts):
    """(the TrainedRun, the keypoints results of the Trainer.test that detectron2's trainer runs
    after the last iteration)."""
    run = train_cfg(tiny_release_cfg(config, train, test, output_dir, *opts), output_dir)
    return run, run.results["keypoints"]


def check_run(run, results) -> None:
    losses = [row for row in run.metrics if "loss_cls" in row]
    assert losses and losses[-1]["iteration"] == run.cfg.SOLVER.MAX_ITER - 1
    assert EXPECTED_LOSSES <= set(losses[-1])
    values = torch.tensor([row[k] for row in losses for k in row if k.startswith("loss_")])
    assert torch.isfinite(values).all()
    assert 0.0 <= results["AP"] <= 100.0 and 0.0 <= results["AR"] <= 100.0  # finite, on the 0-100 scale


@pytest.fixture(scope="module")
def four_images(coco_kp_mini, tmp_path_factory) -> str:
    """The overfit test's four coco_kp_mini images (evaluation time grows with the images)."""
    json_file = overfit_subset(coco_kp_mini, tmp_path_factory.mktemp("four"))
    return register_once("test_overfit_coco4", json_file, coco_kp_mini / "train2017")


@pytest.mark.slow  # a training and an evaluation per config: not in the inner loop (make test-fast)
@pytest.mark.parametrize("config", [RELEASE, PLUS], ids=["release", "plus"])
def test_release_config_trains_two_iterations_and_evaluates(config, coco_kp_mini_dataset, four_images, tmp_path):
    run, results = train_and_evaluate(config, coco_kp_mini_dataset, four_images, tmp_path / "output")
    check_backbone_norms(run.model)
    assert run.cfg.SOLVER.WEIGHT_DECAY_NORM == 1e-4
    check_norm_weight_decay(run.cfg, run.model)
    check_run(run, results)
