"""Placing score labels so that none covers another: a label that would overlap one placed before
it moves up (or, at the top of the image, down) by its own height until it is free."""
from typing import List, Sequence, Tuple

__all__ = ["overlaps", "place_labels"]

Box = Tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive ends)


def overlaps(a: Box, b: Box) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _inside(x: int, y: int, width: int, height: int, image_hw: Tuple[int, int]) -> Tuple[int, int]:
    """The top-left corner moved so that a width x height box lies in the image (when it fits)."""
    x = min(max(0, x), max(0, image_hw[1] - width))
    y = min(max(0, y), max(0, image_hw[0] - height))
    return x, y


def _free(box: Box, placed: Sequence[Box]) -> bool:
    return not any(overlaps(box, other) for other in placed)


def place_labels(
    anchors: Sequence[Tuple[int, int]], sizes: Sequence[Tuple[int, int]], image_hw: Tuple[int, int], gap: int = 1
) -> List[Box]:
    """Boxes (x0, y0, x1, y1) of labels of ``sizes`` (width, height) wanted with their top-left
    corner at ``anchors`` (x, y), placed in order: each keeps its place when free, else the nearest
    free place above, else below, else its own place (a full column)."""
    placed: List[Box] = []
    for (ax, ay), (width, height) in zip(anchors, sizes):
        x, y = _inside(ax, ay, width, height, image_hw)
        step = height + gap
        candidates = [y - i * step for i in range(0, y // step + 1)]
        candidates += [y + i * step for i in range(1, max(0, image_hw[0] - y) // step + 1)]
        chosen = next(
            (box for c in candidates for box in [(x, c, x + width, c + height)]
             if c >= 0 and c + height <= max(height, image_hw[0]) and _free(box, placed)),
            (x, y, x + width, y + height),
        )  # fmt: skip
        placed.append(chosen)
    return placed
