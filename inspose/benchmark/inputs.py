"""Benchmark inputs: one random image, and synthetic persons with keypoints and boxes for training.

The image is a uint8 (3, H, W) CPU tensor, as detectron2's data loader gives it; both models copy
it to their device inside the timed call.
"""
from typing import Dict, List, Tuple

import torch
from detectron2.structures import Boxes, Instances, Keypoints

__all__ = ["benchmark_image", "inference_input", "synthetic_persons", "training_batch"]


def benchmark_image(size: Tuple[int, int], seed: int = 0) -> torch.Tensor:
    """(3, H, W) uint8 noise image of ``size`` = (H, W)."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (3, *size), generator=generator, dtype=torch.uint8)


def inference_input(image: torch.Tensor) -> Dict:
    """detectron2's input dict for one image, output size = input size."""
    return {"image": image, "height": image.shape[1], "width": image.shape[2]}


def synthetic_persons(
    height: int, width: int, num_persons: int, num_keypoints: int = 17, seed: int = 0
) -> Instances:
    """Persons with every keypoint labelled (v = 2) in a box 20-60% of the image high.

    Returns Instances of (height, width) with gt_boxes (P, 4) xyxy, gt_classes (P,) zeros and
    gt_keypoints (P, K, 3); each box encloses its keypoints.
    """
    g = torch.Generator().manual_seed(seed)
    box_h = height * (0.2 + 0.4 * torch.rand(num_persons, generator=g))
    aspect = 0.3 + 0.4 * torch.rand(num_persons, generator=g)
    box_w = torch.clamp(box_h * aspect, max=width * 0.9)
    x0 = torch.rand(num_persons, generator=g) * (width - box_w)
    y0 = torch.rand(num_persons, generator=g) * (height - box_h)
    inside = torch.rand(num_persons, num_keypoints, 2, generator=g)  # (P, K, 2) in [0, 1)
    origin = torch.stack([x0, y0], dim=1)[:, None, :]
    xy = origin + inside * torch.stack([box_w, box_h], dim=1)[:, None, :]
    keypoints = torch.cat([xy, torch.full((num_persons, num_keypoints, 1), 2.0)], dim=2)
    instances = Instances((height, width))
    instances.gt_boxes = Boxes(torch.stack([x0, y0, x0 + box_w, y0 + box_h], dim=1))
    instances.gt_classes = torch.zeros(num_persons, dtype=torch.long)
    instances.gt_keypoints = Keypoints(keypoints)
    return instances


def training_batch(
    size: Tuple[int, int], batch: int, persons: int, num_keypoints: int = 17, seed: int = 0
) -> List[Dict]:
    """``batch`` training inputs of ``size`` (H, W), each with ``persons`` synthetic persons."""
    items = []
    for b in range(batch):
        item = inference_input(benchmark_image(size, seed + b))
        item["instances"] = synthetic_persons(*size, persons, num_keypoints, seed + b)
        items.append(item)
    return items
