"""Tiny InsPose models trained on the shared COCO-format samples, for tests that need real weights.

``train_tiny`` trains through detectron2's trainer (the project's ``Trainer``) and returns the
trained model with its config; the session fixtures in ``conftest.py`` train each recipe once:

- ``overfit_run``: four coco_kp_mini images with one large person each, shorter side 256, 220
  iterations (about 4 minutes on 2 cores): OKS AP near 100 on those images (``test_overfit.py``,
  the export's AP check);
- ``release_overfit_run``: the same images and iterations with every release component on
  (``release_overfit_opts``; shorter side 192, 32-channel towers; about 4.5 minutes);
- ``briefly_trained``: a few dozen iterations on coco_kp_mini (K = 17) or crowdpose_mini (K = 14),
  enough for non-trivial maps, offsets and scores (the export's equivalence checks).
"""
import json
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Sequence

import torch
from detectron2.utils.env import seed_all_rng

from inspose.engine import Trainer

from .model_utils import tiny_cfg

OVERFIT_IMAGES = {535506, 463557, 30752, 84533}  # one large, well-labelled person each
OVERFIT_ITERATIONS = 220


@dataclass
class TrainedRun:
    """A finished training: its frozen config, the model (eval mode), metrics.json rows, minutes,
    and the results of the evaluation detectron2's trainer runs after the last iteration
    (``Trainer.test`` on DATASETS.TEST, e.g. {"keypoints": {"AP": ...}})."""

    cfg: object
    model: object
    metrics: List[Dict]
    minutes: float
    results: Dict = None


def overfit_subset(coco_kp_mini: Path, folder: Path) -> Path:
    """A COCO json of coco_kp_mini's ``OVERFIT_IMAGES`` in ``folder``."""
    source = json.loads((coco_kp_mini / "annotations/person_keypoints_train2017.json").read_text())
    subset = dict(source)
    subset["images"] = [i for i in source["images"] if i["id"] in OVERFIT_IMAGES]
    subset["annotations"] = [a for a in source["annotations"] if a["image_id"] in OVERFIT_IMAGES]
    path = folder / "overfit.json"
    path.write_text(json.dumps(subset))
    return path


def overfit_opts(dataset: str) -> List:
    """AdamW lr 1e-3 and a fixed seed: from scratch, SGD at lr 0.01 sometimes stalls on a plateau
    (loss_kpnet near 2.7 after 220 iterations); AdamW reached OKS AP 96-100 for seeds 1-4.

    NMS at IoU 0.3 (one person per image): the keypoints a person lacks in the annotation (image
    84533 has 2 of 17 unlabelled) are never trained, so each positive's KP-Net puts them somewhere
    else and the enclosing boxes of one person's duplicates overlap by only 0.61-0.73; at the
    default 0.6 a duplicate survived on another machine's arithmetic (OKS AP 83.5, AR 100).

    Shorter side 256: 1.1 s a step on 2 cores (1.5 s at 320, the earlier size), OKS AP 100, AR 100
    in 4.1 min with its evaluation."""
    return [
        "DATASETS.TRAIN", f"('{dataset}',)", "DATASETS.TEST", f"('{dataset}',)",
        "SOLVER.IMS_PER_BATCH", 4, "SOLVER.MAX_ITER", OVERFIT_ITERATIONS, "SOLVER.STEPS", "(180,)",
        "SOLVER.WARMUP_ITERS", 20, "SOLVER.OPTIMIZER", "AdamW", "SOLVER.BASE_LR", 1e-3,
        "INPUT.RANDOM_FLIP", "none", "INPUT.MIN_SIZE_TRAIN", "(256,)",
        "INPUT.MIN_SIZE_TRAIN_SAMPLING", "choice", "INPUT.MIN_SIZE_TEST", 256,
        "DATALOADER.ASPECT_RATIO_GROUPING", False, "SEED", 1, "MODEL.INSPOSE.NMS_THRESH_TEST", 0.3,
    ]  # fmt: skip


P = "MODEL.INSPOSE."
# Every component of the authors' release that exists, at the tiny model's width (one
# 64-channel keypoint-regression conv), with the release's data treatment and inference.
RELEASE_COMPONENTS = [
    P + "KEYPOINT_REGRESSION_ON", True, P + "KEYPOINT_REGRESSION_CONVS", 1, P + "KEYPOINT_REGRESSION_CHANNELS", 64,
    P + "STAR_DEFORM_ON", True, P + "CLS_LOSS", "varifocal", P + "VARIFOCAL_TARGET", "release",
    P + "KPNET_LOSS_NORMALIZER", "keypoint", P + "KPNET_INIT", "retinanet",
    P + "KP_FEATURE_LAST_CONV", "conv3x3_gn_relu", P + "MAX_KPNET_POSITIVES_PER_IMAGE", 0,
    P + "NO_KEYPOINT_PERSONS", "positive", P + "IGNORE_CROWD", False,
    "MODEL.ROI_KEYPOINT_HEAD.MIN_KEYPOINTS_PER_IMAGE", 0,
    P + "NMS_TYPE", "soft_linear", P + "NMS_THRESH_TEST", 0.3, P + "PRE_NMS_TOPK_PER_LEVEL", 1000,
    P + "SCORE_THRESH_TEST", 0.05, P + "NMS_BOXES", "regression", P + "KPNETS_AFTER_NMS", True,
    P + "INSTANCE_SCORE", "cls",
    P + "HEATMAP_STRIDE", 4, P + "HEATMAP_CHANNELS", 32, P + "HEATMAP_RADIUS_MODE", "adaptive",
    P + "HEATMAP_RADIUS_FORMULA", "cornernet", P + "HEATMAP_OFFSETS_ON", True, P + "AE_TAGS_ON", True,
    P + "KPNET_UPSAMPLE_FACTOR", 2,
    # Not the release's: its decode takes the global argmax of the bicubic-upsampled logits, which
    # is not peak-preserving (an overfitted KP-Net's isolated peak is averaged down at f = 2 and a
    # broad bump wins: OKS AP 78.2 on this run, 7 of 64 keypoints 16-120 px off). "coarse_cell"
    # keeps the fine argmax inside the coarse argmax's cell (the plus config's choice).
    P + "KPNET_UPSAMPLE_ARGMAX", "coarse_cell",
]  # fmt: skip


def release_overfit_opts(dataset: str) -> List:
    """``overfit_opts`` with ``RELEASE_COMPONENTS`` on, the same 220 iterations, made cheaper:
    shorter side 192 (not 256) and towers of 32 channels (not 64; GroupNorm's 32 groups need 32).
    The star convs are deformable convs, whose CPU backward (torchvision's) is 40 % of a step even
    then (profiled). Measured on 2 cores, 2 threads, the machine otherwise idle: 1.0 s a step,
    4.3 min for the whole run in the suite, OKS AP 96.3, AR 97.5 (100 / 100 without the stride-4
    keys; 93.8 at shorter side 256; 94.8 at 160, 40 s sooner: 192 keeps the margin).
    NMS_THRESH_TEST 0.3 is the release's soft-NMS threshold too."""
    return overfit_opts(dataset) + RELEASE_COMPONENTS + [
        "INPUT.MIN_SIZE_TRAIN", "(192,)", "INPUT.MIN_SIZE_TEST", 192, P + "TOWER_CHANNELS", 32,
    ]  # fmt: skip


def brief_opts(dataset: str, num_keypoints: int, iterations: int = 40) -> List:
    """A few dozen AdamW iterations at shorter side 256 on ``dataset``."""
    return [
        "DATASETS.TRAIN", f"('{dataset}',)", "DATASETS.TEST", f"('{dataset}',)",
        "MODEL.INSPOSE.NUM_KEYPOINTS", num_keypoints,
        "SOLVER.IMS_PER_BATCH", 2, "SOLVER.MAX_ITER", iterations, "SOLVER.STEPS", f"({iterations - 5},)",
        "SOLVER.WARMUP_ITERS", 5, "SOLVER.OPTIMIZER", "AdamW", "SOLVER.BASE_LR", 1e-3,
        "INPUT.MIN_SIZE_TRAIN", "(256,)", "INPUT.MIN_SIZE_TRAIN_SAMPLING", "choice",
        "INPUT.MIN_SIZE_TEST", 256, "INPUT.MAX_SIZE_TEST", 352, "SEED", 3,
    ]  # fmt: skip


def training_threads() -> int:
    """This process's share of the cores (up to 4) for a training run: under pytest-xdist the
    other workers keep running their tests, and torch threads that outnumber the cores wait for
    each other (a training run slowed several-fold beside a second worker on 2 cores)."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    return max(1, min(4, (os.cpu_count() or 1) // max(1, workers)))


@contextmanager
def all_cores():
    """torch on ``training_threads()`` threads for a training run; the suite's one thread
    afterwards. One thread suits the suite's many small ops; alone on 2 cores, a 220-iteration
    training takes 1.6x as long on one thread as on two."""
    previous = torch.get_num_threads()
    torch.set_num_threads(training_threads())
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def train_tiny(opts: Sequence, output_dir: Path) -> TrainedRun:
    """Train the tiny CPU model with ``opts`` (KEY VALUE ...) into ``output_dir``."""
    return train_cfg(tiny_cfg(*opts, "OUTPUT_DIR", str(output_dir)), output_dir)


def train_cfg(cfg, output_dir: Path) -> TrainedRun:
    """Train ``cfg`` (its OUTPUT_DIR is ``output_dir``) through the project's Trainer."""
    cfg.freeze()
    seed_all_rng(cfg.SEED)  # detectron2's default_setup would do this in tools/train_net.py
    start = time.time()
    trainer = Trainer(cfg)
    trainer.resume_or_load(resume=False)
    with all_cores():
        trainer.train()
    minutes = (time.time() - start) / 60
    metrics = [json.loads(line) for line in (output_dir / "metrics.json").read_text().splitlines()]
    results = getattr(trainer, "_last_eval_results", None)
    return TrainedRun(cfg, trainer.model.eval(), metrics, minutes, results)
