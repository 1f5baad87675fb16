"""The positive budget of the KP-Net loss: at most N positive locations per image, spread over persons.

KP-Net memory grows with positives x K x H x W, so each image trains at most ``budget`` positives.
They are taken round-robin across persons (every person's first location, then every person's
second, ...), each person's locations in random order, so a crowded image does not spend the
budget on its largest person.
"""
import torch

__all__ = ["sample_positives"]


def sample_positives(owner: torch.Tensor, budget: int, generator=None) -> torch.Tensor:
    """Choose which positive locations train the KP-Nets.

    Args:
        owner: (L,) person index per location, -1 for non-positives.
        budget: the most positives to keep; <= 0 keeps them all.
    Returns:
        (M,) long indices of the kept locations, M <= budget.
    """
    positives = (owner >= 0).nonzero().squeeze(1)
    if budget <= 0 or positives.numel() <= budget:
        return positives
    shuffled = positives[torch.randperm(positives.numel(), device=owner.device, generator=generator)]
    persons = owner[shuffled]
    order = torch.argsort(persons, stable=True)
    grouped = persons[order]
    start = torch.searchsorted(grouped, grouped, right=False)
    rank_in_person = torch.empty_like(order)
    rank_in_person[order] = torch.arange(order.numel(), device=owner.device) - start
    round_robin = torch.argsort(rank_in_person, stable=True)[:budget]
    return shuffled[round_robin].sort().values
