"""pycocotools OKS AP of an exported model (ONNX Runtime) on a registered dataset.

The same ``KeypointEvaluator`` as training's evaluation (the dataset's OKS sigmas, AP and AR), fed
with ``OnnxPosePredictor``'s poses on each image of the dataset, read in BGR as detectron2 reads
them (EXIF orientation applied). An unreadable image fails the evaluation, naming the file.
"""
from typing import Dict

import torch
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import Boxes, Instances

from ..data.image_io import read_dataset_image
from ..evaluation import KeypointEvaluator
from .runtime import OnnxPosePredictor, Poses

__all__ = ["evaluate_onnx", "poses_to_instances"]


def poses_to_instances(poses: Poses, image_size) -> Instances:
    """detectron2 ``Instances`` (pred_keypoints, scores, pred_boxes, pred_classes) of ``poses``."""
    instances = Instances(tuple(image_size))
    instances.pred_keypoints = torch.as_tensor(poses.keypoints)
    instances.scores = torch.as_tensor(poses.scores)
    instances.pred_boxes = Boxes(torch.as_tensor(poses.boxes))
    instances.pred_classes = torch.zeros(len(poses.scores), dtype=torch.long)
    return instances


def evaluate_onnx(model_path: str, dataset_name: str, output_dir=None, threads: int = 0) -> Dict:
    """{"keypoints": {"AP": ..., ...}} of the exported model on ``dataset_name``.

    Raises:
        MetadataError: when the file was exported for another number of keypoints.
        ImageReadError: naming an image that cannot be read.
    """
    num_keypoints = len(MetadataCatalog.get(dataset_name).keypoint_names)
    predictor = OnnxPosePredictor(model_path, num_keypoints=num_keypoints, threads=threads)
    evaluator = KeypointEvaluator(dataset_name, output_dir, distributed=False)
    evaluator.reset()
    for record in DatasetCatalog.get(dataset_name):
        image = read_dataset_image(record, "BGR")
        instances = poses_to_instances(predictor(image), image.shape[:2])
        evaluator.process([{"image_id": record["image_id"]}], [{"instances": instances}])
    return evaluator.evaluate()
