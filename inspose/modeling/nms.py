"""Non-maximum suppression of pose candidates: hard (torchvision's), soft (linear, Gaussian), OKS.

Each function takes the candidates' tensors, wherever they come from (the keypoints' enclosing
boxes, a box head, other keypoints), and returns the indices it keeps, best first, at most
``max_keep``; ``soft_nms`` also returns the kept candidates' decayed scores. 0 and 1 candidates are
fine. The suppression is greedy and so sequential: a loop over at most ``max_keep`` picks, each step
vectorised over all candidates.

- ``hard_nms``: torchvision's NMS (drops a candidate whose IoU with a kept one is > the threshold).
- ``soft_nms`` (Bodla et al. 2017, the semantics of mmcv's ``soft_nms``, the authors' release):
  after each pick, every other candidate's score is multiplied by ``1 - iou`` where
  ``iou >= iou_thresh`` ("linear") or by ``exp(-iou^2 / sigma)`` ("gaussian"); a candidate whose
  score is (or falls) below ``min_score`` is dropped.
- ``oks_nms``: hard suppression when the OKS between a candidate's keypoints and a kept one's
  exceeds the threshold; OKS as COCO computes it, with the kept detection's box area
  (``keypoint_similarity``).

An IoU whose union is empty (two degenerate boxes) is 0 here, as torchvision's NMS never
suppresses with it.
"""
from typing import Tuple

import torch
from torchvision.ops import nms

from .oks import oks_from_squared_distances

__all__ = ["SOFT_NMS_DECAYS", "hard_nms", "iou_with", "keypoint_similarity", "oks_nms", "soft_nms"]

SOFT_NMS_DECAYS = ("linear", "gaussian")
# Added to the box area in OKS, as COCO does (np.spacing(1) there): degenerate boxes stay finite.
OKS_AREA_EPS = 1e-6


def hard_nms(boxes: torch.Tensor, scores: torch.Tensor, iou_thresh: float, max_keep: int) -> torch.Tensor:
    """(N,) indices torchvision's NMS keeps, best first, N <= max_keep.

    Args:
        boxes: (n, 4) xyxy; scores: (n,).
    """
    return nms(boxes, scores, iou_thresh)[:max_keep]


def iou_with(box: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """(n,) IoU of one (4,) xyxy box with (n, 4) boxes; 0 where the union is empty."""
    lower = torch.maximum(box[:2], boxes[:, :2])
    upper = torch.minimum(box[2:], boxes[:, 2:])
    inter = (upper - lower).clamp(min=0).prod(dim=1)
    area = (box[2:] - box[:2]).prod()
    areas = (boxes[:, 2:] - boxes[:, :2]).prod(dim=1)
    union = area + areas - inter
    return torch.where(union > 0, inter / union, torch.zeros_like(inter))


def _best(scores: torch.Tensor, alive: torch.Tensor) -> torch.Tensor:
    """() index of the highest of (n,) scores where (n,) ``alive`` (the first on a tie); an index
    that is not alive when none is."""
    return torch.where(alive, scores, torch.full_like(scores, -float("inf"))).argmax()


def _decay(iou: torch.Tensor, decay: str, iou_thresh: float, sigma: float) -> torch.Tensor:
    """(n,) score multipliers of soft-NMS for (n,) IoUs with the pick."""
    if decay == "linear":
        return torch.where(iou >= iou_thresh, 1.0 - iou, torch.ones_like(iou))
    if decay == "gaussian":
        return torch.exp(-(iou * iou) / sigma)
    raise ValueError(f"soft-NMS decay {decay!r} is not one of {SOFT_NMS_DECAYS}")


def soft_nms(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    decay: str,
    iou_thresh: float,
    sigma: float,
    min_score: float,
    max_keep: int,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Soft-NMS: (N,) kept indices, best first, and their (N,) decayed scores (non-increasing).

    Each step picks the highest current score (the first index on a tie), then decays the others.

    Args:
        boxes: (n, 4) xyxy; scores: (n,).
        decay: "linear" (uses ``iou_thresh``) or "gaussian" (uses ``sigma``).
        min_score: candidates scoring below it, before or after a decay, are dropped.
    """
    _decay(scores.new_zeros(0), decay, iou_thresh, sigma)  # the decay's name, checked up front
    scores = scores.clone()
    alive = scores >= min_score
    steps = min(max_keep, scores.shape[0])
    keep = torch.zeros(steps, dtype=torch.long, device=scores.device)
    kept_scores = scores.new_zeros(steps)
    count = 0
    while count < steps:
        pick = _best(scores, alive)
        if not alive[pick]:
            break
        keep[count], kept_scores[count] = pick, scores[pick]
        alive[pick] = False
        scores = scores * _decay(iou_with(boxes[pick], boxes), decay, iou_thresh, sigma)
        alive &= scores >= min_score
        count += 1
    return keep[:count], kept_scores[:count]


def keypoint_similarity(
    keypoints: torch.Tensor, reference: torch.Tensor, area: torch.Tensor, sigmas: torch.Tensor
) -> torch.Tensor:
    """(n,) COCO OKS of each of n keypoint sets with one reference set, every keypoint counted.

    OKS = mean_k exp(-d_k^2 / (2 * area * (2 * sigma_k)^2)), d_k the distance of keypoint k.

    Args:
        keypoints: (n, K, >=2) x, y first; reference: (K, >=2); area: () the reference's area
            (pixels^2; OKS_AREA_EPS is added); sigmas: (K,) per-keypoint OKS sigmas.
    """
    squared = (keypoints[..., :2] - reference[:, :2]).square().sum(dim=2)  # (n, K)
    return oks_from_squared_distances(squared, None, area.expand(squared.shape[0]), sigmas, OKS_AREA_EPS)


def oks_nms(
    keypoints: torch.Tensor,
    boxes: torch.Tensor,
    scores: torch.Tensor,
    sigmas: torch.Tensor,
    oks_thresh: float,
    max_keep: int,
) -> torch.Tensor:
    """(N,) indices OKS-NMS keeps, best first, N <= max_keep.

    Greedy by score (the first index on a tie): a candidate whose OKS with a kept detection is
    > ``oks_thresh`` is dropped; the OKS scale is the kept detection's box area.

    Args:
        keypoints: (n, K, >=2); boxes: (n, 4) xyxy, their areas the OKS scales; scores: (n,);
            sigmas: (K,).
    """
    if sigmas.shape[0] != keypoints.shape[1]:
        raise ValueError(f"{sigmas.shape[0]} OKS sigmas for {keypoints.shape[1]} keypoints")
    areas = (boxes[:, 2:] - boxes[:, :2]).clamp(min=0).prod(dim=1)
    alive = torch.ones_like(scores, dtype=torch.bool)
    steps = min(max_keep, scores.shape[0])
    keep = torch.zeros(steps, dtype=torch.long, device=scores.device)
    count = 0
    while count < steps:
        pick = _best(scores, alive)
        if not alive[pick]:
            break
        keep[count] = pick
        alive[pick] = False
        alive &= keypoint_similarity(keypoints, keypoints[pick], areas[pick], sigmas) <= oks_thresh
        count += 1
    return keep[:count]
