"""COCO keypoint results records: what the evaluation server and pycocotools' ``loadRes`` read."""
from typing import Dict, List

import numpy as np

__all__ = ["instances_to_keypoint_results", "keypoints_to_results"]


def keypoints_to_results(
    keypoints: np.ndarray, scores: np.ndarray, image_id: int, category_id: int = 1
) -> List[Dict]:
    """COCO results records without ``bbox`` (pycocotools then takes the area from the keypoints).

    Args:
        keypoints: (N, K, 3) in detectron2's continuous frame (pixel index + 0.5), third column a
            confidence; written in COCO's pixel-index frame (minus 0.5, as COCOEvaluator does).
        scores: (N,) instance scores.
    """
    keypoints = np.asarray(keypoints, dtype=np.float64).copy()
    keypoints[..., :2] -= 0.5
    return [
        {
            "image_id": int(image_id),
            "category_id": int(category_id),
            "keypoints": [round(float(v), 2) for v in kp.reshape(-1)],
            "score": float(score),
        }
        for kp, score in zip(keypoints, np.asarray(scores, dtype=np.float64))
    ]


def instances_to_keypoint_results(instances, image_id: int, category_id: int = 1) -> List[Dict]:
    """Records of a detectron2 ``Instances`` with ``pred_keypoints`` and ``scores``."""
    if len(instances) == 0:
        return []
    return keypoints_to_results(
        instances.pred_keypoints.cpu().numpy(), instances.scores.cpu().numpy(), image_id, category_id
    )
