"""InsPose's loss functions, and the normaliser shared by all processes of a distributed run.

Each function returns a *sum*; the criterion divides it by a normaliser (positive locations,
KP-Net instances, supervised offset cells, heatmap peaks) that ``global_normalizer`` averages over
processes, so N processes on one image each compute the same gradients as one process on N images.
No function synchronises with the host.
"""
import torch
import torch.distributed as dist
from fvcore.nn import giou_loss, sigmoid_focal_loss_jit
from torch.nn import functional as F

__all__ = [
    "global_normalizer",
    "focal_loss_sum",
    "varifocal_loss_sum",
    "kpnet_cross_entropy_sum",
    "offset_l1_sum",
    "heatmap_focal_loss_sum",
    "giou_loss_sum",
]


def global_normalizer(count: torch.Tensor) -> torch.Tensor:
    """The mean over processes of ``count`` (a scalar tensor), at least 1."""
    count = count.detach().float()
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        count = count.clone()
        dist.all_reduce(count)
        count = count / dist.get_world_size()
    return count.clamp(min=1.0)


def focal_loss_sum(logits: torch.Tensor, targets: torch.Tensor, alpha: float, gamma: float):
    """Sigmoid focal loss (RetinaNet) summed over the (M,) logits with (M,) 0/1 targets."""
    return sigmoid_focal_loss_jit(logits, targets, alpha=alpha, gamma=gamma, reduction="sum")


def varifocal_loss_sum(
    logits: torch.Tensor, quality: torch.Tensor, positive: torch.Tensor, alpha: float, gamma: float
) -> torch.Tensor:
    """Varifocal loss (VarifocalNet) summed over M locations.

    A positive with target q (its localisation quality) costs -q (q log p + (1 - q) log(1 - p)),
    a negative -alpha p^gamma log(1 - p), with p = sigmoid(logit). Positives are the ``positive``
    flags, so a positive with q = 0 costs 0 (the release's mmdet loss, which tells positives by
    q > 0, would make it a negative).

    Args:
        logits: (M,) classification logits; quality: (M,) q in [0, 1] (read at positives only);
        positive: (M,) bool.
    Returns:
        the summed loss (a scalar tensor).
    """
    logits = logits.float()
    target = torch.where(positive, quality.float(), torch.zeros_like(logits))
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    weight = torch.where(positive, target, alpha * torch.sigmoid(logits).pow(gamma))
    return (bce * weight).sum()


def kpnet_cross_entropy_sum(
    logits: torch.Tensor, cells: torch.Tensor, labelled: torch.Tensor, normalizer: str = "instance"
):
    """Softmax cross-entropy over positions of N KP-Nets' keypoint maps, as a sum and its count.

    Args:
        logits: (N, K, H * W) KP-Net outputs.
        cells: (N, K) target cell of each keypoint.
        labelled: (N, K) bool, keypoints that count (v > 0).
        normalizer: "instance": the sum over instances of their mean over labelled keypoints, and
            the number of instances with a labelled keypoint; "keypoint": the sum over labelled
            (instance, keypoint) pairs, and their number.
    Returns:
        the sum and the count (scalar tensors).
    """
    logits = logits.float()
    picked = logits.gather(2, cells[:, :, None]).squeeze(2)
    per_keypoint = (torch.logsumexp(logits, dim=2) - picked) * labelled
    if normalizer == "keypoint":
        return per_keypoint.sum(), labelled.sum()
    counts = labelled.sum(dim=1)
    per_instance = per_keypoint.sum(dim=1) / counts.clamp(min=1)
    return per_instance.sum(), (counts > 0).sum()


def offset_l1_sum(predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L1 loss summed over (E, 2) predicted and target offsets (both coordinates)."""
    return (predicted.float() - target).abs().sum()


def heatmap_focal_loss_sum(
    logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor, alpha: float, beta: float
):
    """CornerNet's focal loss for Gaussian heatmaps.

    Args:
        logits: (B, K, H, W); target: (B, K, H, W) in [0, 1], exactly 1 at keypoints.
        weight: broadcastable to logits, 0 where negatives are ignored (crowd regions).
    Returns:
        the summed loss and the number of positives (scalar tensors).
    """
    logits = logits.float()
    positive = target == 1
    log_p = torch.nn.functional.logsigmoid(logits)
    log_not_p = torch.nn.functional.logsigmoid(-logits)
    p = torch.sigmoid(logits)
    pos_loss = -((1 - p) ** alpha) * log_p * positive
    neg_loss = -((1 - target) ** beta) * (p**alpha) * log_not_p * (~positive) * weight
    return pos_loss.sum() + neg_loss.sum(), positive.sum()


def giou_loss_sum(predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Generalised IoU loss summed over (M, 4) xyxy box pairs."""
    if predicted.numel() == 0:
        return predicted.sum()
    return giou_loss(predicted.float(), target.float(), reduction="sum")
