"""Associative-embedding pull / push losses of the heatmap branch's tags (AE_TAGS_ON).

Newell et al.'s associative embedding with the "exp" push of the authors' release. With t_pk the
tag of person p's labelled keypoint k, read at the keypoint's own cell, and m_p the mean of p's
tags:

- pull: sum over persons of the variance of their tags around their mean, mean_k (t_pk - m_p)^2,
  / persons of the batch (the release: the same, averaged per image then over images);
- push: sum over unordered pairs (p, q) of persons of the same image of exp(-(m_p - m_q)^2), / those
  pairs (the release divides its sum over ordered pairs by 2 n (n - 1), half this mean: set
  LOSS_WEIGHT_AE_PUSH 0.5 for its scale).

Gradients reach the tags through the means too (as in the release). Both are sums with their
counts; the criterion divides by the counts averaged over processes (``losses.global_normalizer``).
"""
from typing import Tuple

import torch

from .codec.adaptive_targets import TagTargets

__all__ = ["ae_pull_push_sums"]


def ae_pull_push_sums(
    tags: torch.Tensor, targets: TagTargets
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pull and push of (B, K, H, W) tag maps at ``targets``' index sets.

    Returns:
        pull_sum, num_persons, push_sum, num_pairs (scalar tensors).
    """
    values = tags.reshape(-1)[targets.index].float()  # (N,)
    num_persons = targets.person_image.numel()
    zeros = values.new_zeros(num_persons)
    counts = zeros.index_add(0, targets.person, torch.ones_like(values)).clamp(min=1)
    means = zeros.index_add(0, targets.person, values) / counts  # (P,)
    squared = (values - means[targets.person]) ** 2
    pull_sum = (zeros.index_add(0, targets.person, squared) / counts).sum()
    same_image = targets.person_image[:, None] == targets.person_image[None, :]
    pairs = torch.triu(same_image, diagonal=1)  # (P, P) unordered pairs within an image
    push = torch.exp(-((means[:, None] - means[None, :]) ** 2))
    push_sum = (push * pairs).sum()
    return pull_sum, values.new_tensor(float(num_persons)), push_sum, pairs.sum().float()
