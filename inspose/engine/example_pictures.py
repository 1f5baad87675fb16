"""A few pictures of a model's predictions on an evaluated dataset, as the demo draws them: written
under the evaluation's folder, and to TensorBoard (the training's event storage during training,
an event file in OUTPUT_DIR for ``--eval-only``)."""
import logging
import os
from typing import List

import cv2
import numpy as np
import torch
from detectron2.data import MetadataCatalog
from detectron2.utils.events import get_event_storage

from ..visualization import PoseStyle, draw_poses

__all__ = ["draw_examples", "publish_examples"]

logger = logging.getLogger(__name__)


def draw_examples(model, loader, dataset_name: str, count: int, folder: str, threshold: float = 0.3) -> List[str]:
    """Draw ``model``'s persons scoring >= ``threshold`` on the first ``count`` images of
    ``loader`` into ``folder``; return the paths."""
    os.makedirs(folder, exist_ok=True)
    style = PoseStyle.from_metadata(MetadataCatalog.get(dataset_name))
    was_training = model.training
    model.eval()
    paths = []
    for inputs in loader:
        if len(paths) >= count:
            break
        with torch.no_grad():
            instances = model(inputs)[0]["instances"].to("cpu")
        instances = instances[instances.scores >= threshold]
        image = cv2.imread(inputs[0]["file_name"])
        if image is None:
            continue
        drawn = draw_poses(image, instances.pred_keypoints.numpy(), instances.scores.tolist(), style)
        path = os.path.join(folder, os.path.basename(inputs[0]["file_name"]))
        cv2.imwrite(path, drawn)
        paths.append(path)
    model.train(was_training)
    return paths


def _as_chw_rgb(path: str) -> np.ndarray:
    return cv2.imread(path)[:, :, ::-1].transpose(2, 0, 1).astype(np.float32) / 255.0


def publish_examples(paths: List[str], dataset_name: str, output_dir: str) -> None:
    """Add the pictures to TensorBoard under ``examples/<dataset>/<i>``."""
    try:
        storage = get_event_storage()
    except AssertionError:  # not training: no event storage
        storage = None
    if storage is not None:
        for i, path in enumerate(paths):
            storage.put_image(f"examples/{dataset_name}/{i}", _as_chw_rgb(path))
        return
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        logger.info("tensorboard is not installed: example pictures only in %s", os.path.dirname(paths[0]))
        return
    with SummaryWriter(output_dir) as writer:
        for i, path in enumerate(paths):
            writer.add_image(f"examples/{dataset_name}/{i}", _as_chw_rgb(path))
