"""Draws ground-truth keypoints and skeletons: left body blue, right orange, centre magenta."""

from typing import Iterable, Optional

import cv2
import numpy as np

from ..keypoint_spec import COCO_PERSON, SIDE_COLORS, KeypointSpec, side_of

__all__ = ["draw_ground_truth"]


def _bgr(side: str):
    red, green, blue = SIDE_COLORS[side]
    return (blue, green, red)


def _link_side(a: int, b: int, spec: KeypointSpec) -> str:
    sides = {side_of(a, spec.names, spec.flip_pairs), side_of(b, spec.names, spec.flip_pairs)}
    return sides.pop() if len(sides) == 1 else "centre"


def draw_ground_truth(
    image_bgr: np.ndarray,
    annotations: Iterable[dict],
    spec: KeypointSpec = COCO_PERSON,
    radius: Optional[int] = None,
) -> np.ndarray:
    """A copy of ``image_bgr`` (H, W, 3) with COCO ``annotations`` drawn on it.

    Non-crowd annotations get their skeleton links (between keypoints with v > 0) and keypoints:
    filled dots for visible (v=2), rings for occluded (v=1). Boxes are thin grey rectangles; crowd
    boxes are white.
    """
    canvas = image_bgr.copy()
    radius = radius or max(2, int(round(min(canvas.shape[:2]) / 160)))
    for annotation in annotations:
        x, y, w, h = annotation["bbox"]
        box_color = (255, 255, 255) if annotation.get("iscrowd", 0) else (160, 160, 160)
        cv2.rectangle(canvas, (int(x), int(y)), (int(x + w - 1), int(y + h - 1)), box_color, 1)
        if annotation.get("iscrowd", 0):
            continue
        points = np.asarray(annotation["keypoints"], dtype=np.float64).reshape(-1, 3)
        for a, b in spec.skeleton:
            if points[a, 2] > 0 and points[b, 2] > 0:
                pa, pb = tuple(int(round(v)) for v in points[a, :2]), tuple(
                    int(round(v)) for v in points[b, :2]
                )
                cv2.line(
                    canvas, pa, pb, _bgr(_link_side(a, b, spec)), max(1, radius // 2), cv2.LINE_AA
                )
        for index, (px, py, v) in enumerate(points):
            if v > 0:
                color = _bgr(side_of(index, spec.names, spec.flip_pairs))
                center = (int(round(px)), int(round(py)))
                cv2.circle(canvas, center, radius, color, -1 if v == 2 else 1, cv2.LINE_AA)
    return canvas
