"""Drawing predicted poses as in the paper's Figure 2: left body blue, right orange, centre magenta.

``PoseStyle`` holds what drawing needs from a dataset's metadata: the side of every keypoint (from
its name, else its flip pair, ``keypoint_spec.side_of``) and the skeleton links (from
``keypoint_connection_rules``; their colours are ignored, a link takes the side of its keypoints).
Nothing assumes 17 keypoints, and broken metadata (a link naming an unknown keypoint, or an index
outside the predicted K) is skipped, never fatal.
"""
import logging
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import cv2
import numpy as np

from .data.keypoint_spec import SIDE_COLORS, side_of
from .label_layout import place_labels

__all__ = ["PoseStyle", "draw_poses", "side_color_bgr"]

logger = logging.getLogger(__name__)


def side_color_bgr(side: str) -> Tuple[int, int, int]:
    """OpenCV (B, G, R) colour of 'left', 'right' or 'centre'."""
    red, green, blue = SIDE_COLORS[side]
    return blue, green, red


@dataclass(frozen=True)
class PoseStyle:
    """Keypoint sides and skeleton links of a dataset, for drawing.

    Attributes:
        sides: K sides ('left', 'right', 'centre'), in the dataset's keypoint order.
        links: (a, b) 0-based keypoint index pairs joined by a limb.
    """

    sides: Tuple[str, ...]
    links: Tuple[Tuple[int, int], ...]

    @classmethod
    def from_metadata(cls, metadata) -> "PoseStyle":
        """From detectron2 metadata with ``keypoint_names`` (required), ``keypoint_flip_map`` and
        ``keypoint_connection_rules`` (optional); rules naming unknown keypoints are logged and
        skipped."""
        names = getattr(metadata, "keypoint_names", None)
        if not names:
            name = getattr(metadata, "name", "?")
            raise KeyError(f"dataset {name!r}: metadata has no 'keypoint_names'")
        index = {name: i for i, name in enumerate(names)}
        flip_map = getattr(metadata, "keypoint_flip_map", ())
        flips = [(index[a], index[b]) for a, b in flip_map if a in index and b in index]
        links = []
        for rule in getattr(metadata, "keypoint_connection_rules", ()):
            if len(rule) >= 2 and rule[0] in index and rule[1] in index:
                links.append((index[rule[0]], index[rule[1]]))
            else:
                logger.warning("skeleton rule %r names an unknown keypoint: not drawn", rule)
        sides = tuple(side_of(i, names, flips) for i in range(len(names)))
        return cls(sides, tuple(links))

    def side(self, index: int) -> str:
        return self.sides[index] if 0 <= index < len(self.sides) else "centre"

    def link_side(self, a: int, b: int) -> str:
        """The side shared by both ends, else 'centre' (e.g. the shoulder line)."""
        return self.side(a) if self.side(a) == self.side(b) else "centre"


def _pixel(point: np.ndarray) -> Tuple[int, int]:
    """Continuous coordinates (pixel index + 0.5) -> the integer pixel that holds them."""
    return int(np.floor(point[0])), int(np.floor(point[1]))


def _draw_person(canvas, keypoints, visible, style: PoseStyle, radius: int, thickness: int) -> None:
    k = len(keypoints)
    for a, b in style.links:
        if 0 <= a < k and 0 <= b < k and visible[a] and visible[b]:
            color = side_color_bgr(style.link_side(a, b))
            cv2.line(canvas, _pixel(keypoints[a]), _pixel(keypoints[b]), color, thickness, cv2.LINE_AA)
    for i in np.flatnonzero(visible):
        cv2.circle(canvas, _pixel(keypoints[i]), radius, side_color_bgr(style.side(i)), -1, cv2.LINE_AA)


_FONT = cv2.FONT_HERSHEY_SIMPLEX


def _label_size(text: str, scale: float) -> Tuple[int, int]:
    """(width, height) in pixels of a label, its outline and baseline included."""
    (width, height), baseline = cv2.getTextSize(text, _FONT, scale, 1)
    return width + 2, height + baseline + 2


def _draw_label(canvas, text: str, box, scale: float) -> None:
    """White text with a dark outline in ``box`` (x0, y0, x1, y1)."""
    _, baseline = cv2.getTextSize(text, _FONT, scale, 1)
    origin = (int(box[0]) + 1, int(box[3]) - baseline - 1)
    for color, weight in (((0, 0, 0), 3), ((255, 255, 255), 1)):
        cv2.putText(canvas, text, origin, _FONT, scale, color, weight, cv2.LINE_AA)


def _draw_scores(canvas, labels, scale: float) -> None:
    """``labels``: (score, (x, y) of the person's top-left visible keypoint), best first. Each
    label goes just above its person, moved where it would cover an earlier one."""
    texts = [f"{score:.2f}" for score, _ in labels]
    sizes = [_label_size(t, scale) for t in texts]
    anchors = [(x, y - h - 2) for (_, (x, y)), (_, h) in zip(labels, sizes)]
    for text, box in zip(texts, place_labels(anchors, sizes, canvas.shape[:2])):
        _draw_label(canvas, text, box, scale)


def draw_poses(
    image_bgr: np.ndarray,
    keypoints: np.ndarray,
    scores: Sequence[float],
    style: PoseStyle,
    keypoint_threshold: float = 0.05,
    radius: Optional[int] = None,
    show_scores: bool = True,
) -> np.ndarray:
    """A copy of ``image_bgr`` (H, W, 3) with every person's skeleton and score drawn on it.

    Args:
        keypoints: (N, K, 3) x, y in detectron2's continuous frame, confidence.
        scores: (N,) instance scores, written above each person's highest visible keypoint.
        keypoint_threshold: keypoints with a lower confidence are hidden, and so are their limbs.
        radius: keypoint radius in pixels (default: about 1/150 of the shorter image side).
    """
    canvas = np.ascontiguousarray(image_bgr).copy()
    if len(scores) == 0:  # (0, K, 3) arrives as an empty array: nothing to draw
        return canvas
    keypoints = np.asarray(keypoints, dtype=np.float64).reshape(len(scores), -1, 3)
    radius = radius or max(2, int(round(min(canvas.shape[:2]) / 150)))
    thickness = max(1, radius // 2)
    font_scale = max(0.35, min(canvas.shape[:2]) / 900)
    labels = []
    for n in np.argsort(np.asarray(scores, dtype=np.float64), kind="stable"):  # best drawn last
        visible = (keypoints[n, :, 2] >= keypoint_threshold) & np.isfinite(keypoints[n, :, :2]).all(1)
        if not visible.any():
            continue
        _draw_person(canvas, keypoints[n], visible, style, radius, thickness)
        points = keypoints[n, visible, :2]
        anchor = _pixel(np.array([points[:, 0].min(), points[:, 1].min()]))
        labels.append((float(scores[n]), (anchor[0], anchor[1] - radius)))
    if show_scores:
        _draw_scores(canvas, labels[::-1], font_scale)  # the best person's label placed first
    return canvas
