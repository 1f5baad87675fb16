"""The demo's model: a detectron2 ``DefaultPredictor`` with InsPose's weights (or an exported ONNX
file), its drawing style, and one picture in, the picture with its poses drawn out."""
from typing import Optional, Tuple

import numpy as np
from detectron2.data import MetadataCatalog
from detectron2.data import transforms as T
from detectron2.engine import DefaultPredictor

from ..data.keypoint_spec import side_of
from ..deploy.runtime import Poses
from ..engine import build_model_with_weights
from ..visualization import PoseStyle, draw_poses
from .poses import as_poses

__all__ = ["PosePredictor", "annotate", "export_style", "pose_style"]


class PosePredictor(DefaultPredictor):
    """detectron2's ``DefaultPredictor`` (BGR picture in, test resize, one image's outputs) with the
    weights loaded by ``InsPoseCheckpointer`` (torchvision / HRNet files too)."""

    def __init__(self, cfg):  # DefaultPredictor.__init__ would load with DetectionCheckpointer
        self.cfg = cfg.clone()
        self.model = build_model_with_weights(self.cfg).eval()
        self.aug = T.ResizeShortestEdge([cfg.INPUT.MIN_SIZE_TEST] * 2, cfg.INPUT.MAX_SIZE_TEST)
        self.input_format = cfg.INPUT.FORMAT


def pose_style(cfg, dataset: Optional[str]) -> PoseStyle:
    """The drawing style of ``dataset`` (default DATASETS.TEST[0]), checked against the model's K."""
    name = dataset or (cfg.DATASETS.TEST[0] if cfg.DATASETS.TEST else None)
    if name is None:
        raise SystemExit("no dataset to take keypoint names from: pass --dataset")
    style = PoseStyle.from_metadata(MetadataCatalog.get(name))
    if len(style.sides) != cfg.MODEL.INSPOSE.NUM_KEYPOINTS:
        raise SystemExit(
            f"dataset {name!r} has {len(style.sides)} keypoints, the model "
            f"{cfg.MODEL.INSPOSE.NUM_KEYPOINTS}: pass the model's --dataset"
        )
    return style


def export_style(metadata: dict) -> PoseStyle:
    """The drawing style of an exported model's metadata (keypoint_names, flip_pairs, skeleton as
    index pairs), for ``--backend onnxruntime``."""
    names = list(metadata["keypoint_names"])
    flips = [tuple(p) for p in metadata.get("flip_pairs", [])]
    links = tuple((int(a), int(b)) for a, b in metadata.get("skeleton", []))
    return PoseStyle(tuple(side_of(i, names, flips) for i in range(len(names))), links)


def annotate(predictor, style: PoseStyle, image_bgr: np.ndarray, keypoint_threshold: float) -> Tuple[np.ndarray, Poses]:
    """(the (H, W, 3) picture with the poses drawn, the ``Poses``) of a predictor's output."""
    poses = as_poses(predictor(image_bgr))
    drawn = draw_poses(image_bgr, poses.keypoints, poses.scores, style, keypoint_threshold)
    return drawn, poses
